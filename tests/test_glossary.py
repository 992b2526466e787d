"""The book's glossary (book/glossary.md) explains every key a trainer logs: a new metric without an entry fails here."""
import json
import re
from pathlib import Path

import pytest

from cotlab.training import preset, train
from cotlab.training.metrics import INDEX, LEGACY_METRIC_NAMES, METRICS, PATTERNS, is_metric
from tiny import tiny_policy

GLOSSARY = Path(__file__).resolve().parents[1] / "book" / "glossary.md"


def explained() -> set[str]:
    """The keys the glossary's tables name, in backticks in their first column."""
    rows = [line.split("|")[1] for line in GLOSSARY.read_text().splitlines() if line.startswith("| `")]
    return {key for cell in rows for key in re.findall(r"`([^`]+)`", cell)}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Every key of every row that a GRPO run (KL penalty, probe) and an offline and an online DPO run log."""
    root = tmp_path_factory.mktemp("glossary")
    tiny_policy().save_pretrained(root / "base")
    keys = {}
    for name, algorithm, fields in (("grpo", "grpo", {"beta": 0.1}), ("dpo", "dpo", {}),
                                    ("dpo-online", "dpo", {"sampling": "online"})):
        cfg = preset("smoke", algorithm, policy=str(root / "base"), max_steps=2, prompts_per_step=2,
                     probe_every=1, probe_prompts=2, output_dir=str(root / name), **fields)
        train(cfg, progress=False)
        rows = [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines()]
        keys[name] = set().union(*rows)
    return keys


def test_every_logged_key_is_explained(logged):
    known = explained()
    for run, keys in logged.items():
        # a reward component's mean is one entry, `reward/<name>_mean`
        unexplained = {k for k in keys if k not in known and not PATTERNS["reward/<name>_mean"].fullmatch(k)}
        assert not unexplained, f"{run} logs {sorted(unexplained)}, which book/glossary.md does not explain"
        unregistered = {k for k in keys if k not in INDEX and not is_metric(k)}
        assert not unregistered, f"{run} logs {sorted(unregistered)}, which cotlab.training.metrics.METRICS lacks"
    assert "reward/<name>_mean" in known and "probe/kl_base_k1" in known and "policy/kl_ref_k3" in logged["grpo"]


def test_the_glossary_names_no_key_that_nothing_logs(logged):
    every = set().union(*logged.values()) | {"reward/<name>_mean"}
    assert explained() - every == set()


def test_the_glossary_and_the_registry_name_the_same_keys():
    assert explained() == set(METRICS) | set(INDEX)
    assert all(name.count("/") == 1 for name in METRICS)  # one namespace each, as TensorBoard groups them


def test_every_legacy_name_maps_to_a_registered_one():
    assert all(is_metric(new) for new in LEGACY_METRIC_NAMES.values())
    assert not set(LEGACY_METRIC_NAMES) & set(METRICS)


def test_a_run_logged_under_the_old_names_reads_under_the_current_ones(tmp_path):
    from cotlab.store import write_jsonl
    from cotlab.training.metrics import read_metrics

    old = {"step": 1, "round": 1, "loss": 0.5, "lr": 1e-3, "reward_mean": 0.2, "reward_metric_mean": 0.2,
           "reward_std": 0.1, "kl": 0.01, "probe_kl": 0.3, "probe_reward_mean": 0.4, "seconds_step": 2.0,
           "images_sampled": 16, "total_reward_calls": 16, "rewards_accuracy": 1.0, "health/ok": 1}
    write_jsonl(tmp_path / "metrics.jsonl", [old])
    [row] = read_metrics(tmp_path)
    assert row == {"step": 1, "round": 1, "loss/total": 0.5, "optim/learning_rate": 1e-3, "reward/mean": 0.2,
                   "reward/metric_mean": 0.2, "reward/std": 0.1, "policy/kl_ref_k3": 0.01, "probe/kl_base_k1": 0.3,
                   "probe/reward_mean": 0.4, "time/step": 2.0, "budget/images_sampled": 16,
                   "budget/total_reward_calls": 16, "dpo/implicit_reward_accuracy": 1.0, "health/ok": 1}
    assert read_metrics(tmp_path / "metrics.jsonl") == [row]
    write_jsonl(tmp_path / "metrics.jsonl", [row])
    assert read_metrics(tmp_path) == [row]  # current names stay as they are
