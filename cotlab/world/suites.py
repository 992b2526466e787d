"""The two prompt suites: "compbench" (in-domain, T2I-CompBench style) and "geneval" (out-of-domain, GenEval style).

How they differ, as the real ones do:
* compbench: 7 categories x 1000 prompts (600 train / 100 dev / 300 val, split by seed). Descriptive phrasing with
  variation: shapes as nouns or as adjectives on a generic noun ("a round red object", CompBench's shape-attribute
  style), texture and size adjectives with synonyms, relations as "on the left of" / "on the top of" / "on the bottom
  of", non-spatial relations (bigger, smaller, the same colour, touching), multi-attribute complex prompts, numerals
  for several phrases at once, optional capitals and full stops.
* geneval: 553 prompts, tasks single_object 80, two_object 99, counting 80, colors 94, position 100, color_attr 100.
  One template per task, always "a photo of ...", shapes only as nouns, no textures or sizes, relations as
  "left of" / "above" / "below". Metadata carries GenEval's own `include` / `exclude` fields.

Splits. compbench: "train" is for RL, "dev" for every tuning choice, "val" for reported numbers (OOD is never used
for a choice). Each category's prompts are drawn, then permuted by seed: train takes the first `num_train`, dev the
next `num_dev`, val the last `num_val`. The defaults make the same 1,000 prompts per category, in the same order, as
the former 700 / 300 split, so val is the same 300 prompts as before dev existed and train + dev is the former train.
geneval: "test" (all 553). "all": every prompt of the suite.

Hold-outs (`cotlab.world.holdout`, `holdout=` a name of `HOLDOUTS` or a `HoldOut`; "L0", the default, holds nothing
out). Prompts that touch the hold-out are dropped from "train" and "dev"; "val" is split into "val-seen" (not
touching) and "val-heldout" (touching); geneval gets "test-seen" (the 553 that do not touch it) and "test-heldout", a
held-out variant of each task that can touch it: every touching prompt of the 553, topped up to at least
`HELDOUT_TEST_SIZE` (100) in all. The 100 are shared among those tasks in GenEval's proportions (largest remainders),
and a task short of its share gets more of its own touching prompts (its template, GenEval's metadata), each extra
one the least frequent touching prompt of the task so far, ties in an order seeded by `seed`. "val", "test" and
"all" do not depend on the hold-out. An empty split is an error, never an empty list: a held-out split of "L0", or a
split the hold-out empties.

Overlap (what a model trained on compbench has seen of geneval): colour binding of two objects (geneval's colors and
color_attr vs compbench's color), left/right relations between shapes (position vs spatial: same facts, different
words for above/below), and counting (counting vs numeracy). Skills only geneval stresses: bare single objects and
two-object co-occurrence without attributes, in its template. With ShapeWorld's 5 shapes and 10 colours, geneval's
small tasks repeat prompts (5 distinct single_object prompts fill 80 slots) as GenEval would with fewer classes.
`cotlab.world.holdout.twin_overlap` measures how many OOD prompts mean exactly what some ID prompt means.

Limits, checked before anything is generated: `seed` is a non-negative int, `num_train`, `num_dev` and `num_val`
positive ints (bools refused), and compbench makes at most `MAX_PROMPTS_PER_CATEGORY` (10,000) distinct prompts per
category (`num_train + num_dev + num_val`). Every category has several times more surface forms than that (in
100,000 draws the smallest, spatial, gave 30,107 distinct prompts, and 14,067 within 30,000 draws), so the cap is met
within about two draws per prompt, in about a second per category; the default (1,000) is a tenth of it.
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from numbers import Integral

import numpy as np

from .holdout import HOLDOUTS, HoldOut, check_holdout
from .language import (
    NONSPATIAL_RELATIONS, NUMBER_WORDS, SPATIAL_RELATIONS, Entity, Prompt, PromptSpec, Relation, phrase_text,
)
from .scene import COLOR_NAMES, SHAPES, SIZES, TEXTURES, as_rng

COMPBENCH_CATEGORIES = ("color", "shape", "texture", "spatial", "non_spatial", "complex", "numeracy")
GENEVAL_TASKS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                 "color_attr": 100}
SUITES = {"compbench": COMPBENCH_CATEGORIES, "geneval": tuple(GENEVAL_TASKS)}
SPLITS = {"compbench": ("train", "dev", "val", "val-seen", "val-heldout", "all"),
          "geneval": ("test", "test-seen", "test-heldout", "all")}
HELDOUT_SPLITS = ("val-heldout", "test-heldout")
MAX_PROMPTS_PER_CATEGORY = 10_000
HELDOUT_TEST_SIZE = 100

ID_RELATION_WORDS = {
    "left of": ("on the left of", "to the left of"), "right of": ("on the right of", "to the right of"),
    "above": ("on the top of",), "below": ("on the bottom of",),
    "bigger than": ("is bigger than", "is larger than"), "smaller than": ("is smaller than",),
    "same color as": ("has the same color as", "is the same color as"), "touching": ("is touching",),
}
SIZE_SYNONYMS = {"small": ("small", "tiny", "little"), "large": ("large", "big")}
TEXTURE_SYNONYMS = {"solid": ("solid", "plain"), "striped": ("striped",), "dotted": ("dotted", "spotted")}


def _pick(rng, options):
    return options[rng.integers(len(options))]


def _distinct(rng, options, k):
    return [options[i] for i in rng.choice(len(options), size=k, replace=False)]


def _id_phrase(rng, e: Entity, shape_adjective_prob: float = 0.3) -> str:
    """A CompBench-style noun phrase with synonyms for sizes and textures."""
    text = phrase_text(e, shape_as_adjective=e.shape is not None and rng.random() < shape_adjective_prob,
                       generic_noun=_pick(rng, ("object", "thing")))
    words = text.split()
    for k, w in enumerate(words):
        if e.size and w == e.size:
            words[k] = _pick(rng, SIZE_SYNONYMS[e.size])
        elif e.texture and w == e.texture:
            words[k] = _pick(rng, TEXTURE_SYNONYMS[e.texture])
    if words[0] in ("a", "an"):
        words[0] = "an" if words[1][0] in "aeiou" else "a"
    return " ".join(words)


def _join(rng, phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    if len(phrases) == 2:
        return f"{phrases[0]} {_pick(rng, ('and', 'and', 'with', 'together with'))} {phrases[1]}"
    return ", ".join(phrases[:-1]) + _pick(rng, (" and ", ", and ")) + phrases[-1]


def _style(rng, sentence: str) -> str:
    """CompBench mixes lower-case fragments with capitalised sentences ending in a full stop."""
    if rng.random() < 0.3:
        sentence = sentence[0].upper() + sentence[1:] + "."
    return sentence


def _entity(rng, shape=None, **named) -> Entity:
    return Entity(shape=shape or _pick(rng, SHAPES), **named)


def _binding(rng, attribute: str) -> tuple[PromptSpec, str]:
    """color / shape / texture: two or three objects, each binding `attribute` (shape: its size) to its shape."""
    n = 2 if rng.random() < 0.8 else 3
    shapes = _distinct(rng, SHAPES, n) if rng.random() < 0.7 else [_pick(rng, SHAPES) for _ in range(n)]
    entities = []
    for s in shapes:
        named = {}
        if attribute == "color":
            named["color"] = _pick(rng, COLOR_NAMES)
        elif attribute == "texture":
            named["texture"] = _pick(rng, TEXTURES)
        else:
            named["size"] = _pick(rng, SIZES)
        if attribute != "color" and rng.random() < 0.3:
            named["color"] = _pick(rng, COLOR_NAMES)
        entities.append(_entity(rng, s, **named))
    if len(set(entities)) < len(entities):
        return _binding(rng, attribute)
    adjective_prob = 0.7 if attribute == "shape" else 0.2
    text = _join(rng, [_id_phrase(rng, e, adjective_prob) for e in entities])
    if rng.random() < 0.15:
        text = ("there is " if text.split()[0] in ("a", "an") else "there are ") + text
    return PromptSpec(tuple(entities)), text


def _relational(rng, kind: str, extra_facts: int, attributes=("color", "texture", "size")) -> tuple[PromptSpec, str]:
    """Two objects and one relation; `extra_facts` of `attributes` besides the shape are named on each phrase
    (-1: none or one at random)."""
    shapes = [_pick(rng, SHAPES), _pick(rng, SHAPES)]
    # A phrase naming the attribute a relation compares could contradict it ("a small X bigger than ...").
    compared = {"bigger than": "size", "smaller than": "size", "same color as": "color"}.get(kind)
    attributes = [a for a in attributes if a != compared]
    entities = []
    for s in shapes:
        k = extra_facts if extra_facts >= 0 else int(rng.random() < 0.5)
        named = {a: _pick(rng, {"color": COLOR_NAMES, "texture": TEXTURES, "size": SIZES}[a])
                 for a in _distinct(rng, attributes, min(k, len(attributes)))}
        entities.append(_entity(rng, s, **named))
    if entities[0] == entities[1]:
        return _relational(rng, kind, extra_facts, attributes)
    text = f"{_id_phrase(rng, entities[0], 0.15)} {_pick(rng, ID_RELATION_WORDS[kind])} {_id_phrase(rng, entities[1], 0.15)}"
    return PromptSpec(tuple(entities), (Relation(kind, 0, 1),)), text


def _complex(rng) -> tuple[PromptSpec, str]:
    kind = _pick(rng, SPATIAL_RELATIONS + NONSPATIAL_RELATIONS)
    spec, text = _relational(rng, kind, extra_facts=2)
    if rng.random() < 0.35:  # a third object joined to the relation's sentence
        third = _entity(rng, color=_pick(rng, COLOR_NAMES), texture=_pick(rng, TEXTURES))
        if third in spec.entities:
            return _complex(rng)
        spec = PromptSpec(spec.entities + (third,), spec.relations)
        text = f"{text} and {_id_phrase(rng, third, 0.15)}"
    return spec, text


def _numeracy(rng) -> tuple[PromptSpec, str]:
    n = _pick(rng, (1, 1, 2, 2, 3))
    shapes = _distinct(rng, SHAPES, n)
    counts = [int(rng.integers(1, 5)) for _ in shapes]
    if max(counts) < 2:
        counts[0] = int(rng.integers(2, 5))
    if sum(counts) > 8:
        return _numeracy(rng)
    entities = [Entity(shape=s, count=c, exact=True, color=_pick(rng, COLOR_NAMES) if rng.random() < 0.35 else None)
                for s, c in zip(shapes, counts)]
    text = _join(rng, [_id_phrase(rng, e, 0.15) for e in entities])
    if rng.random() < 0.2:
        text = "there are " + text
    return PromptSpec(tuple(entities)), text


def _compbench_prompt(rng, category: str) -> tuple[PromptSpec, str]:
    if category in ("color", "shape", "texture"):
        spec, text = _binding(rng, category)
    elif category == "spatial":
        # CompBench's spatial prompts name bare objects; ours name at most a colour per object.
        spec, text = _relational(rng, _pick(rng, SPATIAL_RELATIONS), extra_facts=-1, attributes=("color",))
    elif category == "non_spatial":
        spec, text = _relational(rng, _pick(rng, NONSPATIAL_RELATIONS), extra_facts=-1)
    elif category == "complex":
        spec, text = _complex(rng)
    else:
        spec, text = _numeracy(rng)
    return spec, _style(rng, text)


def _geneval_prompt(task: str, choice) -> Prompt:
    """GenEval's template for a task, with its `include` / `exclude` metadata."""
    if task == "single_object":
        (s,) = choice
        spec = PromptSpec((Entity(shape=s),))
        include, exclude = [{"class": s, "count": 1}], []
    elif task == "two_object":
        s1, s2 = choice
        spec = PromptSpec((Entity(shape=s1), Entity(shape=s2)))
        include, exclude = [{"class": s1, "count": 1}, {"class": s2, "count": 1}], []
    elif task == "counting":
        s, n = choice
        spec = PromptSpec((Entity(shape=s, count=n, exact=True),))
        include, exclude = [{"class": s, "count": n}], [{"class": s, "count": n + 1}]
    elif task == "colors":
        s, c = choice
        spec = PromptSpec((Entity(shape=s, color=c),))
        include, exclude = [{"class": s, "count": 1, "color": c}], []
    elif task == "position":
        s1, rel, s2 = choice
        spec = PromptSpec((Entity(shape=s1), Entity(shape=s2)), (Relation(rel, 0, 1),))
        include, exclude = [{"class": s2, "count": 1}, {"class": s1, "count": 1, "position": [rel, 0]}], []
    else:  # color_attr
        c1, s1, c2, s2 = choice
        spec = PromptSpec((Entity(shape=s1, color=c1), Entity(shape=s2, color=c2)))
        include = [{"class": s1, "count": 1, "color": c1}, {"class": s2, "count": 1, "color": c2}]
        exclude = []
    if task == "counting":
        body = f"{NUMBER_WORDS[choice[1]]} {phrase_text(spec.entities[0]).split(' ', 1)[1]}"
    elif task == "position":
        body = f"{phrase_text(spec.entities[0])} {spec.relations[0].kind} {phrase_text(spec.entities[1])}"
    else:
        body = " and ".join(phrase_text(e) for e in spec.entities)
    meta = {"tag": task, "include": include}
    if exclude:
        meta["exclude"] = exclude
    return Prompt(f"a photo of {body}", task, {**spec.to_meta(), **meta}, "geneval")


