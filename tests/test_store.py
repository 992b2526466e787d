"""The run store: stable keys, build-once reuse, atomic publication, corruption detection, scratch, atomic writes."""
import dataclasses
import json
import os
from pathlib import Path

import pytest

from cotlab.store import (CorruptRunError, CorruptRunWarning, RunStore, artifact_key, atomic_write_json, code_version,
                          read_jsonl, write_jsonl)

CODE = ["cotlab.store"]


@dataclasses.dataclass
class Opt:
    lr: float = 1e-5
    betas: tuple = (0.9, 0.999)


@dataclasses.dataclass
class Cfg:
    seed: int = 0
    name: str = "grpo"
    opt: Opt = dataclasses.field(default_factory=Opt)


def counting_build(calls, payload=b"weights"):
    def build(out: Path) -> None:
        calls.append(out)
        (out / "model.bin").write_bytes(payload)
        (out / "sub").mkdir()
        (out / "sub" / "metrics.jsonl").write_text('{"step": 1}\n')
    return build


def entries(kind_dir: Path) -> list[str]:
    """What a kind's directory holds, builders' lock files aside (they stay: removing a lock file races)."""
    return sorted(p.name for p in kind_dir.iterdir() if not p.name.startswith(".lock-")) if kind_dir.exists() else []


def test_key_is_stable_across_orderings_and_dataclass_vs_dict():
    as_dict = {"opt": {"betas": [0.9, 0.999], "lr": 1e-5}, "name": "grpo", "seed": 0}
    reordered = {"seed": 0, "name": "grpo", "opt": {"lr": 0.00001, "betas": (0.9, 0.999)}}
    key = artifact_key("rl", Cfg(), CODE)
    assert key == artifact_key("rl", as_dict, CODE) == artifact_key("rl", reordered, CODE)
    assert len(key) == 16 and int(key, 16) >= 0
    assert key == artifact_key("rl", Cfg(), list(reversed(CODE)))


def test_key_changes_with_config_kind_and_code(tmp_path):
    mod = tmp_path / "mod.py"
    mod.write_text("X = 1\n")
    base = artifact_key("rl", Cfg(), [mod])
    assert artifact_key("rl", Cfg(seed=1), [mod]) != base
    assert artifact_key("rl", Cfg(opt=Opt(lr=2e-5)), [mod]) != base
    assert artifact_key("dpo", Cfg(), [mod]) != base
    v1 = code_version([mod])
    mod.write_text("X = 2\n")
    assert code_version([mod]) != v1
    assert artifact_key("rl", Cfg(), [mod]) != base
    # a package (directory) covers all its .py files, including new ones
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    v_pkg = code_version([pkg])
    (pkg / "extra.py").write_text("Y = 1\n")
    assert code_version([pkg]) != v_pkg
    # module names resolve to the same source as their paths' contents, and differ between modules
    assert code_version(["cotlab.experiments"]) != code_version(["cotlab.experiments.tiers"])


def test_non_json_config_value_raises_type_error_naming_the_key():
    with pytest.raises(TypeError, match=r"opt\.device"):
        artifact_key("rl", {"opt": {"device": object()}}, CODE)
    with pytest.raises(TypeError, match="path"):
        artifact_key("rl", {"path": Path("x")}, CODE)


def test_get_or_create_builds_once_and_reuses(tmp_path, capsys):
    store, calls = RunStore(tmp_path / "runs"), []
    p1 = store.get_or_create("base", Cfg(), CODE, counting_build(calls), desc="base policy")
    p2 = store.get_or_create("base", {"seed": 0, "name": "grpo", "opt": {"lr": 1e-5, "betas": [0.9, 0.999]}},
                             CODE, counting_build(calls))
    assert p1 == p2 == tmp_path / "runs" / "base" / artifact_key("base", Cfg(), CODE)
    assert len(calls) == 1 and calls[0] != p1  # built in a temporary sibling, then renamed
    assert "reusing" in capsys.readouterr().err
    assert (p1 / "model.bin").read_bytes() == b"weights"
    manifest = json.loads((p1 / "MANIFEST.json").read_text())["files"]
    assert set(manifest) == {"run.json", "model.bin", "sub/metrics.jsonl"}
    assert manifest["model.bin"]["size"] == 7
    config = json.loads((p1 / "run.json").read_text())
    assert config["config"]["opt"]["betas"] == [0.9, 0.999] and config["kind"] == "base"
    assert config["key"] == p1.name and config["code_version"] == code_version(CODE)
    assert store.find("base", Cfg(), CODE) == p1 and store.find("base", Cfg(seed=5), CODE) is None
    assert entries(p1.parent) == [p1.name]  # no temp or scratch left
    [rec] = store.list()
    assert (rec.kind, rec.key, rec.path, rec.config["seed"]) == ("base", p1.name, p1, 0) and rec.created
    assert store.list("other") == []


