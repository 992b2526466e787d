"""GRPO and DPO trainers on tiny random ShapeWorld policies: invariants, budgets, checkpoints, bad input."""
import copy
import functools
import json

import pytest
import torch

from cotlab import world as w
from cotlab.policy import build_shapeworld_policy
from cotlab.rewards import MetricReward
from cotlab.training import DPOConfig, GRPOConfig, aligned, mine_pairs, preset, trainer_for
from tiny import tiny_policy

# Measured on this machine (seed 0) with the smoke base pretrained with the object-start term: GRPO 0.074 -> 0.157,
# DPO 0.074 -> 0.352 mean metric reward; the test asks for less than half of the smaller gain.
SMOKE_MARGIN = 0.04
PROMPTS = ["a red circle", "two blue squares", "a green cross left of a yellow diamond", "a small striped triangle",
           "a large dotted circle", "a purple cross", "three white circles", "an orange square below a pink circle"]


@pytest.fixture(scope="module")
def base():
    return tiny_policy()


def make(cfg, base, **kwargs):
    return trainer_for(cfg, policy=copy.deepcopy(base), prompts=kwargs.pop("prompts", PROMPTS), progress=False,
                       **kwargs)


def tiny(cls, **fields):
    values = dict(policy="tiny", max_steps=2, prompts_per_step=4, num_generations=4, learning_rate=1e-3)
    return cls(**{**values, **fields})


class ConstantReward:
    name = "constant"

    def __call__(self, prompts, images, metadata=None):
        return torch.full((len(prompts),), 0.5)


def captured_gradients(trainer):
    """Replace the optimizer step by a capture of the accumulated gradients."""
    grads = []

    def capture():
        grads.append({n: p.grad.clone() for n, p in trainer.policy.model.named_parameters() if p.grad is not None})
        trainer.optimizer.zero_grad(set_to_none=True)
        return 0.0

    trainer.optimizer_step = capture
    return grads


def test_grpo_first_step_ratio_one_no_clip_and_zero_kl(base):
    trainer = make(tiny(GRPOConfig, beta=0.04, max_steps=1), base)
    row = trainer.train_step(0, 0)
    assert row["policy/ratio_mean"] == 1.0 and row["policy/clip_fraction"] == 0.0
    assert row["policy/kl_ref_k3"] == 0.0
    assert 0 <= row["reward/mean"] <= 1 and row["budget/images_sampled"] == 16 == row["budget/reward_calls"]


def test_equal_rewards_give_zero_advantages_and_are_counted(base):
    trainer = make(tiny(GRPOConfig, max_steps=1), base, reward_model=ConstantReward())
    grads = captured_gradients(trainer)
    row = trainer.train_step(0, 0)
    assert row["reward/zero_std_fraction"] == 1.0 and row["loss/total"] == 0.0
    assert all(torch.isfinite(g).all() and not g.any() for g in grads[0].values())


@pytest.mark.parametrize("cls", [GRPOConfig, DPOConfig])
def test_one_batch_equals_accumulated_micro_batches(base, cls):
    """8 prompts in one batch and 1 prompt x 8 accumulation steps: same loss and gradients."""
    results = []
    for accumulation in (1, 8):
        trainer = make(tiny(cls, prompts_per_step=8, gradient_accumulation_steps=accumulation, beta=0.1), base)
        grads = captured_gradients(trainer)
        if cls is DPOConfig:
            trainer.begin_round(0)
        row = trainer.train_step(0, 0)
        results.append((row, grads[0]))
    (row1, g1), (row8, g8) = results
    assert row1["loss/total"] == pytest.approx(row8["loss/total"], rel=1e-5, abs=1e-7)
    assert g1.keys() == g8.keys() and len(g1) > 0
    for name in g1:
        # float32 sums in another order: equal to 1e-5 of the tensor's largest gradient
        torch.testing.assert_close(g1[name], g8[name], rtol=1e-4, atol=1e-5 * g1[name].abs().max().item(), msg=name)


@pytest.mark.parametrize("cls", [GRPOConfig, DPOConfig])
@pytest.mark.parametrize("mode", ["cond", "cfg"])
def test_tiled_logprobs_train_as_the_plain_path(base, cls, mode):
    """The config switch: the tiled log-prob kernel and the full-logits path give the same step (loss, KL, grads)."""
    results = []
    for tiled in (False, True):
        trainer = make(tiny(cls, beta=0.1, tiled_logprobs=tiled, logprob_mode=mode, guidance_scale=3.0), base)
        grads = captured_gradients(trainer)
        if cls is DPOConfig:
            trainer.begin_round(0)
        results.append((trainer.train_step(0, 0), grads[0]))
    (plain, g0), (tiled, g1) = results
    for key in ("loss/total", "policy/kl_ref_k3" if cls is GRPOConfig else "dpo/implicit_reward_chosen"):
        assert tiled[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-6), key
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-5 * g0[name].abs().max().item(), msg=name)


