"""The two prompt suites: "compbench" (in-domain, T2I-CompBench style) and "geneval" (out-of-domain, GenEval style).

How they differ, as the real ones do:
* compbench: 7 categories x 1000 prompts (700 train / 300 val, split by seed). Descriptive phrasing with variation:
  shapes as nouns or as adjectives on a generic noun ("a round red object", CompBench's shape-attribute style),
  texture and size adjectives with synonyms, relations as "on the left of" / "on the top of" / "on the bottom of",
  non-spatial relations (bigger, smaller, the same colour, touching), multi-attribute complex prompts, numerals
  for several phrases at once, optional capitals and full stops.
* geneval: 553 prompts, tasks single_object 80, two_object 99, counting 80, colors 94, position 100, color_attr 100.
  One template per task, always "a photo of ...", shapes only as nouns, no textures or sizes, relations as
  "left of" / "above" / "below". Metadata carries GenEval's own `include` / `exclude` fields.

Overlap (what a model trained on compbench has seen of geneval): colour binding of two objects (geneval's colors and
color_attr vs compbench's color), left/right relations between shapes (position vs spatial: same facts, different
words for above/below), and counting (counting vs numeracy). Skills only geneval stresses: bare single objects and
two-object co-occurrence without attributes, in its template. With ShapeWorld's 5 shapes and 10 colours, geneval's
small tasks repeat prompts (5 distinct single_object prompts fill 80 slots) as GenEval would with fewer classes.

Limits, checked before anything is generated: `seed` is a non-negative int, `num_train` and `num_val` positive ints
(bools refused), and compbench makes at most `MAX_PROMPTS_PER_CATEGORY` (10,000) distinct prompts per category
(`num_train + num_val`). Every category has several times more surface forms than that (in 100,000 draws the
smallest, spatial, gave 30,107 distinct prompts, and 14,067 within 30,000 draws), so the cap is met within about
two draws per prompt, in about a second per category; the default (1,000) is a tenth of it.
"""
from __future__ import annotations

from functools import lru_cache
from numbers import Integral

import numpy as np

from .language import (
    NONSPATIAL_RELATIONS, NUMBER_WORDS, SPATIAL_RELATIONS, Entity, Prompt, PromptSpec, Relation, phrase_text,
)
from .scene import COLOR_NAMES, SHAPES, SIZES, TEXTURES, as_rng

COMPBENCH_CATEGORIES = ("color", "shape", "texture", "spatial", "non_spatial", "complex", "numeracy")
GENEVAL_TASKS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                 "color_attr": 100}
SUITES = {"compbench": COMPBENCH_CATEGORIES, "geneval": tuple(GENEVAL_TASKS)}
SPLITS = {"compbench": ("train", "val", "all"), "geneval": ("test", "all")}
MAX_PROMPTS_PER_CATEGORY = 10_000

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


def _geneval_prompt(task: str, choice) -> tuple[PromptSpec, str, dict]:
    """GenEval's template for a task, and its `include` / `exclude` metadata."""
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
    return spec, f"a photo of {body}", meta


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
def _build(name: str, seed: int, num_train: int, num_val: int) -> dict[str, tuple[Prompt, ...]]:
    rng = as_rng(np.random.default_rng([seed, sum(map(ord, name))]))
    if name == "geneval":
        prompts = []
        for task, n in GENEVAL_TASKS.items():
            choices = _geneval_choices(task)
            # Balanced: every distinct prompt once before any repeats, in a seeded order.
            picks = []
            while len(picks) < n:
                picks += [choices[i] for i in rng.permutation(len(choices))]
            for choice in picks[:n]:
                spec, text, meta = _geneval_prompt(task, choice)
                prompts.append(Prompt(text, task, {**spec.to_meta(), **meta}, "geneval"))
        prompts = tuple(prompts)
        return {"test": prompts, "all": prompts}
    train, val = [], []
    for category in COMPBENCH_CATEGORIES:
        seen, made = set(), []
        attempts = 0
        while len(made) < num_train + num_val:
            attempts += 1
            if attempts > 50 * (num_train + num_val):
                raise RuntimeError(f"could not make {num_train + num_val} distinct {category} prompts")
            spec, text = _compbench_prompt(rng, category)
            key = text.lower().rstrip(".")
            if key in seen:
                continue
            seen.add(key)
            made.append(Prompt(text, category, {"category": category, **spec.to_meta()}, "compbench"))
        order = rng.permutation(len(made))
        train += [made[i] for i in order[:num_train]]
        val += [made[i] for i in order[num_train:]]
    return {"train": tuple(train), "val": tuple(val), "all": tuple(train + val)}


def _check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int if it is an integer (not a bool) of at least ``minimum``; else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be {'non-negative' if minimum == 0 else f'at least {minimum}'}, got {value}")
    return int(value)


def check_sizes(seed, num_train, num_val) -> tuple[int, int, int]:
    """Validate `load_suite`'s seed and counts (see the module docstring) before generating anything."""
    seed = _check_int("seed", seed, 0)
    num_train, num_val = _check_int("num_train", num_train, 1), _check_int("num_val", num_val, 1)
    if num_train + num_val > MAX_PROMPTS_PER_CATEGORY:
        raise ValueError(f"num_train + num_val = {num_train + num_val} distinct prompts per category is more than "
                         f"compbench makes (MAX_PROMPTS_PER_CATEGORY = {MAX_PROMPTS_PER_CATEGORY}); lower num_train "
                         f"or num_val")
    return seed, num_train, num_val


def load_suite(name: str, split: str | None = None, *, seed: int = 0, num_train: int = 700,
               num_val: int = 300) -> list[Prompt]:
    """The prompts of a suite. compbench: split "train" (default), "val" or "all"; geneval: "test" (default) or "all".
    Fixed by `seed`; the same arguments always give the same prompts. `num_train` / `num_val`: compbench prompts per
    category in each split (geneval has its fixed 553); limits in the module docstring."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; the suites are: {', '.join(SUITES)}")
    split = split or SPLITS[name][0]
    if split not in SPLITS[name]:
        raise ValueError(f"unknown split {split!r} for suite {name!r}; its splits are: {', '.join(SPLITS[name])}")
    seed, num_train, num_val = check_sizes(seed, num_train, num_val)
    return list(_build(name, seed, num_train, num_val)[split])