def _geneval_choices(task: str) -> list[tuple]:
    if task == "single_object":
        return [(s,) for s in SHAPES]
    if task == "two_object":
        return [(a, b) for i, a in enumerate(SHAPES) for b in SHAPES[i + 1:]]
    if task == "counting":
        return [(s, n) for s in SHAPES for n in (2, 3, 4)]
    if task == "colors":
        return [(s, c) for s in SHAPES for c in COLOR_NAMES]
    if task == "position":
        return [(a, r, b) for a in SHAPES for b in SHAPES if a != b for r in SPATIAL_RELATIONS]
    return [(c1, a, c2, b) for a in SHAPES for b in SHAPES if a != b for c1 in COLOR_NAMES for c2 in COLOR_NAMES
            if c1 != c2]


@lru_cache(maxsize=16)
def _build(name: str, seed: int, num_train: int, num_dev: int, num_val: int) -> dict[str, tuple[Prompt, ...]]:
    """The splits that do not depend on a hold-out."""
    rng = as_rng(np.random.default_rng([seed, sum(map(ord, name))]))
    if name == "geneval":
        prompts = []
        for task, n in GENEVAL_TASKS.items():
            choices = _geneval_choices(task)
            # Balanced: every distinct prompt once before any repeats, in a seeded order.
            picks = []
            while len(picks) < n:
                picks += [choices[i] for i in rng.permutation(len(choices))]
            prompts += [_geneval_prompt(task, choice) for choice in picks[:n]]
        prompts = tuple(prompts)
        return {"test": prompts, "all": prompts}
    splits = {"train": [], "dev": [], "val": []}
    total = num_train + num_dev + num_val
    for category in COMPBENCH_CATEGORIES:
        seen, made = set(), []
        attempts = 0
        while len(made) < total:
            attempts += 1
            if attempts > 50 * total:
                raise RuntimeError(f"could not make {total} distinct {category} prompts")
            spec, text = _compbench_prompt(rng, category)
            key = text.lower().rstrip(".")
            if key in seen:
                continue
            seen.add(key)
            made.append(Prompt(text, category, {"category": category, **spec.to_meta()}, "compbench"))
        order = rng.permutation(total)
        splits["train"] += [made[i] for i in order[:num_train]]
        splits["dev"] += [made[i] for i in order[num_train:num_train + num_dev]]
        splits["val"] += [made[i] for i in order[num_train + num_dev:]]
    splits = {k: tuple(v) for k, v in splits.items()}
    return {**splits, "all": splits["train"] + splits["dev"] + splits["val"]}


