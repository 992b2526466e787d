"""Hostile and unlucky cases: planted pickles never run, kills while checkpointing never block a resume, concurrent
builders never corrupt the run store, one output directory holds one run, non-finite training stops."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from cotlab.policy import build_shapeworld_policy
from cotlab.state_files import StateFileError, load_state, save_state
from cotlab.store import CorruptRunError, RunStore, artifact_key
from cotlab.training import DPOConfig, GRPOConfig, trainer_for
from tiny import tiny_policy

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a red circle", "two blue squares", "a green cross left of a yellow diamond", "a small striped triangle"]
SECONDS = ("time/",)  # wall-clock fields differ between runs; everything else must be equal


def tiny_trainer(out, **fields):
    """A tiny DPO run (2 rounds of 2 steps, a checkpoint every step, a round-start reference: every kind of state)."""
    policy = tiny_policy()
    cfg = DPOConfig(**{**dict(policy="tiny", max_steps=2, rounds=2, prompts_per_step=4, num_generations=4,
                              learning_rate=1e-3, save_steps=1, reference="round_start", output_dir=str(out)),
                       **fields})
    return trainer_for(cfg, policy=policy, prompts=PROMPTS, progress=False)


def run(code: str, *args, timeout=300, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT, **kw)


class Payload:
    """Unpickling this creates `target`: what a planted checkpoint would do if it were ever unpickled."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return open, (self.target, "w")


def plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": Payload(marker)}, path)  # a torch checkpoint file: a zip holding the pickle
    with pytest.raises(Exception):  # the payload is live: weights_only=False would run it
        torch.load(path, weights_only=True)
    assert not marker.exists()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """An uninterrupted tiny run, in one thread (the subprocess runs are too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = tiny_trainer(tmp_path_factory.mktemp("whole"))
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    return trainer


def without_seconds(history):
    return [{k: v for k, v in row.items() if not k.startswith(SECONDS)} for row in history]


# -- 1. untrusted files never execute code ----------------------------------------------------------------------------

def test_no_unrestricted_unpickling_anywhere_in_cotlab():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "cotlab").rglob("*.py")
                 if "weights_only=False" in p.read_text() or "pickle.load" in p.read_text()]
    assert offenders == []


@pytest.mark.parametrize("planted", ["trainer_state.safetensors", "trainer_state.json", "rank0.safetensors",
                                     "rank0.json", "trainer_state.pt"])
def test_a_planted_pickle_in_a_training_checkpoint_is_refused_naming_the_file(finished, tmp_path, planted):
    out = tmp_path / "run"
    source = Path(finished.cfg.output_dir)
    import shutil

    shutil.copytree(source, out)
    newest = out / "checkpoint-000004"
    marker = tmp_path / "pwned"
    if planted == "trainer_state.pt":  # an older cotlab's pickled state, alone in a checkpoint directory
        for f in newest.glob("trainer_state.*"):
            f.unlink()
        plant(newest / planted, marker)
        with pytest.raises(FileNotFoundError, match=r"checkpoint-000004.*trainer_state\.pt.*never loaded"):
            tiny_trainer(out).train(resume_from=newest)
    else:
        plant(newest / planted, marker)
        with pytest.raises(StateFileError, match=planted.replace(".", r"\.")):
            tiny_trainer(out).train(resume_from="latest")
    assert not marker.exists()


def test_a_planted_pickle_in_a_pretraining_checkpoint_is_refused_naming_the_file(tmp_path):
    from cotlab.policy.pretrain import PRETRAIN_TIERS, pretrain

    cfg = PRETRAIN_TIERS["tiny"]
    scratch, marker = tmp_path / "scratch", tmp_path / "pwned"
    plant(scratch / "step-000010" / "pretrain_state.safetensors", marker)
    (scratch / "step-000010" / "pretrain_state.json").write_text('{"format": "cotlab-state-1", "state": {}}')
    with pytest.raises(StateFileError, match=r"step-000010/pretrain_state\.safetensors"):
        pretrain(cfg, tmp_path / "out", scratch, progress=False)
    plant(scratch / "checkpoint.pt", marker)  # an older cotlab's pickled checkpoint: removed, never loaded
    import shutil

    shutil.rmtree(scratch / "step-000010")
    pretrain(cfg, tmp_path / "out", scratch, progress=False)
    assert not marker.exists() and not (scratch / "checkpoint.pt").exists()


def test_state_files_round_trip_what_a_checkpoint_holds(tmp_path):
    import numpy as np

    import random

    base = torch.arange(6.0)
    state = {"history": [{"step": 1, "loss": float("nan"), "ok": True, "name": None}], "tuple": (1, (2.5, "x")),
             "int_keys": {0: {"exp_avg": base[:3], "step": torch.tensor(3.0)}, 1: {"exp_avg": base[3:]}},
             "python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "pcg": np.random.default_rng(5).bit_generator.state, "tagged": {"__tensor__": "not a tensor"}}
    save_state(tmp_path, "s", state)
    back = load_state(tmp_path, "s")
    assert back["history"][0]["ok"] is True and np.isnan(back["history"][0]["loss"])
    assert back["tuple"] == (1, (2.5, "x")) and back["tagged"] == {"__tensor__": "not a tensor"}
    assert set(back["int_keys"]) == {0, 1} and torch.equal(back["int_keys"][1]["exp_avg"], base[3:])
    random.setstate(back["python"])
    np.random.set_state(back["numpy"])
    torch.set_rng_state(back["torch"])
    assert back["pcg"] == state["pcg"]
    with pytest.raises(TypeError, match="t/bad: cannot store object"):
        save_state(tmp_path, "t", {"bad": object()})


# -- 2. a kill at any moment never blocks the next resume -------------------------------------------------------------

KILL_POINTS = ["weights", "between", "optimizer", "rank"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_while_checkpointing_resumes_bit_identical(finished, tmp_path, point, capfd):
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(ROOT / "tests" / "checkpoint_kill_script.py"), str(out), point, "3"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "checkpoint-000003.partial").is_dir() and (out / "checkpoint-000002").is_dir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = tiny_trainer(out)
        resumed.train(resume_from="latest")
    finally:
        torch.set_num_threads(threads)
    assert "skipped incomplete checkpoints" in capfd.readouterr().err
    assert without_seconds(resumed.history) == without_seconds(finished.history)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for (name, a), b in zip(finished.policy.model.state_dict().items(), resumed.policy.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert not (out / "checkpoint-000003.partial").exists()


# -- 3. the run store under concurrency -------------------------------------------------------------------------------

BUILDER = """
import os, sys, time
from pathlib import Path
from cotlab.store import RunStore

