"""ShapeWorld language, suites and the exact scorer."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import cotlab.world as w
from cotlab.world.scoring import relative_position

GENEVAL_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "geneval" / "evaluation_metadata.jsonl"
FRESH_SEED = 31337


@pytest.fixture(scope="module")
def compbench():
    return w.load_suite("compbench", "all")


@pytest.fixture(scope="module")
def geneval():
    return w.load_suite("geneval")


def test_suite_sizes_and_splits(compbench, geneval):
    train, dev, val = (w.load_suite("compbench", split) for split in ("train", "dev", "val"))
    assert Counter(p.category for p in train) == {c: 600 for c in w.COMPBENCH_CATEGORIES}
    assert Counter(p.category for p in dev) == {c: 100 for c in w.COMPBENCH_CATEGORIES}
    assert Counter(p.category for p in val) == {c: 300 for c in w.COMPBENCH_CATEGORIES}
    texts = [{p.text for p in split} for split in (train, dev, val)]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert len({p.text.lower().rstrip(".") for p in compbench}) == 7000
    assert len(geneval) == 553 and Counter(p.category for p in geneval) == w.GENEVAL_TASKS
    small = w.load_suite("compbench", "val", num_train=10, num_val=5)
    assert Counter(p.category for p in small) == {c: 5 for c in w.COMPBENCH_CATEGORIES}


@pytest.mark.skipif(not GENEVAL_FILE.exists(), reason="the official GenEval file lives in ../shared/benchmarks")
def test_geneval_suite_follows_the_official_proportions_and_metadata_layout(geneval):
    official = [json.loads(line) for line in GENEVAL_FILE.read_text().splitlines() if line.strip()]
    assert Counter(m["tag"] for m in official) == Counter(p.category for p in geneval)
    keys = {m["tag"]: (set(m), {k for inc in m["include"] for k in inc}) for m in official}
    for p in geneval:
        top, inner = keys[p.category]
        assert top - {"prompt"} <= set(p.meta)
        assert {k for inc in p.meta["include"] for k in inc} == inner
        assert p.text.startswith("a photo of ")


def test_suites_are_fixed_by_seed():
    a = [p.text for p in w.load_suite("compbench", "val", seed=3)]
    b = [p.text for p in w.load_suite("compbench", "val", seed=3)]
    c = [p.text for p in w.load_suite("compbench", "val", seed=4)]
    assert a == b and a != c


def test_id_and_ood_phrasing_differ(compbench, geneval):
    id_words = Counter(t for p in compbench for t in w.tokenize(p.text))
    ood_words = Counter(t for p in geneval for t in w.tokenize(p.text))
    assert id_words["photo"] == 0 and ood_words["photo"] == 553
    assert id_words["above"] == 0 and ood_words["above"] > 0 and id_words["top"] > 0 and ood_words["top"] == 0
    assert ood_words.keys().isdisjoint({"striped", "dotted", "large", "small", "round", "object"})
    assert all(id_words[x] > 0 for x in ("striped", "round", "bigger", "touching", "same"))


def test_every_suite_prompt_parses_back_to_its_metadata(compbench, geneval):
    for p in compbench + geneval:
        assert w.parse_prompt(p.text) == p.spec, p.text


def test_ground_truth_scenes_satisfy_and_one_changed_fact_breaks(compbench, geneval):
    rng = np.random.default_rng(FRESH_SEED)
    by_category = {}
    for p in compbench[::5] + geneval:
        by_category.setdefault(p.category, []).append(p)
    for category, prompts in by_category.items():
        satisfied, broken, tried = 0, 0, 0
        for p in prompts:
            scene = w.scene_for(p, rng)
            satisfied += w.score(p, w.render(scene)).correct
            for fact in w.facts_named(p):
                changed = w.perturb(p, scene, fact, rng)
                if changed is not None:
                    tried += 1
                    broken += not w.score(p, w.render(changed)).correct
        assert satisfied / len(prompts) >= 0.99, category
        assert tried >= len(prompts) and broken / tried >= 0.99, category
    # The three facts the brief names are all exercised.
    assert {"color", "count", "side"} <= {f for p in compbench for f in w.facts_named(p)}


def test_correct_means_full_value_and_values_are_in_range(compbench):
    rng = np.random.default_rng(FRESH_SEED + 1)
    for p in compbench[::50]:
        s = w.score_scene(p, w.random_scene(rng))
        assert 0.0 <= s.value <= 1.0
        if s.correct:
            assert s.value == 1.0


def _scene(*objs):
    return w.Scene(tuple(w.Obj(*o) for o in objs))


def test_partial_credit_follows_each_category_formula():
    red_circle, green_square = ("circle", "red", "solid", "small", 0, 0), ("square", "green", "solid", "small", 0, 4)
    scene = _scene(red_circle, green_square)
    # Binding: product of phrase credits; "a blue square" gets 1/2 (shape right, colour wrong).
    s = w.score_scene("a red circle and a blue square", scene)
    assert s.family == "binding" and s.value == pytest.approx(0.5) and not s.correct
    # Spatial: 0.25 + 0.25 + 0.5 when the relation holds; without it 0.5 stays (it is not below 0.5).
    assert w.score_scene("a red circle on the left of a green square", scene).value == 1.0
    wrong_side = w.score_scene("a red circle on the right of a green square", scene)
    assert wrong_side.value == pytest.approx(0.5) and not wrong_side.correct
    # ... and a half-matching object with the wrong side falls below 0.5, so it scores 0.
    assert w.score_scene("a red circle on the right of a blue square", scene).value == 0.0
    # Non-spatial: mean of the two credits and the relation.
    assert w.score_scene("a red circle is bigger than a green square", scene).value == pytest.approx(2 / 3)
    # Numeracy: mean of exact-count indicators.
    s = w.score_scene("two circles and one square", scene)
    assert s.family == "numeracy" and s.value == pytest.approx(0.5)
    # Complex: mean of binding and relation scores.
    s = w.score_scene("a small solid red circle on the right of a large green square", scene)
    assert s.family == "complex" and 0.0 < s.value < 1.0 and not s.correct


def test_counting_is_exact_and_a_means_at_least_one():
    three = _scene(*[("circle", "red", "solid", "small", 0, c) for c in (0, 2, 4)])
    assert w.score_scene("a photo of three circles", three).correct
    assert not w.score_scene("a photo of two circles", three).correct  # GenEval excludes N+1
    assert w.score_scene("a photo of a circle", three).correct
    assert not w.score_scene("four circles", three).correct


def test_positions_follow_genevals_rule():
    a = w.Obj("circle", "red", "solid", "small", 3, 1)
    b = w.Obj("square", "red", "solid", "small", 3, 4)
    assert relative_position(a, b) == {"left of"} and relative_position(b, a) == {"right of"}
    diagonal = w.Obj("square", "red", "solid", "small", 4, 2)
    assert relative_position(a, diagonal) == {"left of", "above"}  # both components exceed half the offset
    steep = w.Obj("square", "red", "solid", "small", 6, 2)
    assert relative_position(a, steep) == {"above"}  # mostly vertical: not "left of"
    stacked = w.Obj("square", "red", "solid", "large", 2, 0)
    assert relative_position(w.Obj("circle", "red", "solid", "small", 3, 0), stacked) == set()  # inside the margin


@pytest.mark.parametrize("text,fragment", [
    ("a crimson circle", "unknown word 'crimson'"),
    ("a red circle & a square", "unknown word '&'"),
    ("a circle on the left of 3 squares", "unknown word '3'"),
])
def test_unknown_words_name_the_word_and_the_vocabulary(text, fragment):
    with pytest.raises(w.PromptError, match=fragment) as err:
        w.parse_prompt(text)
    assert "vocabulary is:" in str(err.value) and "circle" in str(err.value) and "striped" in str(err.value)


@pytest.mark.parametrize("text,fragment", [
    ("", "empty prompt"),
    ("red circle", "expected a determiner"),
    ("a red", "expected a noun"),
    ("two circle", "'two' does not agree with 'circle'"),
    ("a circles", "does not agree"),
    ("a red blue circle", "names two colors"),
    ("a round square", "names two shapes"),
    ("a circle on the left of two squares", "joins single objects"),
    ("a circle a square", "expected 'and'"),
    ("four circles, four squares, four crosses and four triangles and a diamond", "more than 16 objects"),
])
def test_malformed_prompts_say_what_is_wrong(text, fragment):
    with pytest.raises(w.PromptError, match=fragment):
        w.parse_prompt(text)


def test_free_text_prompts_score_like_suite_prompts():
    scene = _scene(("triangle", "blue", "striped", "large", 2, 2))
    assert w.score_scene("A big striped blue triangular object.", scene).correct
    assert w.score_scene("there is a large blue triangle", scene).correct
    assert not w.score_scene("a small blue triangle", scene).correct


def test_unsatisfiable_prompt_is_reported():
    with pytest.raises(w.PromptError, match="no scene satisfies"):
        w.scene_for("a small circle is bigger than a square", 0, max_tries=20)


def test_geneval_overall_is_the_mean_of_task_accuracies(geneval):
    prompts = [p for p in geneval if p.category in ("single_object", "counting")]
    # All single_object images right, all counting images wrong: overall = mean(1, 0) = 0.5 for any counts.
    scores = [w.Score(float(p.category == "single_object"), p.category == "single_object", "binding", w.Scene())
              for p in prompts]
    report = w.aggregate(prompts, scores)
    assert report.accuracy == {"single_object": 1.0, "counting": 0.0} and report.overall == 0.5
    assert list(report.table().index) == ["single_object", "counting"]
    with pytest.raises(ValueError, match="2 prompts and 1 scores"):
        w.aggregate(prompts[:2], scores[:1])


def test_score_batch_checks_lengths_and_load_suite_names_valid_choices():
    with pytest.raises(ValueError, match="2 prompts and 1 images"):
        w.score_batch(["a circle", "a square"], [w.render(w.Scene())])
    with pytest.raises(ValueError, match="compbench, geneval"):
        w.load_suite("drawbench")
    with pytest.raises(ValueError, match="train, dev, val, val-seen, val-heldout, all"):
        w.load_suite("compbench", "test")


def test_examples_per_category_draws_k_distinct_prompts_of_each_category_in_order(compbench):
    picked = w.examples_per_category(compbench, 3, np.random.default_rng(7))
    assert len(picked) == 3 * len(w.COMPBENCH_CATEGORIES)
    assert [p.category for p in picked] == [c for c in w.COMPBENCH_CATEGORIES for _ in range(3)]
    assert len({p.text for p in picked}) == len(picked) and all(p in compbench for p in picked)
    # The same draws as the chapters made by hand: rng.choice per category, without replacement.
    rng = np.random.default_rng(7)
    by_hand = []
    for category in w.COMPBENCH_CATEGORIES:
        group = [p for p in compbench if p.category == category]
        by_hand += [group[i] for i in rng.choice(len(group), size=3, replace=False)]
    assert picked == by_hand
    # One per category is one integer draw per category (chapter 1's draws).
    rng, again = np.random.default_rng(3), np.random.default_rng(3)
    one = w.examples_per_category(compbench, 1, rng)
    assert one == [[p for p in compbench if p.category == c][int(again.integers(
        sum(p.category == c for p in compbench)))] for c in w.COMPBENCH_CATEGORIES]
    with pytest.raises(ValueError, match="fewer than the 2"):
        w.examples_per_category(compbench[:1], 2, np.random.default_rng(0))


def test_evenly_spaced_keeps_first_last_and_order(geneval):
    assert w.evenly_spaced(list("abcdefghij"), 4) == ["a", "d", "g", "j"]
    assert w.evenly_spaced("abc", 5) == ["a", "b", "c"]
    shown = w.evenly_spaced(geneval, 6)
    assert shown[0] == geneval[0] and shown[-1] == geneval[-1] and len(shown) == 6
    assert len({p.category for p in shown}) >= 5  # the suite lists its tasks in turn: a spread across them
