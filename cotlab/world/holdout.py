"""Hold-outs: what RL training never sees, named and graded, so that the domain gap is a knob (issue 19).

A `HoldOut` names what it holds out, read from a prompt's meaning (`PromptSpec`), never from its template, so one
hold-out works for both suites and for pretraining captions. A prompt *touches* a hold-out when it
* binds a held-out combination: a phrase naming both the shape and the colour (or texture) of a held-out
  (shape, value) pair, e.g. ("circle", "red") touches "a red circle" and "a round red thing", not "a red object and
  a circle" (nothing binds red to the circle);
* uses a held-out relation, in any wording ("above" is "above", "on the top of" and "on top of");
* asks for a held-out count with a numeral ("four squares"; "a square" asks for at least one, no count);
* or contains a held-out word (a token of its text).
Touching is all the suites use: `load_suite(..., holdout=...)` drops touching prompts from compbench's train and dev
splits, splits val into "val-seen" and "val-heldout", and gives geneval a held-out variant ("test-heldout") and the
rest ("test-seen"); see `cotlab.world.suites`.

The graded levels, `HOLDOUTS`:
* "L0": nothing held out, today's split: ID and OOD differ only in wording.
* "L1-20", "L1-50": held-out attribute combinations, 20% and 50% of the 50 shape x colour and of the 15 shape x
  texture combinations (10 + 3 and 25 + 8 of them; a dose is rounded half up). Per family, one permutation of its
  combinations drawn with `HOLDOUT_SEED`; a dose holds out its first k, so L1-20's combinations are a subset of
  L1-50's. The permutation is redrawn until the largest dose leaves every shape and every colour (texture) in some
  seen combination: the level holds out bindings, never a whole shape or colour.
* "L2-above-below", "L2-count-four": a held-out skill in RL only: the relations above and below, or the count four.
  The base model has seen them in its pretraining captions.
* "L3-above-below", "L3-count-four": the same skills held out of pretraining too (`pretraining=True`); the suites
  filter exactly as at L2, and the captions of such a base model must not touch the hold-out.

Meaning twins: an OOD prompt whose meaning (`meaning`: the multiset of its phrases' attributes and counts and its
relations, with "B right of A" read as "A left of B", "below" as "above" reversed, "smaller than" as "bigger than"
reversed, and the symmetric relations unordered) equals that of some ID prompt has a twin there: wording, prefixes,
synonyms and phrase order do not count. `twin_overlap` gives the share of twins per task.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .language import DETERMINERS, RELATIONS, Prompt, parse_prompt, tokenize, vocabulary
from .scene import COLOR_NAMES, SHAPES, TEXTURES

HOLDOUT_SEED = 0
COMBO_FAMILIES = {"color": COLOR_NAMES, "texture": TEXTURES}
L1_DOSES = {"L1-20": 0.2, "L1-50": 0.5}
INVERSE_RELATIONS = {"right of": "left of", "below": "above", "smaller than": "bigger than"}
SYMMETRIC_RELATIONS = ("same color as", "touching")


@dataclass(frozen=True)
class HoldOut:
    """What a hold-out keeps out of RL training (and, with `pretraining`, out of the base model's captions).
    Fields take any iterable and hold frozensets (so a hold-out is hashable: a cache key); a value outside
    ShapeWorld's shapes, colours, textures, relations, numerals or vocabulary raises ValueError."""

    name: str
    combos: frozenset[tuple[str, str]] = frozenset()  # (shape, colour or texture) bindings, e.g. ("circle", "red")
    relations: frozenset[str] = frozenset()  # relation kinds, e.g. "above"
    counts: frozenset[int] = frozenset()  # numerals, e.g. 4 ("four squares")
    words: frozenset[str] = frozenset()  # surface words (tokens), e.g. "photo"
    pretraining: bool = False  # held out of the pretraining captions too (L3)

    def __post_init__(self):
        for field_name, allowed in (("combos", {(s, v) for s in SHAPES for v in COLOR_NAMES + TEXTURES}),
                                    ("relations", set(RELATIONS)),
                                    ("counts", {n for n, _ in DETERMINERS.values()}),
                                    ("words", set(vocabulary()))):
            value = frozenset(getattr(self, field_name))
            unknown = value - allowed
            if unknown:
                raise ValueError(f"hold-out {self.name!r}: unknown {field_name} {sorted(unknown)!r}; "
                                 f"{field_name} are drawn from {sorted(allowed)!r}")
            object.__setattr__(self, field_name, value)

    @property
    def empty(self) -> bool:
        """True when nothing is held out (L0): no prompt touches it."""
        return not (self.combos or self.relations or self.counts or self.words)

    def touches(self, prompt: Prompt | str) -> bool:
        """Whether `prompt` (a suite's `Prompt`, or any text of ShapeWorld's language) names anything held out."""
        if self.empty:
            return False
        text, spec = (prompt, parse_prompt(prompt)) if isinstance(prompt, str) else (prompt.text, prompt.spec)
        if self.words and not self.words.isdisjoint(tokenize(text)):
            return True
        if any(r.kind in self.relations for r in spec.relations):
            return True
        return any((e.exact and e.count in self.counts)
                   or (e.shape is not None and not self.combos.isdisjoint({(e.shape, e.color), (e.shape, e.texture)}))
                   for e in spec.entities)


def dose_count(fraction: float, num_combos: int) -> int:
    """How many of `num_combos` combinations a dose holds out: `fraction` of them, rounded half up."""
    return int(fraction * num_combos + 0.5)


def _combo_orders() -> dict[str, list[tuple[str, str]]]:
    """Per family, its (shape, value) combinations in a seeded order whose prefix at the largest dose leaves every
    shape and every value in some combination outside it."""
    rng = np.random.default_rng(HOLDOUT_SEED)
    orders = {}
    for family, values in COMBO_FAMILIES.items():
        combos = [(s, v) for s in SHAPES for v in values]
        k = dose_count(max(L1_DOSES.values()), len(combos))
        while True:
            order = [combos[i] for i in rng.permutation(len(combos))]
            seen = set(combos) - set(order[:k])
            if {s for s, _ in seen} == set(SHAPES) and {v for _, v in seen} == set(values):
                break
        orders[family] = order
    return orders


def _registry() -> dict[str, HoldOut]:
    orders = _combo_orders()
    levels = [HoldOut("L0")]
    levels += [HoldOut(name, combos={c for order in orders.values() for c in order[:dose_count(dose, len(order))]})
               for name, dose in L1_DOSES.items()]
    skills = [HoldOut("L2-above-below", relations={"above", "below"}), HoldOut("L2-count-four", counts={4})]
    levels += skills + [replace(h, name="L3" + h.name[2:], pretraining=True) for h in skills]
    return {h.name: h for h in levels}


HOLDOUTS = _registry()


def check_holdout(holdout: str | HoldOut) -> HoldOut:
    """The hold-out a name stands for (a `HoldOut` passes through); an unknown name raises ValueError listing them."""
    if isinstance(holdout, HoldOut):
        return holdout
    if not isinstance(holdout, str) or holdout not in HOLDOUTS:
        raise ValueError(f"unknown hold-out {holdout!r}; the hold-outs are: {', '.join(HOLDOUTS)}")
    return HOLDOUTS[holdout]


# -- meaning twins ---------------------------------------------------------------------------------------------------

def meaning(prompt: Prompt | str) -> tuple:
    """A prompt's meaning, blind to wording and order: its phrases (attributes, count, exactness) as a sorted
    multiset, and its relations in one direction each (see the module docstring)."""
    spec = parse_prompt(prompt) if isinstance(prompt, str) else prompt.spec
    phrases = [(tuple(sorted(e.facts().items())), e.count, e.exact) for e in spec.entities]
    relations = []
    for r in spec.relations:
        kind, a, b = r.kind, phrases[r.subject], phrases[r.object]
        if kind in INVERSE_RELATIONS:
            kind, a, b = INVERSE_RELATIONS[kind], b, a
        elif kind in SYMMETRIC_RELATIONS:
            a, b = sorted((a, b))
        relations.append((kind, a, b))
    return tuple(sorted(phrases)), tuple(sorted(relations))


def meaning_twins(ood_prompts, id_prompts) -> list[bool]:
    """Per OOD prompt, whether some ID prompt means the same (`meaning`)."""
    id_meanings = {meaning(p) for p in id_prompts}
    return [meaning(p) in id_meanings for p in ood_prompts]


def twin_overlap(ood_prompts, id_prompts) -> dict[str, float]:
    """The share of OOD prompts with a meaning twin among `id_prompts`, per task (category) and "overall"."""
    ood_prompts = list(ood_prompts)
    if not ood_prompts:
        raise ValueError("twin_overlap needs at least one OOD prompt")
    twins = meaning_twins(ood_prompts, id_prompts)
    shares: dict[str, list[bool]] = {}
    for p, twin in zip(ood_prompts, twins):
        shares.setdefault(p.category, []).append(twin)
    return {**{task: float(np.mean(t)) for task, t in shares.items()}, "overall": float(np.mean(twins))}


__all__ = ["HOLDOUTS", "HOLDOUT_SEED", "HoldOut", "L1_DOSES", "check_holdout", "dose_count", "meaning",
           "meaning_twins", "twin_overlap"]