def _apportion(total: int, weights: dict[str, int]) -> dict[str, int]:
    """`total` shared in proportion to `weights` by largest remainders (ties to the first key)."""
    exact = {k: total * w / sum(weights.values()) for k, w in weights.items()}
    shares = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: shares[k] - exact[k])[:total - sum(shares.values())]:
        shares[k] += 1
    return shares


def _top_up(rng, pool: list[Prompt], have: list[Prompt], n: int) -> list[Prompt]:
    """`n` more prompts of `pool`, each the least frequent so far in `have` and the picks (ties in a seeded order)."""
    counts = Counter(p.text for p in have)
    order = [pool[i] for i in rng.permutation(len(pool))] if n > 0 else []
    picks = []
    for _ in range(n):
        pick = min(order, key=lambda p: counts[p.text])
        counts[pick.text] += 1
        picks.append(pick)
    return picks


def _geneval_heldout(test: tuple[Prompt, ...], holdout: HoldOut, seed: int) -> tuple[Prompt, ...]:
    """Every prompt of `test` touching `holdout`, each task topped up to its share of `HELDOUT_TEST_SIZE`."""
    rng = np.random.default_rng([seed, sum(map(ord, "geneval-heldout"))])
    pools = {task: [p for p in (_geneval_prompt(task, c) for c in _geneval_choices(task)) if holdout.touches(p)]
             for task in GENEVAL_TASKS}
    pools = {task: pool for task, pool in pools.items() if pool}
    if not pools:
        return ()
    shares = _apportion(HELDOUT_TEST_SIZE, {task: GENEVAL_TASKS[task] for task in pools})
    out = []
    for task, share in shares.items():
        touching = [p for p in test if p.category == task and holdout.touches(p)]
        out += touching + _top_up(rng, pools[task], touching, share - len(touching))
    return tuple(out)


