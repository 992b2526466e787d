"""The study as a graph: the planner makes exactly the chapters' artifacts, the executor builds them in worker
processes (one thread each), stops what depends on a failure, retries a node whose worker died once, and the
notebooks' own calls then find everything in the run store."""
from pathlib import Path

import pytest

from cotlab import cli
from cotlab.experiments import calibration, studies, transfer
from cotlab.experiments.executor import available_cores, check_workers, describe_failures, execute_local
from cotlab.experiments.graph import Graph, node, plan
from cotlab.experiments.reproduce import CHAPTERS
from cotlab.experiments.tiers import PRESETS, notebook_parameters
from cotlab.store import canonical_json

NODES = "executor_nodes"


def test_the_plan_holds_each_chapters_runs_once_with_their_dependencies():
    graph = plan("smoke", CHAPTERS)
    nodes = graph.nodes.values()
    planned = {canonical_json(n.kwargs["config"]) for n in nodes if n.kind == "rl"}
    wanted = set()
    for chapter in studies.RL_CHAPTERS:
        configs, _, _ = studies.chapter_runs(chapter, "smoke")
        wanted |= {canonical_json(c.replace(output_dir=None, save_steps=0).to_dict()) for c in configs}
    configs, _, _ = transfer.chapter_runs("smoke")  # the domain-gap chapter's (its L3 runs have their own base)
    wanted |= {canonical_json(c.replace(output_dir=None, save_steps=0).to_dict()) for c in configs}
    p = notebook_parameters("03_grpo_vs_dpo", "smoke")  # chapter 3's calibration grid, known ahead
    configs, _ = calibration.grid_runs(p["rl_preset"], p["tuning_seeds"], p["rewards"][0], p["calibration_grid"])
    wanted |= {canonical_json(c.replace(output_dir=None, save_steps=0).to_dict()) for c in configs}
    assert planned == wanted
    bases = {n.kwargs["tier"]: n for n in nodes if n.kind == "base_policy"}
    assert set(bases) == {"smoke", "smoke-L3-above-below"}
    for n in nodes:
        assert all(d in graph.nodes for d in n.deps)
        if n.kind == "rl":
            assert bases[n.kwargs["config"]["policy"]].id in n.deps
            learned = n.kwargs["config"]["reward"] in ("preference", "judge")
            assert len(n.deps) == 1 + learned
        if n.kind == "evaluation" and "config" in n.kwargs:
            [run] = n.deps
            assert graph.nodes[run].kwargs["config"] == n.kwargs["config"]
    # chapter 2's reward models and the ones RL trains with are one node each; an RL run of seed s trains with the
    # reward model of seed s (the seed its Best-of-N uses too)
    rewards = [n for n in nodes if n.kind == "reward_model"]
    assert len({n.id for n in rewards}) == len(rewards)
    seed_of = {n.id: n.kwargs["options"]["seed"] for n in rewards}
    pairs = [(n.kwargs["config"]["seed"], seed_of[d]) for n in nodes if n.kind == "rl" for d in n.deps
             if d.startswith("reward_model/")]
    assert pairs and all(rl_seed == reward_seed for rl_seed, reward_seed in pairs)
    assert Graph.from_json(graph.to_json()).nodes == graph.nodes


def test_workers_are_checked():
    with pytest.raises(ValueError, match="workers must be a whole number >= 1, got 0"):
        check_workers(0)
    with pytest.warns(UserWarning, match=f"on {available_cores()} cores"):
        check_workers(available_cores() + 1)
    assert check_workers(None) == available_cores()
    assert cli.main(["reproduce", "--workers", "0", "--chapter", "00_shapeworld"]) == 2
    assert cli.main(["reproduce", "--address", "x:1", "--chapter", "00_shapeworld"]) == 2


def small_graph(tmp_path):
    log, g = str(tmp_path / "events"), Graph()
    a = g.add(node("x", f"{NODES}:record", {"log": log, "name": "a", "seconds": 1.0}, label="a"))
    b = g.add(node("x", f"{NODES}:record", {"log": log, "name": "b", "seconds": 1.0}, label="b"))
    bad = g.add(node("x", f"{NODES}:fail", {"message": "bad input"}, deps=[a], label="bad"))
    g.add(node("x", f"{NODES}:record", {"log": log, "name": "after bad"}, deps=[bad], label="after bad"))
    g.add(node("x", f"{NODES}:record", {"log": log, "name": "after b"}, deps=[b], label="after b"))
    g.add(node("x", f"{NODES}:die_once", {"marker": str(tmp_path / "marker"), "log": log, "name": "survivor"},
               deps=[a], label="survivor"))
    g.add(node("x", f"{NODES}:die_always", {}, label="doomed"))
    return g, log