def test_failed_build_leaves_nothing_behind(tmp_path):
    store = RunStore(tmp_path)

    def build(out: Path) -> None:
        (out / "half.bin").write_bytes(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.get_or_create("rm", {"a": 1}, CODE, build)
    assert entries(tmp_path / "rm") == []
    assert store.find("rm", {"a": 1}, CODE) is None and store.list() == []


def test_corrupted_file_is_detected_and_recomputed(tmp_path):
    store, calls = RunStore(tmp_path), []
    path = store.get_or_create("rm", {"a": 1}, CODE, counting_build(calls))
    data = bytearray((path / "model.bin").read_bytes())
    data[0] ^= 1
    (path / "model.bin").write_bytes(data)  # same size, one byte changed
    assert not store.verify(path)
    with pytest.raises(CorruptRunError, match="model.bin"):
        store.verify_or_raise(path)
    assert store.find("rm", {"a": 1}, CODE) is None
    with pytest.warns(CorruptRunWarning, match="corrupt"):
        again = store.get_or_create("rm", {"a": 1}, CODE, counting_build(calls))
    assert again == path and len(calls) == 2 and store.verify(path)
    assert (path / "model.bin").read_bytes() == b"weights"
    names = entries(tmp_path / "rm")
    assert len(names) == 2 and any(n.startswith(f".corrupt-{path.name}-") for n in names)


def test_missing_manifest_or_file_counts_as_corrupt(tmp_path):
    store, calls = RunStore(tmp_path), []
    path = store.get_or_create("rm", {"a": 1}, CODE, counting_build(calls))
    (path / "sub" / "metrics.jsonl").unlink()
    with pytest.raises(CorruptRunError, match="metrics.jsonl"):
        store.verify_or_raise(path)
    (path / "MANIFEST.json").unlink()
    with pytest.raises(CorruptRunError, match="MANIFEST"):
        store.verify_or_raise(path)
    with pytest.warns(CorruptRunWarning):
        store.get_or_create("rm", {"a": 1}, CODE, counting_build(calls))
    assert len(calls) == 2 and store.verify(path)


def test_scratch_survives_a_failed_build_and_is_removed_after_success(tmp_path):
    store, seen = RunStore(tmp_path), []
    cfg = {"steps": 4}

    def build(out: Path, scratch: Path) -> None:
        seen.append(scratch)
        done = int((scratch / "ckpt.txt").read_text()) if (scratch / "ckpt.txt").exists() else 0
        for step in range(done, cfg["steps"]):
            if step == 2 and len(seen) == 1:
                raise KeyboardInterrupt  # killed mid-run
            (scratch / "ckpt.txt").write_text(str(step + 1))
        (out / "resumed_from.txt").write_text(str(done))

    with pytest.raises(KeyboardInterrupt):
        store.get_or_create("rl", cfg, CODE, build)
    scratch = tmp_path / "rl" / f".scratch-{artifact_key('rl', cfg, CODE)}"
    assert seen == [scratch] and (scratch / "ckpt.txt").read_text() == "2"
    assert entries(tmp_path / "rl") == [scratch.name]
    assert store.scratch("rl", cfg, CODE) == scratch
    path = store.get_or_create("rl", cfg, CODE, build)
    assert (path / "resumed_from.txt").read_text() == "2" and not scratch.exists()
    assert entries(tmp_path / "rl") == [path.name]


def test_one_arg_build_gets_no_scratch(tmp_path):
    store = RunStore(tmp_path)
    store.get_or_create("x", {}, CODE, lambda out, *, flag=None: (out / "f").write_text("1"))
    assert not any(p.name.startswith(".scratch") for p in (tmp_path / "x").iterdir())


def test_build_may_not_write_reserved_files(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match="run.json"):
        store.get_or_create("x", {}, CODE, lambda out: (out / "run.json").write_text("{}"))
    assert entries(tmp_path / "x") == []


def test_a_nested_build_of_the_same_key_is_refused_not_deadlocked(tmp_path):
    store, calls = RunStore(tmp_path), []

    def nested(out: Path) -> None:  # a build that asks for its own key: a bug, reported instead of waiting forever
        store.get_or_create("x", {"a": 1}, CODE, counting_build(calls))

    with pytest.raises(RuntimeError, match="Deadlock"):
        store.get_or_create("x", {"a": 1}, CODE, nested)
    assert entries(tmp_path / "x") == []


def test_atomic_write_json_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"ok": 2, "bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_write_jsonl_writes_one_object_per_line(tmp_path):
    f = tmp_path / "m" / "metrics.jsonl"
    write_jsonl(f, [{"step": 1, "loss": 0.5}])
    with pytest.raises(TypeError):
        write_jsonl(f, [{"step": 2}, {"step": 2, "bad": object()}], append=True)
    write_jsonl(f, [{"step": 3}], append=True)
    assert [json.loads(line) for line in f.read_text().splitlines()] == [{"step": 1, "loss": 0.5}, {"step": 3}]
    write_jsonl(f, [{"step": 4}])  # without append: the file is replaced
    assert f.read_text() == '{"step": 4}\n'


def test_read_jsonl_gives_back_what_write_jsonl_wrote_in_order(tmp_path):
    f = tmp_path / "metrics.jsonl"
    records = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": None, "tags": ["a"]}]
    write_jsonl(f, records)
    assert read_jsonl(f) == records
    f.write_text(f.read_text() + "\n")  # a trailing blank line is no record
    write_jsonl(f, [{"step": 3}], append=True)
    assert [r["step"] for r in read_jsonl(f)] == [1, 2, 3]


def test_cotlab_runs_env_var_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("COTLAB_RUNS", str(tmp_path / "elsewhere"))
    assert RunStore().root == tmp_path / "elsewhere"
    assert RunStore(tmp_path / "explicit").root == tmp_path / "explicit"
    monkeypatch.delenv("COTLAB_RUNS")
    monkeypatch.chdir(tmp_path)
    assert RunStore().root == tmp_path / "runs"
    assert os.path.isabs(RunStore().root)