root, key_value, log = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])

def build(out):
    with open(log, "a") as f:
        f.write(f"start {key_value} {os.getpid()} {time.time()}\\n")
    time.sleep(1.5)
    (out / "value.txt").write_text(str(key_value))
    with open(log, "a") as f:
        f.write(f"end {key_value} {os.getpid()} {time.time()}\\n")

path = RunStore(root).get_or_create("x", {"value": key_value}, ["cotlab.store"], build)
print(path)
"""


def start_builders(tmp_path, values):
    code = textwrap.dedent(BUILDER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "runs"), str(v), str(tmp_path / "log")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
            for v in values]


def finish(procs):
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
    return [out.strip() for out, _ in results]


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_builders_of_one_key_build_it_once(tmp_path, processes):
    paths = finish(start_builders(tmp_path, [7] * processes))
    events = (tmp_path / "log").read_text().split()
    assert events.count("start") == 1 and events.count("end") == 1
    assert len(set(paths)) == 1 and RunStore(tmp_path / "runs").verify(paths[0])
    assert Path(paths[0], "value.txt").read_text() == "7"
    assert sorted(p.name for p in Path(paths[0]).parent.iterdir() if not p.name.startswith(".lock-")) == \
        [Path(paths[0]).name]


def test_builders_of_different_keys_run_at_the_same_time(tmp_path):
    paths = finish(start_builders(tmp_path, [1, 2]))
    lines = [line.split() for line in (tmp_path / "log").read_text().splitlines()]
    starts = {int(v): float(t) for kind, v, _, t in lines if kind == "start"}
    ends = {int(v): float(t) for kind, v, _, t in lines if kind == "end"}
    assert max(starts.values()) < min(ends.values())  # the two builds overlapped
    assert [Path(p, "value.txt").read_text() for p in paths] == ["1", "2"]


def test_a_lock_held_by_a_dead_process_is_broken_and_its_leftovers_removed(tmp_path):
    store = RunStore(tmp_path / "runs")
    key = artifact_key("x", {"value": 3}, ["cotlab.store"])
    holder = run("""
        import os, signal, sys
        from cotlab.store import RunStore
        store = RunStore(sys.argv[1])
        store.lock("x", sys.argv[2]).acquire()
        tmp = store.path("x", sys.argv[2]).parent / f".tmp-{sys.argv[2]}-{os.getpid()}-dead"
        tmp.mkdir(parents=True)
        (tmp / "half.bin").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)
        """, store.root, key)
    assert holder.returncode == -signal.SIGTERM
    leftovers = list((store.root / "x").glob(f".tmp-{key}-*"))
    assert len(leftovers) == 1
    began = time.monotonic()
    path = store.get_or_create("x", {"value": 3}, ["cotlab.store"],
                               lambda out: (out / "value.txt").write_text("3"))
    assert time.monotonic() - began < 10 and store.verify(path)
    assert not any(p.name.startswith(".tmp-") for p in (store.root / "x").iterdir())


@pytest.mark.slow
def test_two_concurrent_rl_runs_of_one_config_publish_one_clean_run(tmp_path):
    code = """
        import json, sys
        from cotlab.experiments.rl import rl_run
        from cotlab.store import RunStore
        from cotlab.training import GRPOConfig
        cfg = GRPOConfig(policy="tiny", max_steps=6, prompts_per_step=2, num_generations=2, learning_rate=1e-3,
                         guidance_scale=2.0)
        path = rl_run(cfg, store=RunStore(sys.argv[1]), progress=False, checkpoint_every=2)
        print(json.dumps([json.loads(line)["step"] for line in open(path / "metrics.jsonl")]))
        """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "runs")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for _ in range(2)]
    outputs = finish(procs)
    assert [json.loads(o.splitlines()[-1]) for o in outputs] == [[1, 2, 3, 4, 5, 6]] * 2
    [run_dir] = [p for p in (tmp_path / "runs" / "rl").iterdir() if not p.name.startswith(".")]
    assert RunStore(tmp_path / "runs").verify(run_dir)


def test_bad_manifest_entries_count_as_corrupt_and_keys_cannot_leave_the_store(tmp_path):
    store = RunStore(tmp_path)
    path = store.get_or_create("x", {"a": 1}, ["cotlab.store"], lambda out: (out / "f").write_text("1"))
    manifest = json.loads((path / "MANIFEST.json").read_text())
    for entry in ({"size": 1}, "not a mapping", {"size": "1", "sha256": "00"}, None):
        (path / "MANIFEST.json").write_text(json.dumps({"files": {**manifest["files"], "f": entry}}))
        with pytest.raises(CorruptRunError, match="the entry of 'f'"):
            store.verify_or_raise(path)
    (path / "MANIFEST.json").write_text(json.dumps({"files": {**manifest["files"], "../../etc/passwd": {
        "size": 1, "sha256": "00"}}}))
    with pytest.raises(CorruptRunError, match="outside the run"):
        store.verify_or_raise(path)
    with pytest.warns(UserWarning, match="corrupt"):
        again = store.get_or_create("x", {"a": 1}, ["cotlab.store"],
                                    lambda out: (out / "f").write_text("1"))
    assert store.verify(again)
    for key in ("../../x", "a/b", ".hidden", "..", ""):
        with pytest.raises(ValueError, match="inside the store"):
            store.path("x", key)
    with pytest.raises(ValueError, match="bad kind"):
        store.path("../x", "abc")


# -- 4. one output directory, one run ---------------------------------------------------------------------------------

def grpo_trainer(out, **fields):
    policy = build_shapeworld_policy("tiny", seed=0)
    cfg = GRPOConfig(**{**dict(policy="tiny", max_steps=2, prompts_per_step=2, num_generations=2,
                               learning_rate=1e-3, output_dir=str(out)), **fields})
    return trainer_for(cfg, policy=policy, prompts=PROMPTS, progress=False)


def test_a_used_output_directory_is_refused_without_resume_and_emptied_with_overwrite(tmp_path):
    grpo_trainer(tmp_path).train()
    with pytest.raises(FileExistsError, match=r"not empty .*--resume.*--overwrite"):
        grpo_trainer(tmp_path, seed=1).train()
    with pytest.raises(ValueError, match="exclude each other"):
        grpo_trainer(tmp_path, seed=1).train(resume_from="latest", overwrite=True)
    grpo_trainer(tmp_path, seed=1).train(overwrite=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-000002"]


def test_a_second_live_process_is_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from filelock import FileLock
        lock = FileLock(sys.argv[1]); lock.acquire(); print("held", flush=True); time.sleep(60)
        """), str(tmp_path / ".cotlab.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FileExistsError, match="in use by another cotlab process"):
            grpo_trainer(tmp_path).train()
    finally:
        holder.kill()
        holder.wait()
    grpo_trainer(tmp_path).train()  # the OS released the dead holder's lock


def test_config_is_written_before_the_first_step(tmp_path):
    trainer = grpo_trainer(tmp_path)

    def dies(round_, step):
        raise KeyboardInterrupt

    trainer.train_step = dies
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert json.loads((tmp_path / "config.json").read_text())["algorithm"] == "grpo"
    # resuming a run killed before its first checkpoint starts it afresh, with none of its old rows
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    grpo_trainer(tmp_path).train(resume_from="latest")
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]


