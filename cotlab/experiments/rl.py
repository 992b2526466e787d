"""RL runs as cached stages of the run store: one trained policy per config, trained once and then reused.

A notebook asks for `rl_run(cfg)`; the store keys the run by the config (without `output_dir`) and the sources of
the trainers, losses, rewards, log-prob kernels, sampler and base policy (`cotlab.store.RL_CODE`), so editing any of
them retrains exactly the runs they affect. A killed
run resumes from its last checkpoint (kept in the store's scratch directory until the run is published).
"""
from __future__ import annotations

from pathlib import Path

from cotlab.store import EVAL_CODE, RL_CODE, RunStore


def rl_run(cfg, *, store=None, progress: bool = True, checkpoint_every: int = 10) -> Path:
    """The run directory of `cfg` (a GRPOConfig or DPOConfig): `policy/` (the trained JanusPolicy), `metrics.jsonl`
    (one row per optimizer step) and `config.json`. Trained on first use, with a checkpoint every `checkpoint_every`
    steps in scratch space."""
    import shutil

    from cotlab.training import trainer_for

    store = store or RunStore()
    key_config = cfg.replace(output_dir=None, save_steps=0).to_dict()

    def build(out: Path, scratch: Path) -> None:
        run_cfg = cfg.replace(output_dir=str(scratch), save_steps=checkpoint_every)
        trainer = trainer_for(run_cfg, progress=progress)
        trainer.train(resume_from="latest")
        trainer.policy.save_pretrained(out / "policy")
        shutil.copy(scratch / "metrics.jsonl", out / "metrics.jsonl")
        (out / "config.json").write_text((scratch / sorted(p.name for p in scratch.glob("checkpoint-*"))[-1]
                                          / "config.json").read_text())

    return store.get_or_create("rl", key_config, RL_CODE, build,
                               desc=f"{cfg.algorithm} on {cfg.policy}, reward {cfg.reward}, seed {cfg.seed}")


def reward_label(cfg) -> str:
    """The reward a run was trained with, as the tables name it: "metric", "judge[id+captions]", ..."""
    from cotlab.rewards.learned import DEFAULT_BREADTH

    if cfg.reward in DEFAULT_BREADTH:
        return f"{cfg.reward}[{cfg.reward_options.get('breadth', DEFAULT_BREADTH[cfg.reward])}]"
    return cfg.reward


SUITES = (("compbench", "val"), ("geneval", None))  # before_after's default: ID val and the OOD suite


def evaluation_scores(policy_dir, name: str, *, suites=SUITES, store=None, progress: bool = True,
                      **eval_options) -> list[dict]:
    """Rows {suite, category, value, continuous, accuracy, se} of `policy_dir`'s evaluation on `suites`
    (`EvalResult.scores`: both metrics on every suite, the headline `value` with its per-image bootstrap SE):
    evaluated once per (policy checkpoint, evaluation settings), then read from the run store. With `scale=` (a
    benchmarks scale, `paper_tier.eval_options`) the suites are the paper's benchmarks, written in the official
    layouts and scored by the transformers scorers (`paper_tier.benchmark_scores`), in rows of the same shape."""
    import json

    from cotlab.evaluation import evaluate_policy
    from cotlab.policy import JanusPolicy

    store = store or RunStore()
    scale = eval_options.get("scale")  # a benchmarks scale (`paper_tier.eval_options`): the paper's benchmarks

    def build(out: Path) -> None:
        if scale is not None:
            from cotlab.experiments.paper_tier import benchmark_scores

            options = {k: v for k, v in eval_options.items() if k != "scale"}
            rows = benchmark_scores(policy_dir, name, scale, out, suites=suites, progress=progress, **options)
            (out / "scores.json").write_text(json.dumps(rows))
            return
        policy, rows = JanusPolicy.from_pretrained(policy_dir), []
        for suite, split in suites:
            table = evaluate_policy(policy, suite, split, policy_name=name, progress=progress, **eval_options).scores()
            rows += [{"suite": suite, "category": c, **{k: float(v) for k, v in r.items()}}
                     for c, r in table.iterrows()]
        (out / "scores.json").write_text(json.dumps(rows))

    # A checkpoint in the run store is named by its place there (its key hashes its config and code); one
    # elsewhere by its absolute path.
    where, root = Path(policy_dir).resolve(), store.root.resolve()
    config = {"policy": str(where.relative_to(root) if where.is_relative_to(root) else where),
              "suites": [list(x) for x in suites], **eval_options}
    code = EVAL_CODE if scale is None else BENCHMARK_EVAL_CODE
    path = store.get_or_create("evaluation", config, code, build, desc=name)
    return json.loads((path / "scores.json").read_text())


