"""The speed-ups of issue 17 keep results exact: the sampler's once-per-distinct-row prefill, the scorer's caches and
the rollout cache of `collect_groups` (same tokens, log-probs and rewards as without them)."""
import numpy as np
import pytest
import torch

from cotlab import world as w
from cotlab.policy import sampling
from cotlab.rewards import MetricReward
from cotlab.training import buffer
from cotlab.training.buffer import RolloutCache, collect_groups
from tiny import tiny_policy

PROMPTS = ["a red circle", "there are two big striped squares", "a photo of a cross left of a diamond"]


def plain_prefill(lm, embeds, cache, positions, bias, rows, rotary):
    return lm.norm(sampling.decoder_layers(lm, embeds, cache, positions, bias))[:, -1]  # every row, own rotary


@pytest.mark.parametrize("guidance_scale", [1.0, 3.0])
def test_prefill_once_per_distinct_row_gives_the_same_samples(monkeypatch, guidance_scale):
    """Against every row through the layers, the rotary embedding computed from the positions per call."""
    policy = tiny_policy()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ours = policy.sample(PROMPTS, 3, guidance_scale=guidance_scale, generator=gen(), decode=False)
    monkeypatch.setattr(sampling, "prefill", plain_prefill)
    plain = policy.sample(PROMPTS, 3, guidance_scale=guidance_scale, generator=gen(), decode=False)
    assert torch.equal(ours.image_tokens, plain.image_tokens)
    torch.testing.assert_close(ours.logprobs, plain.logprobs, rtol=0, atol=1e-6)


def test_scorer_caches_return_what_a_fresh_computation_does():
    rng = np.random.default_rng(0)
    prompts = w.load_suite("compbench", "val")[::50]
    for p in prompts:
        scene = w.scene_for(p, rng)
        first = w.score_scene(p, scene)
        w.scoring._score_scene.cache_clear()
        assert w.score_scene(p, scene) == first
    a, b = w.Obj("circle", "red", "solid", "small", 0, 0), w.Obj("square", "blue", "solid", "small", 0, 3)
    found = w.relative_position(a, b)
    found.add("mutated")  # a caller's set, not the cache's
    assert w.relative_position(a, b) == {"left of"}


def collect(policy, reward_model, seed=0):
    return collect_groups(policy, reward_model, PROMPTS, [0, 1, 2], num_generations=2, seed=seed, round_=0, step=0,
                          guidance_scale=3.0, temperature=1.0)


class Shifted:
    name = "shifted"

    def __call__(self, prompts, images, metadata=None):
        return MetricReward()(prompts, images) + 1.0


def test_rollouts_of_unchanged_weights_are_reused_exactly(monkeypatch, tmp_path):
    monkeypatch.delenv(buffer.ROLLOUT_CACHE_ENV, raising=False)
    monkeypatch.setattr(buffer, "ROLLOUTS", RolloutCache())
    fresh = collect(tiny_policy(), MetricReward())
    assert buffer.ROLLOUTS.hits == 0
    again = collect(tiny_policy(), Shifted())  # another run from the same base, another reward model
    assert buffer.ROLLOUTS.hits == 1
    assert torch.equal(again.tokens, fresh.tokens) and torch.equal(again.old_logprobs, fresh.old_logprobs)
    torch.testing.assert_close(again.rewards, fresh.rewards + 1.0)
    assert collect(tiny_policy(), MetricReward(), seed=1).tokens.shape == fresh.tokens.shape
    assert buffer.ROLLOUTS.hits == 1  # another seed: sampled

    policy = tiny_policy()
    collect(policy, MetricReward())
    with torch.no_grad():  # an update in place, as an optimizer step makes
        policy.model.model.generation_head.vision_head.bias.add_(1.0)
    hits = buffer.ROLLOUTS.hits
    changed = collect(policy, MetricReward())
    assert buffer.ROLLOUTS.hits == hits and not torch.equal(changed.old_logprobs, fresh.old_logprobs)


def test_rollouts_are_shared_across_processes_through_a_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(buffer.ROLLOUT_CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(buffer, "ROLLOUTS", RolloutCache())
    fresh = collect(tiny_policy(), MetricReward())
    assert len(list(tmp_path.rglob("*.safetensors"))) == 1
    monkeypatch.setattr(buffer, "ROLLOUTS", RolloutCache())  # as another process: nothing in memory
    again = collect(tiny_policy(), MetricReward())
    assert buffer.ROLLOUTS.hits == 1
    assert torch.equal(again.tokens, fresh.tokens) and torch.equal(again.old_logprobs, fresh.old_logprobs)
    assert torch.equal(again.rewards, fresh.rewards)


def test_step_benchmarks_time_real_sampling_not_reuse():
    from cotlab.bench import bench_rl_step
    from cotlab.training.buffer import ROLLOUTS

    hits = ROLLOUTS.hits
    result = bench_rl_step(tier="smoke", steps=1, repeats=2, profile=False)
    assert ROLLOUTS.hits == hits and ROLLOUTS.enabled
    assert result["dpo"]["sampling"] > 0.1 * result["grpo"]["sampling"]