# -- 5. a run whose weights or gradients become non-finite stops, keeping its last good checkpoint ------------------

@pytest.mark.parametrize("where", ["gradients", "weights"])
def test_a_non_finite_update_stops_the_run_naming_the_step(tmp_path, where):
    trainer = grpo_trainer(tmp_path, max_steps=3, save_steps=1)
    step = trainer.optimizer.step
    calls = []

    def poisoned(*args, **kwargs):
        calls.append(1)
        result = step(*args, **kwargs)
        if len(calls) == 2:
            trainer.params[0].data.fill_(float("inf"))
        return result

    if where == "weights":
        trainer.optimizer.step = poisoned
    else:
        backward = trainer.accelerator.backward

        def nan_loss(loss, **kwargs):
            backward(loss * (float("nan") if trainer.step == 1 else 1.0), **kwargs)

        trainer.accelerator.backward = nan_loss
    with pytest.raises(FloatingPointError, match=r"stopped at step 2: .*Last good checkpoint: .*checkpoint-000001"):
        trainer.train()
    good = load_state(tmp_path / "checkpoint-000001", "trainer_state")
    assert all(torch.isfinite(t).all() for s in good["optimizer"]["state"].values() for t in s.values())
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-000001"]


# -- mistakes caught before any model loads (found by trying ~90 bad inputs through the CLI) -------------------------

