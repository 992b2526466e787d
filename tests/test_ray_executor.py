"""The study's graph on Ray (issue 17): a local Ray instance builds the same run store as the local executor, a
failure stops only its dependents, a dead worker is retried once by Ray, and an unreachable cluster is refused
before any work."""
import json
import os
import sys
import time
from pathlib import Path

import pytest

from cotlab.experiments.executor import execute
from cotlab.experiments.graph import Graph, node

ray = pytest.importorskip("ray")

NODES = "graph_nodes"  # tests/graph_nodes.py
HERE = str(Path(__file__).parent)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module: its start-up takes seconds. Its workers import graph_nodes
    from this folder (PYTHONPATH, inherited by every process Ray starts)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")])))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def chain_graph() -> Graph:
    """a -> b -> c and d, published to the store; "bad" (after a) fails, and so "e" and "f" after it are skipped."""
    g = Graph()
    a = g.add(node("toy", f"{NODES}:publish", {"name": "a"}, label="a"))
    b = g.add(node("toy", f"{NODES}:publish", {"name": "b", "after": ["a"]}, deps=[a], label="b"))
    g.add(node("toy", f"{NODES}:publish", {"name": "c", "after": ["a", "b"]}, deps=[b], label="c"))
    g.add(node("toy", f"{NODES}:publish", {"name": "d"}, label="d"))
    bad = g.add(node("toy", f"{NODES}:fail", {"message": "bad input"}, deps=[a], label="bad"))
    e = g.add(node("toy", f"{NODES}:publish", {"name": "e", "after": ["a"]}, deps=[bad], label="e"))
    g.add(node("toy", f"{NODES}:publish", {"name": "f", "after": ["a", "e"]}, deps=[e], label="f"))
    return g


def store_contents(root: Path) -> dict:
    """{kind/key: (files and sha256s, run.json without its time)} of every published run; nothing else but locks."""
    runs = {}
    for kind in root.iterdir():
        for entry in kind.iterdir():
            assert not entry.name.startswith((".tmp-", ".scratch-", ".corrupt-")), f"left behind: {entry}"
            if entry.name.startswith("."):
                continue
            files = json.loads((entry / "MANIFEST.json").read_text())["files"]
            config = json.loads((entry / "run.json").read_text())
            files.pop("run.json"), config.pop("created")
            runs[f"{kind.name}/{entry.name}"] = (files, config)
    return runs


def labels(graph, ids):
    return sorted(graph.nodes[i].label for i in ids)


@pytest.mark.slow
def test_ray_builds_the_same_store_as_the_local_executor(local_ray, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(HERE)  # the local executor's workers import graph_nodes (spawn copies sys.path)
    graph, reports, seconds = chain_graph(), {}, {}
    for executor in ("local", "ray"):
        monkeypatch.setenv("COTLAB_RUNS", str(tmp_path / executor))  # Ray started before: the tasks are told
        lines, began = [], time.monotonic()
        reports[executor] = execute(graph, executor=executor, workers=2 if executor == "local" else None,
                                    log_dir=tmp_path / f"logs-{executor}", progress=lines.append)
        seconds[executor] = time.monotonic() - began
        assert any("running" in line and "waiting" in line for line in lines)
    local, on_ray = reports["local"], reports["ray"]
    assert labels(graph, on_ray.done) == labels(graph, local.done) == ["a", "b", "c", "d"]
    assert labels(graph, on_ray.failed) == labels(graph, local.failed) == ["bad"]
    [message] = on_ray.failed.values()
    assert "bad failed: ValueError: bad input" in message and "logs-ray/toy-" in message
    assert on_ray.skipped == local.skipped and labels(graph, on_ray.skipped) == ["e", "f"]
    assert set(on_ray.skipped.values()) == set(on_ray.failed)  # named: skipped because of "bad"
    contents = store_contents(tmp_path / "ray")
    assert len(contents) == 4 and contents == store_contents(tmp_path / "local")
    print(f"local {seconds['local']:.1f} s, ray {seconds['ray']:.1f} s")


@pytest.mark.slow
def test_a_dead_ray_worker_is_retried_once_then_reported(local_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("COTLAB_RUNS", str(tmp_path / "runs"))
    g = Graph()
    g.add(node("toy", f"{NODES}:die_once", {"marker": str(tmp_path / "marker"), "name": "survivor"},
               label="survivor"))
    doomed = g.add(node("toy", f"{NODES}:die_always", {}, label="doomed"))
    g.add(node("toy", f"{NODES}:publish", {"name": "after doomed"}, deps=[doomed], label="after doomed"))
    report = execute(g, executor="ray", log_dir=tmp_path / "logs")
    assert labels(g, report.done) == ["survivor"]
    [message] = report.failed.values()
    assert "Ray worker died" in message and "2 attempts" in message and "doomed" not in report.done
    assert labels(g, report.skipped) == ["after doomed"]
    assert [k.split("/")[0] for k in store_contents(tmp_path / "runs")] == ["toy"]  # the survivor, nothing half-done


def test_an_unreachable_address_is_refused_before_any_work(tmp_path):
    g = Graph()
    g.add(node("toy", f"{NODES}:die_always", {}, label="never run"))
    began = time.monotonic()
    with pytest.raises(ValueError, match=r"no Ray cluster answers at 127\.0\.0\.1:1 .*ray start --head"):
        execute(g, executor="ray", address="127.0.0.1:1", log_dir=tmp_path / "logs")
    assert time.monotonic() - began < 10 and not (tmp_path / "logs").exists()
    with pytest.raises(ValueError, match="is not host:port"):
        execute(g, executor="ray", address="nonsense", log_dir=tmp_path / "logs")


def test_without_ray_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ImportError, match=r"pip install cotlab\[cluster\]"):
        execute(Graph(), executor="ray", log_dir=tmp_path)
