"""The study as a dependency graph of run-store artifacts, planned from the chapters' own parameters.

`plan(tier, chapters)` collects what the chosen chapters build: base policies, learned reward models, RL runs and the
evaluations of `before_after` (and of `transfer.transfer_results` for the domain-gap chapter), from the same functions
the notebooks call (`studies.chapter_runs`, `transfer.chapter_runs`, `rl.evaluation_options`, the tier presets). Each
artifact is a `Node`: a function named by ``"module:function"`` and its keyword arguments (plain JSON values, so that
a node can be sent to another process or machine), and the nodes it needs first. Running a node (`run_node`) calls
the same cached function a notebook calls, so executing the graph fills the run store and the notebooks, run
afterwards, only read it; a notebook run alone still builds what it lacks.

Two nodes with the same function and arguments are one node. A node whose arguments differ but whose store key is
the same (e.g. a reward model's seed given or left at its default) is still built once: the store's lock makes the
second builder wait and reuse.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
from dataclasses import asdict, dataclass, field

from cotlab.rewards.learned import FAMILIES
from cotlab.store import BASE_POLICY_CODE, RL_CODE, RunStore, artifact_key, canonical_config, canonical_json

# Rough seconds per node on the 2-core reference machine (one thread), until the executor has timed nodes of a kind.
COST = {"base_policy": 900.0, "reward_model": 60.0, "rl": 60.0, "evaluation": 15.0}


@dataclass(frozen=True)
class Node:
    """One artifact: `target(**kwargs)` builds it (or finds it in the run store)."""

    id: str  # "<kind>/<hash of target and kwargs>"
    kind: str  # base_policy, reward_model, rl, evaluation
    target: str  # "module:function"
    kwargs: dict = field(hash=False)
    deps: tuple[str, ...]
    label: str  # what a person reads in the progress line and in error messages


def node(kind: str, target: str, kwargs: dict, deps=(), label: str = "") -> Node:
    """A node whose kwargs are plain JSON values (tuples become lists), identified by its target and kwargs."""
    kwargs = canonical_config(kwargs)
    digest = hashlib.sha256(f"{target}\n{canonical_json(kwargs)}".encode()).hexdigest()[:16]
    return Node(f"{kind}/{digest}", kind, target, kwargs, tuple(deps), label or kind)


@dataclass
class Graph:
    """Nodes in insertion order, which is a topological order (a node is added after its dependencies)."""

    nodes: dict[str, Node] = field(default_factory=dict)

    def add(self, n: Node) -> str:
        missing = [d for d in n.deps if d not in self.nodes]
        if missing:
            raise ValueError(f"node {n.label} needs {missing}, which are not in the graph yet")
        self.nodes.setdefault(n.id, n)
        return n.id

    def dependents(self, node_id: str) -> list[str]:
        """Every node that needs `node_id`, directly or not."""
        out, frontier = [], {node_id}
        for n in self.nodes.values():  # topological order: one pass finds them all
            if frontier & set(n.deps):
                out.append(n.id)
                frontier.add(n.id)
        return out

    def __len__(self) -> int:
        return len(self.nodes)

    def counts(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for n in self.nodes.values():
            kinds[n.kind] = kinds.get(n.kind, 0) + 1
        return kinds

    def to_json(self) -> str:
        return json.dumps([asdict(n) for n in self.nodes.values()], indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Graph":
        graph = cls()
        for values in json.loads(text):
            graph.add(Node(**{**values, "deps": tuple(values["deps"])}))
        return graph


# -- what a node runs (in a worker process) ---------------------------------------------------------------------------

def build_base(tier: str) -> None:
    from cotlab.policy.pretrain import base_policy

    base_policy(tier, progress=False)


def build_reward(family: str, options: dict) -> None:
    from cotlab.rewards.learned import learned_reward

    learned_reward(family, progress=False, **options)


def build_rl(config: dict) -> None:
    import cotlab.experiments.paper_tier  # noqa: F401  (registers the paper tier's metric reward)
    from cotlab.experiments.rl import rl_run
    from cotlab.training import CONFIGS

    rl_run(CONFIGS[config["algorithm"]].from_dict(config), progress=False)


def build_evaluation(name: str, suites: list, eval_options: dict, policy: str | None = None,
                     config: dict | None = None) -> None:
    """The evaluation `before_after` makes of a base policy (`policy`, a tier or a directory) or of an RL run's
    trained policy (`config`)."""
    from cotlab.experiments.rl import base_dir, evaluation_scores, rl_run
    from cotlab.training import CONFIGS

    policy_dir = (base_dir(policy) if config is None
                  else rl_run(CONFIGS[config["algorithm"]].from_dict(config), progress=False) / "policy")
    evaluation_scores(policy_dir, name, suites=[tuple(s) for s in suites], progress=False, **eval_options)


@functools.lru_cache(maxsize=1024)
def _scratch(n: Node) -> str | None:
    """The run store's scratch directory a running node checkpoints into (RL runs and base policies), else None."""
    if n.target == f"{__name__}:build_rl":
        kind, key = "rl", artifact_key("rl", n.kwargs["config"], RL_CODE)
    elif n.target == f"{__name__}:build_base":
        from cotlab.policy.pretrain import PRETRAIN_TIERS, base_key

        kind, key = "base_policy", artifact_key("base_policy", base_key(PRETRAIN_TIERS[n.kwargs["tier"]]),
                                               BASE_POLICY_CODE)
    else:
        return None
    return str(RunStore().path(kind, key).parent / f".scratch-{key}")


