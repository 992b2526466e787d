"""Evaluation on ShapeWorld suites: eval cards, per-seed reports and intervals."""
import numpy as np
import pytest

from cotlab.evaluation import evaluate_policy, mean_ci
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