@lru_cache(maxsize=32)
def _splits(name: str, seed: int, num_train: int, num_dev: int, num_val: int,
            holdout: HoldOut) -> dict[str, tuple[Prompt, ...]]:
    """Every split of a suite under a hold-out."""
    def part(prompts, touching=False):
        return tuple(p for p in prompts if holdout.touches(p) == touching)

    base = _build(name, seed, num_train, num_dev, num_val)
    if name == "geneval":
        return {**base, "test-seen": part(base["test"]), "test-heldout": _geneval_heldout(base["test"], holdout, seed)}
    return {**base, "train": part(base["train"]), "dev": part(base["dev"]), "val-seen": part(base["val"]),
            "val-heldout": part(base["val"], touching=True)}


def _check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int if it is an integer (not a bool) of at least ``minimum``; else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be {'non-negative' if minimum == 0 else f'at least {minimum}'}, got {value}")
    return int(value)


def check_sizes(seed, num_train, num_dev, num_val) -> tuple[int, int, int, int]:
    """Validate `load_suite`'s seed and counts (see the module docstring) before generating anything."""
    seed = _check_int("seed", seed, 0)
    num_train, num_dev, num_val = (_check_int(name, value, 1) for name, value in
                                   (("num_train", num_train), ("num_dev", num_dev), ("num_val", num_val)))
    total = num_train + num_dev + num_val
    if total > MAX_PROMPTS_PER_CATEGORY:
        raise ValueError(f"num_train + num_dev + num_val = {total} distinct prompts per category is more than "
                         f"compbench makes (MAX_PROMPTS_PER_CATEGORY = {MAX_PROMPTS_PER_CATEGORY}); lower num_train, "
                         f"num_dev or num_val")
    return seed, num_train, num_dev, num_val


