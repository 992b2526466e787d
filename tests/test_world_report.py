"""The world's measurement tables (`cotlab.world.report`) on small, constructed inputs: what each column counts."""
import numpy as np
import pytest

import cotlab.world as w
from cotlab.world import report as R
from cotlab.world.scoring import facts_named


def prompt(text: str, category: str, suite: str = "compbench") -> w.Prompt:
    return w.Prompt(text, category, w.parse_prompt(text).to_meta(), suite)


def test_parser_robustness_counts_exact_misread_and_lost_objects_per_blur():
    table = R.parser_robustness(20, 0, blur_radii=(0.0, 3.0))
    assert list(table.index) == [0.0, 3.0] and set(table["scenes"]) == {20}
    clean, blurred = table.loc[0.0], table.loc[3.0]
    assert clean["exact"] == 1.0 and clean["with a misread object"] == 0.0
    assert clean["with an invented object"] == 0.0 and clean["objects lost per scene"] == 0.0
    assert blurred["exact"] < 1.0 and blurred["objects lost per scene"] > 0  # a heavy blur breaks the parse
    assert table.equals(R.parser_robustness(20, 0, blur_radii=(0.0, 3.0)))  # seeded


def test_random_code_readings_account_for_every_patch():
    table = R.random_code_readings(10, 0)
    assert list(table.index) == ["mean", "min", "max"]
    assert (table.loc["min"] <= table.loc["mean"]).all() and (table.loc["mean"] <= table.loc["max"]).all()
    mean = table.loc["mean"]
    patches = (mean["small objects (whole)"] + 4 * mean["large objects (whole)"]
               + mean["fragments (quadrants of no whole object)"] + mean["unrecognised patches"])
    assert 0 < patches <= 64  # every patch is at most one of these (the rest read as background)
    assert table.equals(R.random_code_readings(10, 0))


def test_scorer_check_judges_the_truth_correct_and_each_changed_fact_wrong():
    prompts = [prompt("a red circle", "color"), prompt("a blue striped square", "texture"),
               prompt("two green triangles", "numeracy")]
    table = R.scorer_check(prompts, 0)
    assert list(table.index) == ["color", "texture", "numeracy"]
    assert list(table["prompts"]) == [1, 1, 1]
    assert list(table["changed scenes"]) == [len(facts_named(p)) for p in prompts]  # every change fits a 8x8 grid
    assert set(table["ground truth correct"]) == {1.0} and set(table["changed judged wrong"]) == {1.0}


def test_suite_statistics_per_category():
    prompts = [prompt("a red circle and a blue square", "color"), prompt("a red circle and a blue square", "color"),
               prompt("a red circle to the left of a square", "spatial")]
    table = R.suite_statistics(prompts)
    assert list(table.index) == ["color", "spatial"]
    color, spatial = table.loc["color"], table.loc["spatial"]
    assert (color["prompts"], color["distinct texts"]) == (2, 1)
    assert color["words per prompt"] == 7 and color["objects asked for"] == 2 and color["relations"] == 0
    assert color["facts named per object"] == 2 and color["scoring family"] == "binding"
    assert spatial["words per prompt"] == 9 and spatial["relations"] == 1
    assert spatial["facts named per object"] == pytest.approx(np.mean([2, 1]))
    assert spatial["scoring family"] == "spatial"
    three_facts = R.suite_statistics([prompt("a small red circle to the left of a square", "spatial")])
    assert three_facts.loc["spatial", "scoring family"] == "complex"  # an object with three facts


def test_word_overlap_splits_the_two_suites_words():
    table = R.word_overlap([prompt("a red circle.", "color")],
                           [prompt("a photo of a red square", "single_object", "geneval")])
    assert table["words"].to_dict() == {"only in compbench (ID)": "circle",
                                        "only in geneval (OOD)": "of, photo, square", "in both": "a, red"}
