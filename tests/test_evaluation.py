"""Evaluation on ShapeWorld suites: eval cards, per-seed reports and intervals."""
import numpy as np
import pytest

from cotlab.evaluation import evaluate_policy, guidance_sweep, mean_ci
from cotlab.policy import build_shapeworld_policy


def test_mean_ci_is_a_student_t_interval():
    mean, half = mean_ci([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert half == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)  # t(0.975, 2) * s / sqrt(n)
    assert mean_ci([0.5]) == (0.5, 0.0)


def test_evaluate_policy_reports_every_task_per_seed_with_a_card():
    policy = build_shapeworld_policy("tiny", seed=0)
    result = evaluate_policy(policy, "geneval", images_per_prompt=2, seeds=(0, 1), prompts_per_category=2,
                             guidance_scale=3.0, policy_name="tiny random", progress=False)
    assert len(result.reports) == 2 and len(result.images) == 2 * 6 * 2 * 2
    summary = result.summary()
    assert list(summary.index) == ["single_object", "two_object", "counting", "colors", "position", "color_attr",
                                   "overall"]
    assert summary["accuracy"].between(0, 1).all()
    card = result.card
    assert (card.suite, card.split, card.prompts, card.images_per_prompt, card.seeds) == ("geneval", "test", 12, 2, (0, 1))
    assert card.guidance_scale == 3.0 and card.logprob_mode == "cond" and "+" in card.code_version
    # The same seeds give the same images, hence the same numbers.
    again = evaluate_policy(policy, "geneval", images_per_prompt=2, seeds=(0, 1), prompts_per_category=2,
                            guidance_scale=3.0, progress=False)
    assert again.images.equals(result.images)


def test_compbench_is_evaluated_on_its_held_out_split_by_default():
    from cotlab.world import load_suite

    policy = build_shapeworld_policy("tiny", seed=0)
    result = evaluate_policy(policy, "compbench", images_per_prompt=1, prompts_per_category=1, progress=False)
    val = {p.text for p in load_suite("compbench", "val")}
    assert result.card.split == "val" and set(result.images["prompt"]) <= val


@pytest.mark.parametrize("suite", ["compbench", "geneval"])
def test_scores_give_both_metrics_and_the_headline_value_of_summary(suite):
    policy = build_shapeworld_policy("tiny", seed=0)
    result = evaluate_policy(policy, suite, images_per_prompt=2, seeds=(0, 1), prompts_per_category=2,
                             guidance_scale=3.0, progress=False)
    scores, summary = result.scores(n_boot=200), result.summary()
    assert list(scores.columns) == ["continuous", "accuracy", "value", "se", "skill", "skill_n", "skill_se"]
    assert list(scores.index) == list(summary.index)
    np.testing.assert_allclose(scores["value"], summary.iloc[:, 0], atol=1e-12)
    headline = "accuracy" if suite == "geneval" else "continuous"
    np.testing.assert_allclose(scores["value"], scores[headline])
    images = result.images
    first = images["category"].iloc[0]
    assert scores.loc[first, "accuracy"] == pytest.approx(images[images["category"] == first]["correct"].mean())
    assert (scores["se"] >= 0).all() and scores.loc["overall", "se"] <= scores["se"].drop("overall").max()
    # The skill score: every skill at L0, over the images whose prerequisites hold (`tests/test_skill_score.py`).
    assert scores.loc["overall", "skill_n"] == images["skill"].notna().sum()
    assert set(images["skill"].dropna()) <= {0.0, 1.0}


def test_image_bootstrap_se_matches_the_standard_error_of_a_mean():
    from cotlab.evaluation import image_bootstrap_se

    x = np.random.default_rng(0).random(400)
    assert image_bootstrap_se(x, n_boot=4000) == pytest.approx(x.std() / np.sqrt(x.size), rel=0.06)
    # Stratified: the mean of two category means has se sqrt(se1^2 + se2^2) / 2.
    y = np.random.default_rng(1).random(100) * 3
    both = image_bootstrap_se(np.r_[x, y], strata=[0] * 400 + [1] * 100, n_boot=4000)
    expected = np.sqrt(x.var() / 400 + y.var() / 100) / 2
    assert both == pytest.approx(expected, rel=0.06)
    assert image_bootstrap_se(np.ones(50)) == 0.0
    assert image_bootstrap_se(x, seed=3) == image_bootstrap_se(x, seed=3)


def test_guidance_sweep_gives_each_weight_suite_and_seed_the_overall_of_evaluate_policy():
    policy = build_shapeworld_policy("tiny", seed=0)
    options = {"images_per_prompt": 1, "prompts_per_category": 1, "temperature": 1.0}
    sweep = guidance_sweep(policy, [1.0, 3.0], seeds=(0, 1), **options)
    assert list(sweep.columns) == ["CFG weight", "suite", "seed", "overall"]
    assert list(zip(sweep["CFG weight"], sweep["suite"], sweep["seed"])) == [
        (w, s, seed) for w in (1.0, 3.0) for s in ("compbench", "geneval") for seed in (0, 1)]
    for suite, split in (("compbench", "val"), ("geneval", None)):
        direct = evaluate_policy(policy, suite, split, guidance_scale=3.0, seeds=(0, 1), progress=False, **options)
        got = sweep[(sweep["CFG weight"] == 3.0) & (sweep["suite"] == suite)]["overall"].tolist()
        assert got == pytest.approx([r.overall for r in direct.reports])
    assert sweep["overall"].between(0, 1).all()
