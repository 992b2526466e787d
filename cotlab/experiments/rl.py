"""RL runs as cached stages of the run store: one trained policy per config, trained once and then reused.

A notebook asks for `rl_run(cfg)`; the store keys the run by the config (without `output_dir`) and the sources of
the trainers, losses, rewards and base policy, so editing any of them retrains exactly the runs they affect. A killed
run resumes from its last checkpoint (kept in the store's scratch directory until the run is published).
"""
from __future__ import annotations

from pathlib import Path

from cotlab.policy.pretrain import CODE as BASE_CODE

RL_CODE = ("cotlab.training", "cotlab.losses", "cotlab.rewards", *BASE_CODE)
# What an evaluation's numbers depend on besides the policy's weights (the policy's own code is part of its key).
EVAL_CODE = ("cotlab.evaluation", "cotlab.world", *BASE_CODE)


def rl_run(cfg, *, store=None, progress: bool = True, checkpoint_every: int = 10) -> Path:
    """The run directory of `cfg` (a GRPOConfig or DPOConfig): `policy/` (the trained JanusPolicy), `metrics.jsonl`
    (one row per optimizer step) and `config.json`. Trained on first use, with a checkpoint every `checkpoint_every`
    steps in scratch space."""
    import shutil

    from cotlab.experiments.store import RunStore
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


def before_after(configs, *, suites=(("compbench", "val"), ("geneval", None)), store=None, progress: bool = True,
                 **eval_options):
    """Train each config (cached, `rl_run`) and evaluate its base policy and the trained policy on `suites`.

    Returns a long DataFrame, one row per (policy, suite, category) plus a category "overall" per (policy, suite):
    algorithm ("base" for the starting policy), reward, seed, suite, category, value (CompBench-style: mean value;
    GenEval-style: accuracy, and overall = mean of task accuracies), and the mean training reward of the first and
    last 10 steps (GRPO's is of on-policy samples; DPO's is of its round buffer, sampled at the round's start).
    `eval_options` go to `evaluate_policy` (images_per_prompt, guidance_scale, prompts_per_category, seeds...); every
    policy gets the same ones, so the comparisons are paired. Each evaluation is cached in the run store."""
    import json

    import numpy as np
    import pandas as pd

    from cotlab.evaluation import evaluate_policy
    from cotlab.experiments.store import RunStore
    from cotlab.policy import JanusPolicy
    from cotlab.policy.pretrain import PRETRAIN_TIERS, base_policy

    store = store or RunStore()

    def scores(policy_dir: Path, name: str) -> list[dict]:
        """Evaluated once per (policy checkpoint, evaluation settings), then read from the run store."""
        def build(out: Path) -> None:
            policy, rows = JanusPolicy.from_pretrained(policy_dir), []
            for suite, split in suites:
                table = evaluate_policy(policy, suite, split, policy_name=name, progress=progress,
                                        **eval_options).summary()
                rows += [{"suite": suite, "category": c, "value": v} for c, v in table.iloc[:, 0].items()]
            (out / "scores.json").write_text(json.dumps(rows))

        # A checkpoint in the run store is named by its place there (its key hashes its config and code); one
        # elsewhere by its absolute path.
        where, root = Path(policy_dir).resolve(), store.root.resolve()
        config = {"policy": str(where.relative_to(root) if where.is_relative_to(root) else where),
                  "suites": [list(x) for x in suites], **eval_options}
        path = store.get_or_create("evaluation", config, EVAL_CODE, build, desc=name)
        return json.loads((path / "scores.json").read_text())

    rows, bases = [], {}
    for cfg in configs:
        if cfg.policy not in bases:
            base_dir = base_policy(cfg.policy, store=store)[1] if cfg.policy in PRETRAIN_TIERS else cfg.policy
            bases[cfg.policy] = scores(base_dir, f"base {cfg.policy}")
            rows += [{"algorithm": "base", "reward": "none", "policy": cfg.policy, "seed": None, **r}
                     for r in bases[cfg.policy]]
        path = rl_run(cfg, store=store, progress=progress)
        curve = [json.loads(line)["reward_mean"] for line in open(path / "metrics.jsonl")]
        trained = scores(path / "policy", f"{cfg.algorithm} seed {cfg.seed}")
        rows += [{"algorithm": cfg.algorithm, "reward": reward_label(cfg), "policy": cfg.policy, "seed": cfg.seed, **r,
                  "reward_first10": float(np.mean(curve[:10])), "reward_last10": float(np.mean(curve[-10:])),
                  "run": str(path)} for r in trained]
    return pd.DataFrame(rows)


__all__ = ["EVAL_CODE", "RL_CODE", "before_after", "reward_label", "rl_run"]
