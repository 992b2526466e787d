"""compbench's train / dev / val split, and hold-outs: named, graded, and really held out of what RL trains on."""
import hashlib
from collections import Counter

import pytest

import cotlab.world as w
from cotlab.world import suites
from cotlab.world.holdout import COMBO_FAMILIES, L1_DOSES, dose_count

# Pins val across the train / dev split: these are the texts the former 700 / 300 split's val gave (seed 0), recorded
# before dev existed. Train + dev, category by category, is the former train (its hash, in that order).
VAL_SHA256 = "c37175900f7fb5f772c6b097950cf5ff88ceeb5d4d8b868d404eab3d7775908a"
FORMER_TRAIN_SHA256 = "3fe6a77ec19a00678e59089c3781437789a8bfd2abba27b387cfd0104c8f0f7d"
VAL_FIRST = {
    "color": ["a purple triangle with a red square", "A red square and a brown triangle.",
              "A black cross and a yellow round object."],
    "spatial": ["A brown square on the bottom of a square thing.", "a purple triangle to the right of a triangle",
                "a white triangular thing to the right of a diamond"],
}
HELD_OUT = [name for name, h in w.HOLDOUTS.items() if not h.empty]


def sha256(texts) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def texts(prompts) -> list[str]:
    return [p.text for p in prompts]


def test_train_dev_val_are_disjoint_and_val_is_the_former_val():
    train, dev, val = (w.load_suite("compbench", s) for s in ("train", "dev", "val"))
    for split, n in ((train, 600), (dev, 100), (val, 300)):
        assert Counter(p.category for p in split) == {c: n for c in w.COMPBENCH_CATEGORIES}
    keys = [{p.text.lower().rstrip(".") for p in split} for split in (train, dev, val)]
    assert sum(map(len, keys)) == len(set.union(*keys)) == 7000
    assert sha256(texts(val)) == VAL_SHA256
    for category, first in VAL_FIRST.items():
        assert [p.text for p in val if p.category == category][:3] == first
    former_train = [p.text for c in w.COMPBENCH_CATEGORIES for p in train + dev if p.category == c]
    assert sha256(former_train) == FORMER_TRAIN_SHA256
    assert w.load_suite("compbench") == train


@pytest.mark.parametrize("kwargs, message", [
    ({"num_dev": 0}, "num_dev must be at least 1, got 0"),
    ({"num_dev": 2.0}, r"num_dev must be an int, got 2.0 \(float\)"),
    ({"num_dev": True}, r"num_dev must be an int, got True \(bool\)"),
    ({"num_dev": 9_200}, r"num_train \+ num_dev \+ num_val = 10100 .*lower num_train, num_dev or num_val"),
])
def test_num_dev_is_checked_like_the_other_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        w.load_suite("compbench", "dev", **kwargs)


@pytest.mark.parametrize("name", HELD_OUT)
def test_a_holdout_is_out_of_training_and_splits_evaluation_by_touching(name):
    h = w.HOLDOUTS[name]
    for split in ("train", "dev"):
        kept = w.load_suite("compbench", split, holdout=name)
        assert kept == [p for p in w.load_suite("compbench", split) if not h.touches(p)]
        assert 0 < len(kept) < len(w.load_suite("compbench", split))
    val = w.load_suite("compbench", "val", holdout=name)
    seen, held = (w.load_suite("compbench", s, holdout=name) for s in ("val-seen", "val-heldout"))
    assert val == w.load_suite("compbench", "val") and Counter(texts(seen + held)) == Counter(texts(val))
    assert not any(h.touches(p) for p in seen) and all(h.touches(p) for p in held)
    test = w.load_suite("geneval", "test", holdout=name)
    seen, held = (w.load_suite("geneval", s, holdout=name) for s in ("test-seen", "test-heldout"))
    assert seen == [p for p in test if not h.touches(p)] and all(h.touches(p) for p in held)
    assert len(held) >= suites.HELDOUT_TEST_SIZE
    assert not Counter(texts(p for p in test if h.touches(p))) - Counter(texts(held))  # every touching test prompt


