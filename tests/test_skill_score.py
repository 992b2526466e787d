"""The skill score (issue 19's positive control): the held-out skill alone, given its prerequisites, on constructed
scenes; the images it conditions on; its bootstrap SE; its chance level; and its place in `EvalResult.scores`."""
import math

import numpy as np
import pandas as pd
import pytest

from cotlab.evaluation import (EvalResult, conditional_bootstrap_se, image_bootstrap_se, prompt_skill, skill_chance,
                               skill_kinds, skill_score)
from cotlab.world import Scene
from cotlab.world.scene import Obj


def obj(shape, row, col, color="red", texture="solid", size="small"):
    return Obj(shape=shape, color=color, texture=texture, size=size, row=row, col=col)


ABOVE = "a photo of a red circle above a square"


def test_a_relation_is_scored_given_both_named_objects_drawn_right():
    above = Scene((obj("circle", 1, 3), obj("square", 5, 3, color="blue")))
    below = Scene((obj("circle", 6, 3), obj("square", 1, 3, color="blue")))
    beside = Scene((obj("circle", 3, 1), obj("square", 3, 6, color="blue")))  # neither above nor below
    assert skill_score(ABOVE, above) == 1.0
    assert skill_score(ABOVE, below) == 0.0 and skill_score(ABOVE, beside) == 0.0
    # A prerequisite fails: excluded (NaN), never scored 0, wherever the objects are.
    no_square = Scene((obj("circle", 1, 3), obj("triangle", 5, 3)))
    blue_circle = Scene((obj("circle", 1, 3, color="blue"), obj("square", 5, 3)))
    assert math.isnan(skill_score(ABOVE, no_square)) and math.isnan(skill_score(ABOVE, blue_circle))
    # Distinct objects: one red square cannot be both phrases of "a red square above a square".
    assert math.isnan(skill_score("a red square above a square", Scene((obj("square", 1, 1),))))
    # Any witness may do, as in GenEval's verdict: a second circle below does not spoil the one above.
    assert skill_score(ABOVE, Scene((*below.objects[:1], *above.objects))) == 1.0


def test_a_count_is_scored_given_its_kind_drawn_and_a_binding_given_its_facts_drawn():
    four = "a photo of four squares"
    squares = [obj("square", 0, 2 * k) for k in range(4)]
    assert skill_score(four, Scene(tuple(squares))) == 1.0
    assert skill_score(four, Scene(tuple(squares[:3]))) == 0.0
    assert skill_score(four, Scene(tuple(squares + [obj("square", 4, 4)]))) == 0.0
    assert math.isnan(skill_score(four, Scene((obj("circle", 0, 0),))))  # no square: excluded
    pair = "a photo of a red circle and a blue square"
    right = Scene((obj("circle", 0, 0), obj("square", 4, 4, color="blue")))
    swapped = Scene((obj("circle", 0, 0, color="blue"), obj("square", 4, 4)))
    no_blue = Scene((obj("circle", 0, 0), obj("square", 4, 4, color="green")))
    assert skill_score(pair, right) == 1.0 and skill_score(pair, swapped) == 0.0
    assert math.isnan(skill_score(pair, no_blue))
    # Nothing to bind ("a photo of a circle"), or a skill the prompt does not ask for: excluded.
    assert math.isnan(skill_score("a photo of a circle", right))
    assert math.isnan(skill_score(four, Scene(tuple(squares)), kinds=("relation",)))


def test_each_holdout_names_its_skill_and_a_prompt_is_scored_on_the_first_it_asks_for():
    assert skill_kinds("L0") == ("relation", "count", "binding")
    assert skill_kinds("L2-above-below") == skill_kinds("L3-above-below") == ("relation",)
    assert skill_kinds("L2-count-four") == ("count",) and skill_kinds("L1-50") == ("binding",)
    both = "a red circle above a square and four crosses"
    assert prompt_skill(both) == "relation"
    assert prompt_skill(both, ("count", "binding")) == "count"
    assert prompt_skill(both, ("binding",)) == "binding"
    assert prompt_skill("a photo of a circle") is None