def test_mistakes_are_refused_before_a_model_loads_or_a_base_trains(tmp_path, monkeypatch):
    from cotlab.rewards import get

    monkeypatch.setenv("COTLAB_RUNS", str(tmp_path / "runs"))
    with pytest.raises(ValueError, match=r"reward model 'metric' does not take the options \['bogus'\]"):
        get("metric", bogus=1)
    (tmp_path / "file").write_text("x")
    cases = [({"output_dir": str(tmp_path / "file")}, NotADirectoryError, "file is a file"),
             ({"output_dir": str(tmp_path / "file" / "run")}, NotADirectoryError, "file is a file"),
             ({"reward": "nosuch"}, ValueError, "unknown reward model 'nosuch'"),
             ({"reward_options": {"bogus": 1}}, ValueError, "does not take the options"),
             ({"categories": ("nosuch",)}, ValueError, "unknown categories"),
             ({"mixed_precision": "fp16"}, ValueError, "fp16' needs a GPU")]
    for fields, error, message in cases:
        cfg = GRPOConfig(**{"policy": "default", "max_steps": 1, **fields})  # "default": a 15-minute pretraining
        with pytest.raises(error, match=message):
            trainer_for(cfg, progress=False)
    assert not (tmp_path / "runs" / "base_policy").exists()


def test_pickled_or_damaged_files_are_named_not_loaded(finished, tmp_path, monkeypatch):
    import shutil

    from cotlab.policy import JanusPolicy

    policy = tmp_path / "policy"
    shutil.copytree(Path(finished.cfg.output_dir) / "checkpoint-000004" / "policy", policy)
    for f in policy.glob("*.safetensors"):
        f.unlink()
    plant(policy / "pytorch_model.bin", tmp_path / "pwned")
    with pytest.raises(FileNotFoundError, match=r"no \*\.safetensors weights.*pytorch_model\.bin are pickles"):
        JanusPolicy.from_pretrained(policy)
    out = tmp_path / "run"
    shutil.copytree(finished.cfg.output_dir, out)
    (out / "checkpoint-000004" / "config.json").write_text("{not json")
    with pytest.raises(StateFileError, match=r"checkpoint-000004/config\.json: not a readable config"):
        tiny_trainer(out).train(resume_from="latest")
    weights = next((out / "checkpoint-000004" / "policy").glob("*.safetensors"))
    shutil.copy(Path(finished.cfg.output_dir) / "checkpoint-000004" / "config.json", out / "checkpoint-000004")
    plant(weights, tmp_path / "pwned")
    with pytest.raises(StateFileError, match=weights.name):
        tiny_trainer(out).train(resume_from="latest")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "store-file").write_text("x")
    monkeypatch.setenv("COTLAB_RUNS", str(tmp_path / "store-file"))
    with pytest.raises(NotADirectoryError, match=r"\$COTLAB_RUNS .*store-file is a file"):
        RunStore()