# What a benchmark evaluation's store key hashes: ShapeWorld's evaluation code, the benchmarks' generation and scorers,
# the paper tier's evaluation and the stand-ins it may build.
BENCHMARK_EVAL_CODE = (*EVAL_CODE, "cotlab.evaluation", "cotlab.prompt_files", "cotlab.checkpoints",
                       "cotlab.experiments.paper_tier", "cotlab.experiments.stand_ins")


def base_dir(policy: str, store=None) -> Path:
    """The checkpoint directory a config's `policy` names: a base-policy tier's (trained once, cached) or itself."""
    from cotlab.policy.pretrain import PRETRAIN_TIERS, base_policy

    return base_policy(policy, store=store)[1] if policy in PRETRAIN_TIERS else Path(policy)


def evaluation_options(configs, eval_options: dict) -> dict:
    """`eval_options` with the CFG weight the runs sample with, when not given (every policy is evaluated at one)."""
    if "guidance_scale" in eval_options:
        return dict(eval_options)
    weights = sorted({cfg.guidance_scale for cfg in configs})
    if len(weights) > 1:
        raise ValueError(f"the configs sample at CFG weights {weights}; pass guidance_scale= to evaluate every "
                         f"policy at one weight")
    return {**eval_options, "guidance_scale": weights[0]}


def before_after(configs, *, tags=None, suites=SUITES, store=None, progress: bool = True, **eval_options):
    """Train each config (cached, `rl_run`) and evaluate its base policy and the trained policy on `suites`.

    Returns a long DataFrame, one row per (policy, suite, category) plus a category "overall" per (policy, suite):
    algorithm (the arm, `cotlab.training.arm_of`: "grpo", "dpo", "dpo-online", "grpo-cfg"; "base" for the starting
    policy), reward, seed, suite, category, value (CompBench-style: mean value;
    GenEval-style: accuracy, and overall = mean of task accuracies), both metrics on every suite (continuous,
    accuracy), the headline value's per-image bootstrap SE (se), and the mean training reward of the first and
    last 10 steps (GRPO's is of on-policy samples; DPO's is of its round buffer, sampled at the round's start), and
    the run's `health`: "ok", or the codes of `cotlab.training.health` raised at any step of its training (e.g.
    "constant_rewards,zero_grad": it trained on nothing), read from its metrics.
    `tags` (one dict per config) add columns to that config's rows, e.g. {"group size": 8} for a sweep.
    `eval_options` go to `evaluate_policy` (images_per_prompt, guidance_scale, prompts_per_category, seeds...); every
    policy gets the same ones, so the comparisons are paired. The CFG weight defaults to the one the runs sample
    with. Each evaluation is cached in the run store (`evaluation_scores`)."""
    import numpy as np
    import pandas as pd

    from cotlab.training import arm_of
    from cotlab.training.health import run_health
    from cotlab.training.metrics import read_metrics

    store = store or RunStore()
    configs = list(configs)
    eval_options = evaluation_options(configs, eval_options)
    tags = list(tags) if tags is not None else [{}] * len(configs)
    if len(tags) != len(configs):
        raise ValueError(f"{len(tags)} tags for {len(configs)} configs; give one dict per config")

    def scores(policy_dir, name):
        return evaluation_scores(policy_dir, name, suites=suites, store=store, progress=progress, **eval_options)

    rows, bases = [], {}
    for cfg, tag in zip(configs, tags):
        if cfg.policy not in bases:
            bases[cfg.policy] = scores(base_dir(cfg.policy, store), f"base {cfg.policy}")
            rows += [{"algorithm": "base", "reward": "none", "policy": cfg.policy, "seed": None, **r}
                     for r in bases[cfg.policy]]
        path = rl_run(cfg, store=store, progress=progress)
        metrics = read_metrics(path)
        curve = [r["reward/mean"] for r in metrics]
        trained = scores(path / "policy", f"{arm_of(cfg)} seed {cfg.seed}")
        rows += [{"algorithm": arm_of(cfg), "reward": reward_label(cfg), "policy": cfg.policy, "seed": cfg.seed,
                  **tag, **r,
                  "reward_first10": float(np.mean(curve[:10])), "reward_last10": float(np.mean(curve[-10:])),
                  "run": str(path), "health": run_health(metrics)} for r in trained]
    return pd.DataFrame(rows)