def _result(skill, category, value=None):
    skill = np.asarray(skill, dtype=float)
    value = np.linspace(0, 1, skill.size) if value is None else value
    images = pd.DataFrame({"seed": 0, "prompt": "p", "category": category, "value": value,
                           "correct": value > 0.5, "skill": skill})
    return EvalResult(card=type("Card", (), {"suite": "geneval"})(), reports=[], images=images)


def test_scores_carry_the_skill_score_with_the_images_it_conditions_on():
    skill = [1, 0, np.nan, 1, np.nan, 1, 1, 0, np.nan, np.nan]
    category = ["a"] * 5 + ["b"] * 5
    scores = _result(skill, category).scores(n_boot=500)
    assert list(scores.columns) == ["continuous", "accuracy", "value", "se", "skill", "skill_n", "skill_se"]
    assert scores.loc["a", "skill"] == pytest.approx(2 / 3) and scores.loc["a", "skill_n"] == 3
    assert scores.loc["b", "skill"] == pytest.approx(2 / 3) and scores.loc["b", "skill_n"] == 3
    assert scores.loc["overall", "skill"] == pytest.approx(4 / 6) and scores.loc["overall", "skill_n"] == 6
    # The other metrics are exactly those of the same images without a skill score.
    plain = _result(skill, category)
    plain.images = plain.images.drop(columns="skill")
    before = plain.scores(n_boot=500)
    pd.testing.assert_frame_equal(scores[before.columns[:4]], before[before.columns[:4]])
    assert before["skill_n"].eq(0).all() and before["skill"].isna().all()
    # Pooled overall: a category with few conditioned images weighs by its images, not as a whole category.
    lopsided = _result([1] * 8 + [0, np.nan], ["a"] * 8 + ["b"] * 2).scores(n_boot=200)
    assert lopsided.loc["overall", "skill"] == pytest.approx(8 / 9)
    # No image conditioned on: NaN, n 0.
    none = _result([np.nan] * 4, ["a"] * 4).scores(n_boot=200)
    assert none["skill"].isna().all() and none["skill_n"].eq(0).all() and none["skill_se"].isna().all()


def test_the_conditional_bootstrap_se_is_image_bootstrap_se_without_exclusions():
    x = (np.random.default_rng(0).random(300) < 0.4).astype(float)
    assert conditional_bootstrap_se(x, n_boot=1000) == pytest.approx(image_bootstrap_se(x, n_boot=1000), rel=1e-9)
    # With exclusions: about the binomial SE of the conditioned images.
    y = np.where(np.random.default_rng(1).random(300) < 0.5, np.nan, x)
    kept = y[~np.isnan(y)]
    se = conditional_bootstrap_se(y, n_boot=4000)
    assert se == pytest.approx(kept.std() / np.sqrt(kept.size), rel=0.1)
    assert math.isnan(conditional_bootstrap_se([np.nan, 1.0, np.nan]))


def test_chance_for_above_below_is_symmetric_and_below_one_half():
    chance = skill_chance("geneval", "test-heldout", holdout="L2-above-below", images_per_prompt=8)
    assert list(chance.index) == ["position", "overall"]
    level = chance.loc["overall", "skill"]
    assert 0.2 < level < 0.5  # side-by-side placements are neither above nor below
    assert chance.loc["overall", "skill_n"] == 8 * 100
    # Every placement of two small objects: "A above B" holds exactly as often as "A below B" (the position rule is
    # symmetric), and less than half the time.
    cells = [(r, c) for r in range(8) for c in range(8)]
    above, below = [], []
    for a in cells:
        for b in cells:
            if a != b:
                scene = Scene((obj("circle", *a), obj("square", *b)))
                above.append(skill_score("a photo of a circle above a square", scene))
                below.append(skill_score("a photo of a circle below a square", scene))
    assert np.mean(above) == np.mean(below) < 0.5
    assert abs(np.mean(above) - level) < 0.08
