"""RL runs as cached stages of the run store: one trained policy per config, trained once and then reused.

A notebook asks for `rl_run(cfg)`; the store keys the run by the config (without `output_dir`) and the sources of
the trainers, losses, rewards and base policy, so editing any of them retrains exactly the runs they affect. A killed
run resumes from its last checkpoint (kept in the store's scratch directory until the run is published).
"""
from __future__ import annotations

from pathlib import Path

from cotlab.policy.pretrain import CODE as BASE_CODE

RL_CODE = ("cotlab.training", "cotlab.losses", "cotlab.rewards", *BASE_CODE)


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


__all__ = ["RL_CODE", "rl_run"]
