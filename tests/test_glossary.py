"""The book's glossary (book/glossary.md) explains every key a trainer logs: a new metric without an entry fails here."""
import json
import re
from pathlib import Path

import pytest

from cotlab.training import preset, train
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
        # a reward component's mean is one entry, `reward_<name>_mean`
        unexplained = {k for k in keys if k not in known and not re.fullmatch(r"reward_\w+_mean", k)}
        assert not unexplained, f"{run} logs {sorted(unexplained)}, which book/glossary.md does not explain"
    assert "reward_<name>_mean" in known and "probe_kl" in known and "kl" in logged["grpo"]


def test_the_glossary_names_no_key_that_nothing_logs(logged):
    every = set().union(*logged.values()) | {"reward_<name>_mean"}
    assert explained() - every == set()