def load_suite(name: str, split: str | None = None, *, seed: int = 0, num_train: int = 600, num_dev: int = 100,
               num_val: int = 300, holdout: str | HoldOut = "L0") -> list[Prompt]:
    """The prompts of a suite. compbench: split "train" (default, for RL), "dev" (for tuning), "val" (reported),
    "val-seen", "val-heldout" or "all"; geneval: "test" (default), "test-seen", "test-heldout" or "all".
    Fixed by `seed`; the same arguments always give the same prompts. `num_train` / `num_dev` / `num_val`: compbench
    prompts per category in each split before a hold-out filters them (geneval has its fixed 553); limits in the
    module docstring. `holdout`: a name of `cotlab.world.HOLDOUTS` or a `HoldOut`; what it does to each split is in
    the module docstring. A split that comes out empty raises ValueError."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; the suites are: {', '.join(SUITES)}")
    split = split or SPLITS[name][0]
    if split not in SPLITS[name]:
        raise ValueError(f"unknown split {split!r} for suite {name!r}; its splits are: {', '.join(SPLITS[name])}")
    holdout = check_holdout(holdout)
    if holdout.empty and split in HELDOUT_SPLITS:
        raise _empty_split(name, split, holdout)
    seed, num_train, num_dev, num_val = check_sizes(seed, num_train, num_dev, num_val)
    prompts = _splits(name, seed, num_train, num_dev, num_val, holdout)[split]
    if not prompts:
        raise _empty_split(name, split, holdout)
    return list(prompts)


def examples_per_category(prompts, k: int, rng) -> list[Prompt]:
    """`k` prompts of each category of `prompts`, drawn at random without replacement by `rng` (a numpy Generator),
    category by category in the order the categories first appear; the book's "a few prompts of every category"."""
    picked = []
    for category in dict.fromkeys(p.category for p in prompts):
        group = [p for p in prompts if p.category == category]
        if k > len(group):
            raise ValueError(f"category {category!r} has {len(group)} prompts, fewer than the {k} asked for")
        picked += [group[i] for i in rng.choice(len(group), size=k, replace=False)]
    return picked


def evenly_spaced(prompts, n: int) -> list:
    """`n` of `prompts` at evenly spaced positions, first and last included, in order (all of them when there are
    fewer): on a suite, which lists its prompts category by category, a spread across its categories."""
    prompts = list(prompts)
    return [prompts[i] for i in np.linspace(0, len(prompts) - 1, min(n, len(prompts))).astype(int)]


def _empty_split(name: str, split: str, holdout: HoldOut) -> ValueError:
    if split not in HELDOUT_SPLITS:
        return ValueError(f"hold-out {holdout.name!r} touches every prompt of {name}'s {split!r}, leaving it empty; "
                          f"hold out less")
    why = "it holds nothing out" if holdout.empty else f"no prompt of {name} touches it"
    return ValueError(f"{name}'s {split!r} is empty under hold-out {holdout.name!r} ({why}); ask for "
                      f"{split.split('-')[0]!r}, or name a hold-out that holds something out: "
                      f"{', '.join(n for n, h in HOLDOUTS.items() if not h.empty)}")