def progress_of(n: Node) -> str:
    """" (step k/n)" for a running RL run (the rows its trainer has logged) or base policy (its newest checkpoint,
    every `checkpoint_every` steps), else ""."""
    scratch = _scratch(n)
    if scratch is None or not os.path.isdir(scratch):
        return ""
    if n.target == f"{__name__}:build_rl":
        metrics = os.path.join(scratch, "metrics.jsonl")
        with open(metrics, "rb") if os.path.isfile(metrics) else open(os.devnull, "rb") as f:
            steps = sum(1 for _ in f)
        return f" (step {steps}/{n.kwargs['config']['rounds'] * n.kwargs['config']['max_steps']})"
    from cotlab.policy.pretrain import PRETRAIN_TIERS

    done = [int(name[5:]) for name in os.listdir(scratch) if name.startswith("step-") and name[5:].isdigit()]
    return f" (step {max(done, default=0)}/{PRETRAIN_TIERS[n.kwargs['tier']].steps})"


def run_node(n: Node) -> None:
    """Build one node in this process (the run store is `$COTLAB_RUNS` or ./runs, as for the notebooks)."""
    module, _, function = n.target.partition(":")
    getattr(importlib.import_module(module), function)(**n.kwargs)


# -- the planner ------------------------------------------------------------------------------------------------------

def _base(graph: Graph, policy: str) -> list[str]:
    from cotlab.policy.pretrain import PRETRAIN_TIERS

    if policy not in PRETRAIN_TIERS:
        return []  # a checkpoint directory: nothing to build
    return [graph.add(node("base_policy", f"{__name__}:build_base", {"tier": policy},
                           label=f"base policy ({policy} tier)"))]


def _reward(graph: Graph, name: str, options: dict) -> list[str]:
    """The learned reward model `rewards.get(name, **options)` trains (none for the other rewards)."""
    if name not in FAMILIES:
        return []
    from cotlab.rewards.learned import config_from_options

    cfg = asdict(config_from_options(name, {k: v for k, v in options.items() if k not in ("store", "progress")}))
    cfg.pop("family")  # every field spelled out: a seed left at its default and one given are one node
    return [graph.add(node("reward_model", f"{__name__}:build_reward", {"family": name, "options": cfg},
                           label=f"{name} reward model, {cfg['breadth']} data, seed {cfg['seed']}"))]