def run_metrics(runs, columns=None):
    """The per-step metrics of training runs as one long table: `runs` is a sequence of (labels, run directory)
    pairs, each directory holding the `metrics.jsonl` the trainers write (one row per optimizer step); every step
    becomes a row of the labels (a dict, e.g. {"algorithm": "grpo", "seed": 0}) followed by its metrics. `columns`
    keeps only those metrics, in that order (a list or tuple), or keeps and renames them (a dict old -> new name); a
    metric a run did not log is left empty. Metrics go by their names in `cotlab.training.metrics` (a run logged
    under older names is read under the current ones)."""
    import pandas as pd

    from cotlab.training.metrics import read_metrics

    rename = dict(columns) if isinstance(columns, dict) else {c: c for c in columns} if columns is not None else None
    rows = []
    for labels, run_dir in runs:
        for record in read_metrics(Path(run_dir) / "metrics.jsonl"):
            picked = record if rename is None else {new: record.get(old) for old, new in rename.items()}
            rows.append({**labels, **picked})
    return pd.DataFrame(rows)


def training_curves(configs, *, store=None):
    """Chapter 3's training curves: per run of `configs` (trained once, cached: `rl_run`) and optimizer step, its
    reward (as the tables name it), arm, seed, step, the mean training reward ("training reward": GRPO's of its
    on-policy samples, DPO's of its round buffer) and the loss."""
    from cotlab.training import arm_of

    return run_metrics([({"reward": reward_label(cfg), "algorithm": arm_of(cfg), "seed": cfg.seed},
                         rl_run(cfg, store=store, progress=False)) for cfg in configs],
                       {"step": "step", "reward/mean": "training reward", "loss/total": "loss"})


PROBE_COLUMNS = {"probe/reward_mean": "probe reward", "probe/kl_base_k1": "KL to base"}


def probe_curves(configs, *, store=None):
    """The probe's points along each run of `configs` (`RLConfig.probe_every`; trained once, cached: `rl_run`): per
    run and probed step its reward, arm and seed, the mean reward of fresh on-policy samples on the fixed ID-dev probe
    prompts ("probe reward": the same prompts and draws for every run, so the curves of two arms are paired, and for
    DPO, unlike its training reward, of its own samples) and KL(pi || base) per image by the k1 estimator ("KL to
    base"). Empty when no run probed."""
    from cotlab.training import arm_of

    curves = run_metrics([({"reward": reward_label(cfg), "algorithm": arm_of(cfg), "seed": cfg.seed},
                           rl_run(cfg, store=store, progress=False)) for cfg in configs],
                         {"step": "step", **PROBE_COLUMNS})
    return curves.dropna(subset=list(PROBE_COLUMNS.values()), how="all").reset_index(drop=True)


def policy_samples(runs: dict, prompts, *, seed: int = 0, store=None) -> tuple[list, list[str]]:
    """One image per prompt of `prompts` from the base policy the runs start from (the first run's `policy`) and from
    each trained run of `runs` (name -> config; trained once, cached: `rl_run`), every policy with the same sampling
    seed at the first run's CFG weight. Rows in the order base, then `runs`; each image titled
    "name: prompt (ok|wrong)" by the exact scorer. Returns (images, titles), for `cotlab.plotting.image_grid`."""
    import torch

    from cotlab.policy import JanusPolicy
    from cotlab.training import load_policy
    from cotlab.world import score_batch

    if not runs:
        raise ValueError("policy_samples needs at least one run (name -> config)")
    prompts, first = list(prompts), next(iter(runs.values()))
    policies = {"base": load_policy(first.policy)}
    policies |= {name: JanusPolicy.from_pretrained(rl_run(cfg, store=store, progress=False) / "policy")
                 for name, cfg in runs.items()}
    images, titles = [], []
    for name, policy in policies.items():
        roll = policy.sample([p.text for p in prompts], 1, guidance_scale=first.guidance_scale,
                             generator=torch.Generator().manual_seed(seed))
        images += roll.images
        titles += [f"{name}: {p.text} ({'ok' if s.correct else 'wrong'})"
                   for p, s in zip(prompts, score_batch(prompts, roll.images))]
    return images, titles


