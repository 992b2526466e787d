"""Learned ShapeWorld reward models (preference and judge) and the measures of their intrinsic generalisation."""
import numpy as np
import pytest
import torch

from cotlab import rewards
from cotlab.experiments.reward_eval import Samples, best_of_n, pairwise_accuracy, reward_matrix, sample_base
from cotlab.rewards.learned import (
    LearnedRewardConfig, make_dataset, preference_pairs, questions, train_reward_model,
)
from cotlab.store import RunStore
from cotlab.world import load_suite, render, satisfies, scene_for

TINY = dict(num_prompts=40, steps=30, batch_size=16, width=32, layers=1, heads=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny model of each family, trained and saved."""
    out = {}
    for family in ("preference", "judge"):
        path = tmp_path_factory.mktemp(family)
        model, summary = train_reward_model(LearnedRewardConfig(family=family, **TINY), path, progress=False)
        out[family] = (model, summary, path)
    return out


def test_questions_are_the_prompts_single_facts_and_a_scene_made_for_it_answers_yes():
    for prompt, expected in [
        ("a red circle on the left of a blue square",
         ["a red circle", "a blue square", "a red circle left of a blue square"]),
        ("two green triangles and a big striped circle", ["two green triangles", "a large striped circle"]),
    ]:
        asked = questions(prompt)
        assert [text for text, _ in asked] == expected
        scene = scene_for(prompt, 0)
        assert all(satisfies(spec, scene) for _, spec in asked)


def test_training_data_prefers_higher_utility_and_labels_are_exact():
    cfg = LearnedRewardConfig(num_prompts=30, artifact_prob=0.0, label_noise=0.0)
    data = make_dataset(cfg)
    assert len(data["images"]) == 30 * cfg.variants
    made_for_prompt = data["score"][:: cfg.variants]
    assert (made_for_prompt == 1).all()  # no artifacts: the image made for a prompt satisfies it
    pairs = preference_pairs(data, cfg, np.random.default_rng(0))
    utility = data["score"] + cfg.quality_weight * data["clean"]
    assert (utility[pairs[:, 0]] > utility[pairs[:, 1]]).all()
    assert (data["owner"][pairs[:, 0]] == data["owner"][pairs[:, 1]]).all()
    noisy = preference_pairs(data, LearnedRewardConfig(num_prompts=30, label_noise=0.3), np.random.default_rng(0))
    flipped = np.mean(utility[noisy[:, 0]] < utility[noisy[:, 1]])
    assert 0.2 < flipped < 0.4
    judge = make_dataset(LearnedRewardConfig(family="judge", num_prompts=30))
    assert set(np.unique(judge["answer"])) == {0.0, 1.0}


def test_training_is_deterministic_and_the_saved_model_scores_the_same(trained, tmp_path):
    model, summary, path = trained["preference"]
    again, _ = train_reward_model(LearnedRewardConfig(family="preference", **TINY), progress=False)
    a, b = model.network.state_dict(), again.network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    prompts = [p.text for p in load_suite("compbench", "val")[:6]]
    images = [render(scene_for(p, i)) for i, p in enumerate(prompts)]
    loaded = rewards.get("preference", path=path)
    assert torch.equal(loaded(prompts, images), model(prompts, images))
    assert summary["training_examples"] > 0 and loaded.name == "preference[id]"


def test_the_judge_multiplies_the_probability_of_yes_over_the_questions(trained):
    judge = trained["judge"][0]
    prompt = "a red circle on the left of a blue square"
    image = render(scene_for(prompt, 1))
    logits = judge.logits([text for text, _ in questions(prompt)], [image] * 3)
    assert judge([prompt], [image]).item() == pytest.approx(torch.sigmoid(logits).prod().item(), rel=1e-5)


def test_learned_models_are_built_once_and_reused_from_the_run_store(tmp_path):
    store = RunStore(tmp_path / "runs")
    a = rewards.get("judge", store=store, progress=False, **TINY)
    b = rewards.get("judge", store=store, progress=False, **TINY)
    assert len(store.list("reward_model")) == 1
    assert all(torch.equal(x, y) for x, y in zip(a.network.state_dict().values(), b.network.state_dict().values()))


def test_bad_input_gets_clear_errors(trained, tmp_path):
    model = trained["preference"][0]
    image = render(scene_for("a red circle", 0))
    with pytest.raises(ValueError, match="2 prompts but 1 images"):
        model(["a red circle", "a blue square"], [image])
    with pytest.raises(ValueError, match="64x64"):
        model(["a red circle"], [image.resize((32, 32))])
    with pytest.raises(ValueError, match="outside ShapeWorld's vocabulary: unicorn"):
        model(["a red unicorn"], [image])
    with pytest.raises(TypeError, match="did you mean breadth"):
        rewards.get("judge", bredth="id")
    with pytest.raises(ValueError, match="unknown data breadth 'ood'"):
        rewards.get("judge", breadth="ood")
    with pytest.raises(FileNotFoundError, match="not a trained ShapeWorld reward model"):
        rewards.get("preference", path=tmp_path)


def test_pairwise_accuracy_and_best_of_n_by_hand():
    exact = np.array([[0.0, 0.5, 1.0, 1.0], [0.2, 0.2, 0.2, 0.2]])
    # Row 0 has 5 pairs of different exact score; row 1 none. Perfect order, reversed order, and all ties.
    assert pairwise_accuracy(exact * 2, exact) == 1.0
    assert pairwise_accuracy(-exact, exact) == 0.0
    assert pairwise_accuracy(np.zeros_like(exact), exact) == 0.5
    assert np.isnan(pairwise_accuracy(exact[1:], exact[1:]))  # no pair with different exact scores: undefined
    prompts = load_suite("compbench", "val")[:2]
    samples = Samples(prompts, np.zeros((2, 4, 64), dtype=np.int64), exact, exact == 1.0)
    picked = best_of_n(np.array([[0, 0, 1, 0], [1, 0, 0, 0.0]]), samples)
    by_category = {}
    for p, v in zip(prompts, (1.0, 0.2)):
        by_category.setdefault(p.category, []).append(v)
    assert picked == pytest.approx(np.mean([np.mean(v) for v in by_category.values()]))


@pytest.mark.slow
def test_best_of_four_by_the_metric_reward_raises_the_base_policys_id_score():
    from cotlab.policy.pretrain import base_policy

    policy, _ = base_policy("smoke", progress=False)
    samples = sample_base(policy, "id", prompts_per_category=6, n=4, progress=False)
    picked = best_of_n(reward_matrix(rewards.get("metric"), samples), samples)
    first = samples.overall(np.zeros(len(samples.prompts), dtype=int))
    assert picked >= first + 0.05, (picked, first)
    assert picked == pytest.approx(samples.overall(samples.value.argmax(1)))  # the metric is the ID scorer itself