@pytest.mark.parametrize("name", ["L1-20", "L2-above-below", "L2-count-four"])
def test_geneval_heldout_variants_keep_genevals_metadata(name):
    keys = {p.category: set(p.meta) for p in w.load_suite("geneval")}
    for p in w.load_suite("geneval", "test-heldout", holdout=name):
        assert set(p.meta) == keys[p.category] and p.meta["tag"] == p.category and p.suite == "geneval"
        assert p.text.startswith("a photo of ") and w.meaning(p.text) == w.meaning(p)
        assert {inc["class"] for inc in p.meta["include"]} == {e.shape for e in p.spec.entities}


def test_heldout_splits_are_the_same_on_every_machine():
    assert sorted(w.HOLDOUTS["L1-20"].combos) == [
        ("circle", "black"), ("circle", "dotted"), ("diamond", "blue"), ("diamond", "dotted"), ("diamond", "pink"),
        ("square", "blue"), ("square", "green"), ("square", "yellow"), ("triangle", "blue"), ("triangle", "green"),
        ("triangle", "pink"), ("triangle", "red"), ("triangle", "striped")]
    held = w.load_suite("geneval", "test-heldout", holdout="L2-count-four")
    assert Counter(p.text for p in held) == {"a photo of four squares": 20, "a photo of four circles": 20,
                                             "a photo of four triangles": 20, "a photo of four diamonds": 20,
                                             "a photo of four crosses": 20}


def test_l0_holds_nothing_out_and_its_heldout_splits_are_an_error():
    assert w.HOLDOUTS["L0"].empty
    for split in ("train", "dev", "val", "all"):
        assert w.load_suite("compbench", split, holdout="L0") == w.load_suite("compbench", split)
    assert w.load_suite("compbench", "val-seen") == w.load_suite("compbench", "val")
    assert w.load_suite("geneval", "test-seen") == w.load_suite("geneval", "test")
    for suite, split in (("compbench", "val-heldout"), ("geneval", "test-heldout")):
        with pytest.raises(ValueError, match=f"holds nothing out.*ask for '{split.split('-')[0]}'.*L1-20, L1-50"):
            w.load_suite(suite, split)


def test_l1_doses_hold_out_their_fraction_of_bindings_never_a_whole_shape_or_value():
    doses = {name: w.HOLDOUTS[name].combos for name in L1_DOSES}
    assert doses["L1-20"] < doses["L1-50"]
    for name, dose in L1_DOSES.items():
        for family, values in COMBO_FAMILIES.items():
            held = {(s, v) for s, v in doses[name] if v in values}
            total = len(w.SHAPES) * len(values)
            assert len(held) == dose_count(dose, total) and abs(len(held) / total - dose) <= 0.5 / total
            seen = {(s, v) for s in w.SHAPES for v in values} - held
            assert {s for s, _ in seen} == set(w.SHAPES) and {v for _, v in seen} == set(values)
    assert (dose_count(0.2, 15), dose_count(0.5, 15), dose_count(0.5, 50)) == (3, 8, 25)


def test_l3_is_l2_held_out_of_pretraining_too():
    for skill in ("above-below", "count-four"):
        l2, l3 = w.HOLDOUTS[f"L2-{skill}"], w.HOLDOUTS[f"L3-{skill}"]
        assert not l2.pretraining and l3.pretraining
        assert (l2.combos, l2.relations, l2.counts, l2.words) == (l3.combos, l3.relations, l3.counts, l3.words)
        assert w.load_suite("compbench", "train", holdout=l2.name) == w.load_suite("compbench", "train",
                                                                                 holdout=l3.name)