def test_dpo_at_initialisation_has_loss_log_two(base):
    trainer = make(tiny(DPOConfig, max_steps=1), base)
    trainer.begin_round(0)
    row = trainer.train_step(0, 0)
    assert row["dpo/pairs_kept"] > 0
    assert row["loss/total"] == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-5)


def test_pair_mining_drops_and_counts_ties():
    rewards = torch.tensor([0.1, 0.9, 0.5, 0.9, 0.3, 0.3, 0.3, 0.3])
    chosen, rejected, stats = mine_pairs(rewards, 4)
    assert chosen.tolist() == [1] and rejected.tolist() == [0] and stats["ties_dropped"] == 1
    chosen, rejected, stats = mine_pairs(rewards, 4, "all")
    assert stats["pairs"] == 5 and stats["ties_dropped"] == 1 + 6
    assert all(rewards[c] > rewards[r] for c, r in zip(chosen, rejected))
    _, _, stats = mine_pairs(rewards, 4, "margin", margin_threshold=0.5)
    assert stats["pairs"] == 2 and stats["below_margin_dropped"] == 3


def test_aligned_presets_spend_equal_budgets(base, tmp_path):
    grpo = preset("smoke", "grpo", policy="tiny", max_steps=2, prompts_per_step=4)
    dpo = preset("smoke", "dpo", policy="tiny", max_steps=2, prompts_per_step=4)
    assert aligned(grpo, dpo) and grpo.budget() == dpo.budget()
    totals = []
    for cfg in (grpo, dpo):
        cfg = cfg.replace(output_dir=str(tmp_path / cfg.algorithm))
        make(cfg, base).train()
        rows = [json.loads(line) for line in open(tmp_path / cfg.algorithm / "metrics.jsonl")]
        assert sum(r["budget/images_sampled"] for r in rows) == rows[-1]["budget/total_images_sampled"]
        totals.append((rows[-1]["budget/total_images_sampled"], rows[-1]["budget/total_reward_calls"]))
    assert totals[0] == totals[1] == (grpo.budget()["images_sampled"], grpo.budget()["reward_calls"])


@pytest.mark.parametrize("cls", [GRPOConfig, DPOConfig, functools.partial(DPOConfig, sampling="online")],
                         ids=["grpo", "dpo", "dpo-online"])
def test_killed_and_resumed_run_is_identical(base, tmp_path, cls):
    cfg = tiny(cls, max_steps=3, rounds=2, save_steps=1, beta=0.1, reference="round_start", probe_every=2, probe_prompts=3)
    whole = make(cfg.replace(output_dir=str(tmp_path / "whole")), base)
    whole.train()
    killed = make(cfg.replace(output_dir=str(tmp_path / "killed")), base)
    real_step = killed.train_step

    def dies_at_fifth(round_, step):
        if round_ * cfg.max_steps + step == 4:
            raise KeyboardInterrupt
        return real_step(round_, step)

    killed.train_step = dies_at_fifth
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    resumed = make(cfg.replace(output_dir=str(tmp_path / "killed")), base)
    resumed.train(resume_from="latest")
    drop = ("time/", "optim/learning_rate")
    clean = [{k: v for k, v in r.items() if not k.startswith(drop)} for r in whole.history]
    assert [{k: v for k, v in r.items() if not k.startswith(drop)} for r in resumed.history] == clean
    for (name, a), b in zip(whole.policy.model.state_dict().items(), resumed.policy.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_from_another_config_is_refused_with_the_diff(base, tmp_path):
    cfg = tiny(GRPOConfig, max_steps=1, output_dir=str(tmp_path))
    make(cfg, base).train()
    other = make(cfg.replace(learning_rate=5e-4), base)
    with pytest.raises(ValueError, match="learning_rate: run 0.0005 vs checkpoint 0.001"):
        other.train(resume_from="latest")
    with pytest.raises(FileNotFoundError, match="not a cotlab training checkpoint"):
        other.train(resume_from=tmp_path)


class BadReward:
    def __init__(self, kind):
        self.name, self.kind = f"bad-{kind}", kind

    def __call__(self, prompts, images, metadata=None):
        values = torch.rand(len(prompts))
        if self.kind == "nan":
            values[2] = float("nan")
            return values
        return values[:-1]


def test_bad_rewards_name_the_model_and_the_prompt(base):
    with pytest.raises(ValueError, match=r"'bad-nan' returned nan for prompt 'a red circle' \(row 2\)"):
        make(tiny(GRPOConfig), base, reward_model=BadReward("nan")).train_step(0, 0)
    with pytest.raises(ValueError, match=r"'bad-shape' returned \(15,\) for 16 images"):
        make(tiny(GRPOConfig), base, reward_model=BadReward("shape")).train_step(0, 0)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="num_generations must be at least 2"):
        GRPOConfig(num_generations=1)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        GRPOConfig(beta=-0.1)
    with pytest.raises(ValueError, match="beta must be > 0 for DPO"):
        DPOConfig(beta=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        GRPOConfig(epsilon=-0.2)
    with pytest.raises(ValueError, match="known: grpo, bnpo, dr_grpo, dapo"):
        GRPOConfig(loss_type="ppo")
    with pytest.raises(ValueError, match="known: sigmoid, ipo, hinge, robust"):
        DPOConfig(loss_type="kto")
    with pytest.raises(ValueError, match="no field 'learning_rat'; did you mean 'learning_rate'"):
        GRPOConfig.from_dict({"learning_rat": 1e-5})
    with pytest.raises(ValueError, match="no field 'num_generation'; did you mean 'num_generations'"):
        preset("smoke", "grpo", num_generation=8)
    with pytest.raises(ValueError, match="match no parameter"):
        make(tiny(GRPOConfig, trainable=("model.languge_model",)), build_shapeworld_policy("tiny"))


def _train_command(launcher, algorithm, policy_dir, out):
    fields = dict(policy=str(policy_dir), max_steps=2, prompts_per_step=4, num_generations=4, learning_rate=1e-3,
                  beta=0.1, sample_batch_images=8, report_to="[jsonl]")
    return [*launcher, "-m", "cotlab", "train", algorithm, "--output-dir", str(out),
            *(a for k, v in fields.items() for a in ("--set", f"{k}={v}"))]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "dpo"])