@pytest.mark.slow
def test_a_failure_stops_its_dependents_a_dead_worker_is_retried_once_and_the_rest_finishes(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the workers import executor_nodes (spawn copies sys.path)
    graph, log = small_graph(tmp_path)
    lines = []
    report = execute_local(graph, workers=2, log_dir=tmp_path / "logs", progress=lines.append, interval=0.5)
    events = [line.split() for line in open(log)]
    ended = {e[1] if len(e) == 4 else " ".join(e[1:-2]) for e in events if e[0] == "end"}
    assert ended == {"a", "b", "after b", "survivor"}
    assert all(e[-1] == "1" for e in events if e[0] == "end")  # one torch thread per worker
    starts = {e[1]: float(e[2]) for e in events if e[0] == "start" and e[1] in ("a", "b")}
    ends = {e[1]: float(e[2]) for e in events if e[0] == "end" and e[1] in ("a", "b")}
    assert max(starts.values()) < min(ends.values())  # two workers ran side by side
    labels = {graph.nodes[i].label: m for i, m in report.failed.items()}
    assert set(labels) == {"bad", "doomed"}
    assert "bad failed: ValueError: bad input" in labels["bad"] and "logs/x-" in labels["bad"]
    assert "worker process died" in labels["doomed"] and "2 attempts" in labels["doomed"]
    assert [graph.nodes[i].label for i in report.skipped] == ["after bad"]
    assert "skipped because of it: after bad" in describe_failures(graph, report)
    assert any("running" in line and "waiting" in line for line in lines)


@pytest.mark.slow
def test_the_executor_builds_what_before_after_then_only_reads(tmp_path, monkeypatch, capfd):
    from cotlab.experiments.rl import before_after
    from cotlab.training import DPOConfig, GRPOConfig

    tiny = dict(policy="tiny", max_steps=2, prompts_per_step=2, num_generations=2, learning_rate=1e-3,
                guidance_scale=2.0)
    configs = [GRPOConfig(**tiny), DPOConfig(**tiny)]
    evaluation = {"images_per_prompt": 1, "prompts_per_category": 1, "seeds": [0]}
    monkeypatch.setattr(studies, "chapter_runs", lambda chapter, tier: (configs, [{}, {}], evaluation))
    monkeypatch.setitem(PRESETS["03_grpo_vs_dpo"]["smoke"], "calibration_grid", {})  # only the runs above
    monkeypatch.setenv("COTLAB_RUNS", str(tmp_path / "runs"))
    graph = plan("smoke", ["03_grpo_vs_dpo"])
    assert graph.counts() == {"base_policy": 1, "evaluation": 3, "rl": 2}
    report = execute_local(graph, workers=2, log_dir=tmp_path / "logs")
    assert report.ok and len(report.done) == len(graph)
    capfd.readouterr()
    results = before_after(configs, progress=False, **evaluation)
    err = capfd.readouterr().err
    assert "building" not in err and err.count("reusing") >= 5
    assert set(results["algorithm"]) == {"base", "grpo", "dpo"}


@pytest.mark.slow
def test_a_base_policy_runs_alone_with_every_workers_thread(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    log, g = str(tmp_path / "events"), Graph()
    g.add(node("x", f"{NODES}:record", {"log": log, "name": "early", "seconds": 1.0}, label="early"))
    base = g.add(node("base_policy", f"{NODES}:record", {"log": log, "name": "base", "seconds": 1.0}, label="base"))
    g.add(node("x", f"{NODES}:record", {"log": log, "name": "other", "seconds": 0.5}, label="other"))
    g.add(node("x", f"{NODES}:record", {"log": log, "name": "after", "seconds": 0.5}, deps=[base], label="after"))
    assert execute_local(g, workers=2, log_dir=tmp_path / "logs").ok
    events = [line.split() for line in open(log)]
    times = {(e[0], e[1]): float(e[2]) for e in events}
    threads = {e[1]: e[-1] for e in events if e[0] == "end"}
    assert threads == {"early": "1", "base": "2", "other": "1", "after": "1"}
    others = [n for n in ("early", "other", "after")]
    assert all(times[("end", o)] <= times[("start", "base")] or times[("start", o)] >= times[("end", "base")]
               for o in others)  # nothing overlaps the base