def test_bad_holdouts_are_named_with_the_valid_ones():
    valid = ", ".join(w.HOLDOUTS)
    for bad in ("L9", "l0", None, 3):
        with pytest.raises(ValueError, match=f"unknown hold-out .*; the hold-outs are: {valid}"):
            w.check_holdout(bad)
    with pytest.raises(ValueError, match="the hold-outs are: L0, L1-20"):
        w.load_suite("compbench", "train", holdout="L2")
    with pytest.raises(ValueError, match=r"unknown relations \['on top'\]"):
        w.HoldOut("mine", relations={"on top"})
    with pytest.raises(ValueError, match=r"unknown combos \[\('circle', 'gold'\)\]"):
        w.HoldOut("mine", combos={("circle", "gold")})


def test_a_holdout_that_empties_training_is_an_error():
    everything = w.HoldOut("everything", words={"a", "an", "one", "two", "three", "four"})
    with pytest.raises(ValueError, match="hold-out 'everything' touches every prompt of compbench's 'train'"):
        w.load_suite("compbench", "train", holdout=everything, num_train=5, num_dev=2, num_val=3)
    textures = w.HoldOut("textures", combos={(s, "striped") for s in w.SHAPES})
    with pytest.raises(ValueError, match="'test-heldout' is empty .*no prompt of geneval touches it"):
        w.load_suite("geneval", "test-heldout", holdout=textures)


def test_touches_reads_meaning_not_wording():
    red_circle = w.HoldOut("red circle", combos={("circle", "red")})
    assert all(red_circle.touches(t) for t in ("a red circle", "a round red thing", "a photo of two red circles",
                                                "A big striped red circle is touching a square."))
    assert not any(red_circle.touches(t) for t in ("a red object and a circle", "a blue circle", "a red square"))
    above = w.HOLDOUTS["L2-above-below"]
    assert all(above.touches(t) for t in ("a circle on the top of a square", "a photo of a circle above a square",
                                          "a square under a circle", "a circle on the bottom of a red square"))
    assert not above.touches("a circle on the left of a square")
    four = w.HOLDOUTS["L2-count-four"]
    assert four.touches("four circles and a square") and not four.touches("three circles and a square")
    photo = w.HoldOut("photo", words={"photo"})
    assert photo.touches(w.load_suite("geneval")[0]) and not photo.touches("an image of a circle")


def test_meaning_twins_ignore_wording_and_order_not_facts():
    id_prompts = [w.Prompt(t, "id", w.parse_prompt(t).to_meta()) for t in (
        "A blue square together with a red circle.", "a round green thing", "a square on the top of a circle",
        "two circles", "a big red square is bigger than a small cross")]
    ood = {"a photo of a red circle and a blue square": True,  # rephrased, reordered
           "a photo of a green circle": True,  # a shape as a noun or as an adjective
           "a photo of a circle below a square": True,  # the same relation from the other side
           "a photo of two circles": True,
           "a small cross is smaller than a big red square": True,
           "a photo of a purple circle and a blue square": False,  # another colour
           "a photo of a circle above a square": False,  # the other way round
           "a photo of three circles": False, "a photo of a square and a circle": False,
           "a photo of one green circle": False}  # exactly one is not "a" (at least one)
    ood_prompts = [w.Prompt(t, "position" if "above" in t or "below" in t else "other", w.parse_prompt(t).to_meta())
                   for t in ood]
    assert w.meaning_twins(ood_prompts, id_prompts) == list(ood.values())
    assert w.twin_overlap(ood_prompts, id_prompts) == {"other": 4 / 8, "position": 1 / 2, "overall": 5 / 10}


def test_load_suite_caches_per_holdout_and_returns_copies():
    first = w.load_suite("compbench", "train", holdout="L1-20")
    hits = suites._splits.cache_info().hits
    again = w.load_suite("compbench", "train", holdout=w.HOLDOUTS["L1-20"])
    assert again == first and again is not first and suites._splits.cache_info().hits == hits + 1
    again.clear()
    assert w.load_suite("compbench", "train", holdout="L1-20") == first