def test_two_processes_match_one_with_the_same_global_batch(base, tmp_path, algorithm):
    """`accelerate launch --cpu --num_processes 2` against one process, same global batch. Samples are identical (row
    seeds), so losses, grad norms and weights differ only by the order of floating-point sums: tolerance 1e-5
    relative on losses and grad norms, and 1e-6 absolute on weights after two AdamW steps at lr 1e-3."""
    import os
    import subprocess
    import sys

    policy_dir = tmp_path / "policy"
    base.save_pretrained(policy_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    runs = {}
    for name, launcher in (("one", [sys.executable]), ("two", launch)):
        done = subprocess.run(_train_command(launcher, algorithm, policy_dir, tmp_path / name), env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = [json.loads(line) for line in open(tmp_path / name / "metrics.jsonl")]
    one, two = runs["one"], runs["two"]
    # GRPO samples at every step; DPO samples the round's groups before its first step.
    assert [r["budget/images_sampled"] for r in one] == [r["budget/images_sampled"] for r in two]
    assert sum(r["budget/images_sampled"] for r in two) == 32
    for a, b in zip(one, two):
        assert a["reward/mean"] == pytest.approx(b["reward/mean"], abs=1e-6)
        assert a["loss/total"] == pytest.approx(b["loss/total"], rel=1e-5, abs=1e-7)
        assert a["optim/grad_norm"] == pytest.approx(b["optim/grad_norm"], rel=1e-5)
    from safetensors.torch import load_file

    final = {name: load_file(next((tmp_path / name / "checkpoint-000002" / "policy").glob("*.safetensors")))
             for name in runs}
    worst = max((final["one"][k] - final["two"][k]).abs().max().item() for k in final["one"])
    assert worst < 1e-6


@pytest.mark.slow
def test_grpo_and_dpo_raise_the_training_reward_in_the_smoke_tier():
    """Learning: the smoke preset (the smoke base policy, the exact metric reward, seed 0) raises the mean reward of
    fresh samples (4 per prompt, seeds apart from training's) on the prompts it trained on, for both algorithms."""
    from cotlab.policy.pretrain import base_policy
    from cotlab.training import mean_reward, training_prompts

    base_model, _ = base_policy("smoke", progress=False)
    reward = MetricReward()
    gains = {}
    for algorithm in ("grpo", "dpo"):
        cfg = preset("smoke", algorithm, report_to=())
        seen = training_prompts(cfg)[:cfg.max_steps * cfg.prompts_per_step]
        before = mean_reward(base_model, reward, seen, cfg)
        trained = trainer_for(cfg, policy=copy.deepcopy(base_model), reward_model=reward, progress=False).train()
        gains[algorithm] = (before, mean_reward(trained, reward, seen, cfg))
    for algorithm, (before, after) in gains.items():
        assert after > before + SMOKE_MARGIN, (algorithm, gains)


def test_rl_runs_are_cached_in_the_run_store(tmp_path):
    from cotlab.experiments.rl import rl_run
    from cotlab.policy import JanusPolicy
    from cotlab.store import RunStore

    store = RunStore(tmp_path / "runs")
    cfg = tiny(GRPOConfig, max_steps=2, output_dir=str(tmp_path / "ignored"))
    path = rl_run(cfg, store=store, progress=False, checkpoint_every=1)
    rows = [json.loads(line) for line in open(path / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2]
    assert JanusPolicy.from_pretrained(path / "policy").num_image_tokens == 64
    assert rl_run(cfg.replace(output_dir=None), store=store, progress=False) == path  # output_dir is not part of the key
    assert rl_run(cfg.replace(seed=1), store=store, progress=False) != path


def test_before_after_evaluates_the_base_once_and_every_run(tmp_path, monkeypatch):
    from cotlab.experiments.rl import before_after
    from cotlab.store import RunStore

    monkeypatch.setenv("COTLAB_RUNS", str(tmp_path / "runs"))  # the tiny base policy trains into this store
    configs = [tiny(cls, max_steps=2, seed=seed) for cls in (GRPOConfig, DPOConfig) for seed in (0, 1)]
    store = RunStore(tmp_path / "runs")
    table = before_after(configs, store=store, progress=False, images_per_prompt=1, prompts_per_category=1)
    assert len(store.list("evaluation")) == 1 + len(configs)  # each policy evaluated once, then read back
    again = before_after(configs, store=store, progress=False, images_per_prompt=1, prompts_per_category=1)
    assert len(store.list("evaluation")) == 1 + len(configs) and again.equals(table)
    overall = table[table["category"] == "overall"]
    assert len(overall) == 2 * (1 + len(configs))  # base + four runs, two suites each
    assert overall.groupby("algorithm").size().to_dict() == {"base": 2, "dpo": 4, "grpo": 4}
    assert set(table["reward"]) == {"none", "metric"}
    categories = table[(table["algorithm"] == "base") & (table["suite"] == "compbench")]["category"]
    assert set(categories) == set(w.COMPBENCH_CATEGORIES) | {"overall"}
    assert table["value"].between(0, 1).all()


@pytest.mark.parametrize("cls", [GRPOConfig, DPOConfig])
def test_a_composite_reward_logs_each_component(base, cls):
    from cotlab.rewards import get

    reward = get("composite", components=[{"name": "metric", "weight": 2.0}])
    trainer = make(tiny(cls, max_steps=1), base, reward_model=reward)
    trainer.begin_round(0)  # DPO samples its round here; GRPO's is a no-op
    row = trainer.train_step(0, 0)
    assert row["reward/mean"] == pytest.approx(2 * row["reward/metric_mean"])
    assert row["reward/2*metric_mean"] == row["reward/mean"]


@pytest.mark.parametrize("cls", [GRPOConfig, DPOConfig])
def test_the_probe_measures_without_changing_training(base, cls):
    cfg = tiny(cls, max_steps=4, beta=0.1, report_to=())
    plain = make(cfg, base)
    plain.train()
    probed = make(cfg.replace(probe_every=2, probe_prompts=4), base)
    probed.train()
    keys = ("probe/reward_mean", "probe/kl_base_k1")
    assert [r["step"] for r in probed.history if "probe/kl_base_k1" in r] == [2, 4]
    drop = ("time/", *keys)
    assert ([{k: v for k, v in r.items() if not k.startswith(drop)} for r in probed.history]
            == [{k: v for k, v in r.items() if not k.startswith(drop)} for r in plain.history])
    for (name, a), b in zip(plain.policy.model.state_dict().items(), probed.policy.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert len(probed.probe_set) == 4 and set(probed.probe_set) <= {p.text for p in w.load_suite("compbench", "dev")}


@pytest.mark.parametrize("cls", [GRPOConfig, DPOConfig])
def test_the_probe_reads_zero_kl_and_the_same_draws_while_the_weights_stay_the_base(base, cls):
    cfg = tiny(cls, max_steps=4, beta=0.1, learning_rate=0.0, probe_every=2, probe_prompts=4, report_to=())
    trainer = make(cfg, base)
    trainer.train()
    probes = [r for r in trainer.history if "probe/kl_base_k1" in r]
    assert all(abs(r["probe/kl_base_k1"]) < 1e-4 for r in probes)
    assert probes[0]["probe/reward_mean"] == probes[1]["probe/reward_mean"]  # the same draws, the same weights
    moved = make(cfg.replace(learning_rate=5e-2, beta=0.0 if cls is GRPOConfig else 0.1), base)
    moved.train()
    assert [r["probe/kl_base_k1"] for r in moved.history if "probe/kl_base_k1" in r][-1] > 1e-3
