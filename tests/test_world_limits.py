"""ShapeWorld's limits: prompt length, short prompt excerpts in errors, and the suites' seed and size checks."""
import time

import numpy as np
import pytest

from cotlab import world as w
from cotlab.world.language import EXCERPT_CHARS, MAX_PROMPT_CHARS, PromptError, excerpt, parse_prompt
from cotlab.world.suites import MAX_PROMPTS_PER_CATEGORY

PHRASE = "a little spotted orange cross-shaped thing"  # among the longest phrases of the grammar
# 16 objects (the most the grid holds) in long phrases, relations and joiners: every sentence this long must parse.
LONGEST = "a picture of " + " together with ".join([f"{PHRASE} has the same color as {PHRASE}"] * 8)


def test_a_huge_prompt_is_refused_at_once_with_an_excerpt():
    start = time.perf_counter()
    with pytest.raises(PromptError, match=f"is 1000000 characters long; .* at most {MAX_PROMPT_CHARS}") as err:
        parse_prompt("x" * 1_000_000)
    assert time.perf_counter() - start < 0.5
    assert len(str(err.value)) < 200


def test_the_limit_leaves_room_for_any_sentence_the_grid_can_hold():
    longest_suite = max(len(p.text) for p in w.load_suite("compbench", "all") + w.load_suite("geneval"))
    assert len(LONGEST) <= MAX_PROMPT_CHARS and 8 * longest_suite <= MAX_PROMPT_CHARS
    start = time.perf_counter()
    spec = parse_prompt(LONGEST)
    assert sum(e.count for e in spec.entities) == 16 and len(spec.relations) == 8
    assert time.perf_counter() - start < 0.5
    with pytest.raises(PromptError, match="at most 1000"):
        parse_prompt(LONGEST + " " * (MAX_PROMPT_CHARS + 1 - len(LONGEST)))


def test_excerpt_cuts_long_text():
    assert excerpt("a red circle") == "'a red circle'"
    assert excerpt("y" * 500) == repr("y" * EXCERPT_CHARS + "...")


PADDING = " and ".join(["a red circle"] * 10)  # ~160 characters before the fault


@pytest.mark.parametrize("prompt, message", [
    (f"{PADDING} and a {'z' * 800}", "unknown word"),
    (f"{PADDING} and a red", "malformed prompt"),
    (f"{PADDING} and a red blue circle", "names two colors"),
    (f"{PADDING} and two circle", "does not agree"),
    (f"{PADDING} and two circles left of a square", "joins single objects"),
    (" and ".join(["four circles"] * 5), "more than 16 objects"),
])
def test_errors_quote_at_most_an_excerpt_of_the_prompt(prompt, message):
    with pytest.raises(PromptError, match=message) as err:
        parse_prompt(prompt)
    text = str(err.value).split("ShapeWorld's vocabulary is")[0]  # the vocabulary list is the language, not the prompt
    assert len(text) < 250, text
    assert prompt not in text and "..." in text


def test_scene_for_quotes_an_excerpt_of_an_impossible_prompt():
    prompt = f"{PADDING} and a small circle is bigger than a large square"
    with pytest.raises(PromptError, match="no scene satisfies") as err:
        w.scene_for(prompt, np.random.default_rng(0))
    assert prompt not in str(err.value) and len(str(err.value)) < 200


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, "seed must be non-negative, got -1"),
    ({"seed": 1.5}, r"seed must be an int, got 1.5 \(float\)"),
    ({"seed": True}, r"seed must be an int, got True \(bool\)"),
    ({"num_train": 0}, "num_train must be at least 1, got 0"),
    ({"num_val": "3"}, r"num_val must be an int, got '3' \(str\)"),
    ({"num_train": False}, "num_train must be an int"),
    ({"num_train": 100_000}, f"num_train \\+ num_dev \\+ num_val = 100400 .*MAX_PROMPTS_PER_CATEGORY = {MAX_PROMPTS_PER_CATEGORY}"),
])
@pytest.mark.parametrize("suite", ["compbench", "geneval"])
def test_load_suite_names_a_bad_argument_before_generating(suite, kwargs, message):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        w.load_suite(suite, **kwargs)
    assert time.perf_counter() - start < 0.5


def test_numpy_ints_are_ints():
    assert w.load_suite("compbench", "val", seed=np.int64(3), num_train=np.int32(10), num_val=5) == \
        w.load_suite("compbench", "val", seed=3, num_train=10, num_val=5)


@pytest.mark.slow
def test_every_category_fills_the_maximum():
    prompts = w.load_suite("compbench", "all", num_train=MAX_PROMPTS_PER_CATEGORY - 2, num_dev=1, num_val=1)
    assert len(prompts) == MAX_PROMPTS_PER_CATEGORY * len(w.COMPBENCH_CATEGORIES)