def _plain(value):
    """A swept value as it was given: tag columns become floats where base rows leave them empty."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def health_flag(runs, label=lambda run: "") -> str:
    """A table cell naming the flagged runs among `runs` (rows of `before_after`'s table): "ok", or e.g.
    "flagged: grpo seed 1 (constant_rewards,zero_grad)"; "unknown" for a table without a health column."""
    if "health" not in runs:
        return "unknown"
    runs = runs[runs["algorithm"] != "base"]
    flagged = dict.fromkeys(f"{run['algorithm']} {label(run)}seed {_plain(run['seed'])} ({run['health']})"
                            for run in runs.assign(health=runs["health"].fillna("unknown")).to_dict("records")
                            if run["health"] != "ok")  # one entry per run (its rows repeat it per suite, category)
    return "flagged: " + "; ".join(flagged) if flagged else "ok"


def summarize_runs(results, by=("reward", "algorithm")):
    """Mean and 95% t-interval over seeds of each suite's overall score, and of its gain over the base model, per
    group of `by` (columns of `before_after`'s table). Columns: ID, ID ±95%, ID gain, ID gain ±95%, the same
    for OOD, and health ("ok", or the seeds whose training raised a health warning: their numbers may be of runs
    that trained on nothing)."""
    import pandas as pd

    from cotlab.evaluation import mean_ci

    overall = results[results["category"] == "overall"]
    base = overall[overall["algorithm"] == "base"].set_index("suite")["value"]
    rows = []
    for key, group in overall[overall["algorithm"] != "base"].groupby(list(by), sort=False):
        row = dict(zip(by, map(_plain, key if isinstance(key, tuple) else (key,))))
        row["seeds"] = group["seed"].nunique()
        for suite, name in (("compbench", "ID"), ("geneval", "OOD")):
            values = group[group["suite"] == suite]["value"]
            row[name], row[f"{name} ±95%"] = mean_ci(values)
            row[f"{name} gain"], row[f"{name} gain ±95%"] = mean_ci(values - base[suite])
        row["health"] = health_flag(group)
        rows.append(row)
    return pd.DataFrame(rows)


def algorithm_gaps(results, by: str = "reward", category: str = "overall"):
    """GRPO minus DPO score per value of `by` and suite, for one `category` (a CompBench-style category, a
    GenEval-style task, or "overall"), paired by seed (a seed's GRPO and DPO runs are aligned): mean, 95% t-interval
    half-width, which algorithm leads ("GRPO", "DPO", or "neither" when the interval includes 0), and health ("ok",
    or the runs whose training raised a health warning)."""
    import pandas as pd

    from cotlab.evaluation import mean_ci

    overall = results[(results["category"] == category) & (results["algorithm"] != "base")]
    rows = []
    for value, group in overall.groupby(by, sort=False):
        for suite, name in (("compbench", "ID"), ("geneval", "OOD")):
            by_seed = group[group["suite"] == suite].pivot_table(index="seed", columns="algorithm", values="value")
            if by_seed.empty:  # the category belongs to the other suite
                continue
            diff, half = mean_ci(by_seed["grpo"] - by_seed["dpo"])
            lead = "neither" if abs(diff) <= half else ("GRPO" if diff > 0 else "DPO")
            rows.append({by: _plain(value), "suite": name, "GRPO - DPO": diff, "±95%": half, "ahead": lead,
                         "seeds": len(by_seed), "health": health_flag(group[group["suite"] == suite])})
    return pd.DataFrame(rows)


# Chapter 3's contrasts between arms (`cotlab.training.ARMS`) and what each isolates, all on aligned runs.
ARM_CONTRASTS = (
    ("grpo", "dpo", "the paper's comparison: loss and data freshness together"),
    ("grpo", "dpo-online", "the loss alone: both learn from the same on-policy groups"),
    ("dpo-online", "dpo", "the data alone: DPO's pairs fresh each step vs mined once from the base model"),
    ("grpo-cfg", "grpo", "the policy definition: GRPO optimising the CFG distribution it samples vs the conditional"),
)


def arm_contrasts(results, metrics=("value", "accuracy", "continuous")):
    """Per reward model, contrast of `ARM_CONTRASTS` whose two arms both ran, suite and metric: the difference of the
    overall scores paired by seed (mean and 95% t-interval half-width), which side leads ("neither" when the interval
    includes 0), the seeds and what the contrast isolates."""
    import pandas as pd

    from cotlab.evaluation import mean_ci

    overall = results[(results["category"] == "overall") & (results["algorithm"] != "base")]
    rows = []
    for reward, group in overall.groupby("reward", sort=False):
        for a, b, isolates in ARM_CONTRASTS:
            if not {a, b} <= set(group["algorithm"]):
                continue
            for suite, name in (("compbench", "ID"), ("geneval", "OOD")):
                for metric in metrics:
                    by_seed = group[group["suite"] == suite].pivot_table(index="seed", columns="algorithm",
                                                                         values=metric)
                    diff, half = mean_ci((by_seed[a] - by_seed[b]).dropna())
                    rows.append({"reward": reward, "contrast": f"{a} - {b}", "suite": name, "metric": metric,
                                 "difference": diff, "±95%": half,
                                 "ahead": "neither" if abs(diff) <= half else (a if diff > 0 else b),
                                 "seeds": int((by_seed[a] - by_seed[b]).notna().sum()), "isolates": isolates})
    return pd.DataFrame(rows)


def gap_lines(gaps) -> list[str]:
    """Markdown lines, one per row of `algorithm_gaps`' table: "* **reward**, suite: GRPO - DPO = +0.012 ± 0.034"
    followed by which algorithm is ahead, or that the interval includes 0. The row's first column (the `by` of
    `algorithm_gaps`) names it."""
    lines = []
    for row in gaps.to_dict("records"):
        name = next(iter(row.values()))
        lead = ("(interval includes 0: no clear winner)" if row["ahead"] == "neither"
                else f"(**{row['ahead']}** ahead)")
        lines.append(f"* **{name}**, {row['suite']}: GRPO - DPO = {row['GRPO - DPO']:+.3f} ± {row['±95%']:.3f} {lead}")
    return lines


def sweep_change(results, variable: str) -> list[str]:
    """Markdown lines: per algorithm and suite, the overall score at the smallest and the largest value of the swept
    `variable`, and their difference paired by seed (mean and 95% t-interval), with a verdict, and the runs whose
    training raised a health warning."""
    from cotlab.evaluation import mean_ci

    overall = results[(results["category"] == "overall") & (results["algorithm"] != "base")]
    low, high = _plain(overall[variable].min()), _plain(overall[variable].max())
    lines = []
    for algorithm in ("grpo", "dpo"):
        parts = []
        for suite, name in (("compbench", "ID"), ("geneval", "OOD")):
            runs = overall[(overall["algorithm"] == algorithm) & (overall["suite"] == suite)]
            by_seed = runs.pivot_table(index="seed", columns=variable, values="value")
            diff, half = mean_ci(by_seed[high] - by_seed[low])
            verdict = "no clear change" if abs(diff) <= half else ("up" if diff > 0 else "down")
            parts.append(f"{name} {by_seed[low].mean():.3f} -> {by_seed[high].mean():.3f} "
                         f"({diff:+.3f} ± {half:.3f}, {verdict})")
        runs = overall[overall["algorithm"] == algorithm]
        health = health_flag(runs, lambda run: f"{variable} {_plain(run[variable])} ")
        flag = f" **Health: {health}.**" if health.startswith("flagged") else ""
        lines.append(f"* **{algorithm.upper()}**, {variable} {low} -> {high}: " + "; ".join(parts) + flag)
    return lines


__all__ = ["ARM_CONTRASTS", "PROBE_COLUMNS", "SUITES", "algorithm_gaps", "arm_contrasts", "base_dir", "before_after",
           "evaluation_options", "evaluation_scores", "gap_lines", "health_flag", "policy_samples", "probe_curves", "reward_label",
           "rl_run", "run_metrics", "summarize_runs", "sweep_change", "training_curves"]