def add_runs(graph: Graph, configs, eval_options: dict, suites=None) -> list[tuple[str, str]]:
    """Nodes of `before_after(configs, suites=suites, **eval_options)`: each config's base policy and reward model,
    its RL run, the base's evaluation and the trained policy's. Returns the (rl, evaluation) node ids per config."""
    from cotlab.experiments.rl import SUITES, evaluation_options, reward_label
    from cotlab.training import arm_of

    eval_options = evaluation_options(configs, eval_options)
    suites = [list(s) for s in (suites or SUITES)]
    out = []
    for cfg in configs:
        base = _base(graph, cfg.policy)
        graph.add(node("evaluation", f"{__name__}:build_evaluation",
                       {"name": f"base {cfg.policy}", "suites": suites, "eval_options": eval_options,
                        "policy": cfg.policy}, deps=base, label=f"evaluation of base {cfg.policy}"))
        config = cfg.replace(output_dir=None, save_steps=0).to_dict()
        what = f"{arm_of(cfg)} seed {cfg.seed}, reward {reward_label(cfg)}"
        run = graph.add(node("rl", f"{__name__}:build_rl", {"config": config},
                             deps=base + _reward(graph, cfg.reward, cfg.reward_options), label=what))
        out.append((run, graph.add(node("evaluation", f"{__name__}:build_evaluation",
                                        {"name": f"{arm_of(cfg)} seed {cfg.seed}", "suites": suites,
                                         "eval_options": eval_options, "config": config},
                                        deps=[run], label=f"evaluation of {what}"))))
    return out


def add_transfer_runs(graph: Graph, configs, eval_options: dict, twin_free: bool = False) -> None:
    """Nodes of `transfer.transfer_results(configs, twin_free=twin_free, **eval_options)`: each config's base policy
    (an L3 hold-out's own), reward model and RL run, and the evaluations `transfer.part_scores` asks for, of the base
    and of the trained policy: one per call of `transfer.evaluation_calls` for the config's hold-out, with its suites
    and options (`holdout=` unless L0), so that the store keys are the chapter's."""
    from cotlab.experiments.rl import evaluation_options
    from cotlab.experiments.transfer import evaluation_calls

    eval_options = evaluation_options(configs, eval_options)
    for holdout in dict.fromkeys(cfg.holdout for cfg in configs):
        group = [cfg for cfg in configs if cfg.holdout == holdout]
        for suites, options, _ in evaluation_calls(holdout, twin_free=twin_free, **eval_options):
            add_runs(graph, group, options, suites=suites)


def plan(tier: str, chapters) -> Graph:
    """Every run-store artifact that `chapters` (stems of notebooks) build with `tier`'s parameters."""
    from cotlab.experiments import transfer
    from cotlab.experiments.studies import RL_CHAPTERS, chapter_runs
    from cotlab.experiments.tiers import notebook_parameters

    graph = Graph()
    for chapter in chapters:
        p = notebook_parameters(chapter, tier)
        if "pretrain_tier" in p:
            _base(graph, p["pretrain_tier"])
        if chapter in ("02_reward_models", "04_reward_to_rl"):
            models = p["reward_models"] if "reward_models" in p else p["rewards"]
            for m in models:
                options = {k: v for k, v in m.items() if k != "name"}
                if m["name"] in FAMILIES:
                    for seed in p["reward_seeds"]:
                        _reward(graph, m["name"], {**options, **p["reward_training"], "seed": seed})
        if chapter in RL_CHAPTERS:
            configs, _, eval_options = chapter_runs(chapter, tier)
            add_runs(graph, configs, eval_options)
        if chapter == transfer.CHAPTER:
            configs, _, eval_options = transfer.chapter_runs(tier)
            add_transfer_runs(graph, configs, eval_options, twin_free=transfer.TWIN_FREE)
        if p.get("calibration_grid"):  # the grid is known ahead; the pilot depends on its picks (built in the notebook)
            from cotlab.experiments import calibration

            configs, _ = calibration.grid_runs(p["rl_preset"], p["tuning_seeds"], p["rewards"][0],
                                               p["calibration_grid"])
            add_runs(graph, configs, eval_options, suites=calibration.DEV_SUITES)
    return graph


__all__ = ["COST", "Graph", "Node", "add_runs", "add_transfer_runs", "build_base", "build_evaluation", "build_reward",
           "build_rl", "node", "plan", "progress_of", "run_node"]

