"""The exact scorer: what an image shows (parsed from pixels) against what a prompt says (its `PromptSpec`).

Two readings of every prompt, as the two real benchmarks define them, with an exact detector in place of theirs:

* `.correct`, GenEval-style and binary: some assignment of distinct objects to the prompt's phrases matches every
  named attribute, every numeral is an exact count ("two circles": include 2, exclude 3), and every relation holds.
  Positions use GenEval's rule: the offset of box centres, shrunk by 0.1 x (sum of box sizes), must point mostly
  left / right / up / down. Where GenEval checks its single most confident detection, an exact parser has no
  confidences, so any matching object may witness a phrase.
* `.value`, CompBench-style and continuous in [0, 1], by the prompt's structure (`metric_family`):
  - binding (colour / shape / texture): product over phrases of the phrase credit, the fraction of the phrase's
    facts its object satisfies (BLIP-VQA multiplies P(yes) over noun phrases);
  - spatial: 0.25 c1 + 0.25 c2 + 0.5 [relation holds], set to 0 below 0.5 (T2I-CompBench's detector score);
  - non_spatial: mean of c1, c2 and [relation holds] (a graded stand-in for CLIPScore);
  - complex: mean of the binding score and the mean relation score (CompBench's 3-in-1 averages its metrics);
  - numeracy: mean over phrases of [count exact] (or the phrase credit for an "a" phrase).
  The value is the best over assignments of objects to phrases. `.correct` implies `.value == 1`.
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .language import SPATIAL_RELATIONS, Entity, Prompt, PromptError, PromptSpec, Relation, excerpt, parse_prompt
from .render import read_patch_batch
from .scene import COLOR_NAMES, GRID, SHAPES, SIZES, TEXTURES, Obj, Scene, as_rng, free_anchors

POSITION_THRESHOLD = 0.1  # GenEval's margin
MAX_CANDIDATES = 8  # objects considered per phrase for partial credit, best credit first


@dataclass(frozen=True)
class Score:
    value: float  # CompBench-style, in [0, 1]
    correct: bool  # GenEval-style verdict
    family: str  # which CompBench-style formula gave `value`
    scene: Scene  # what the parser saw


def as_spec(prompt) -> PromptSpec:
    if isinstance(prompt, PromptSpec):
        return prompt
    if isinstance(prompt, Prompt):
        return prompt.spec
    if isinstance(prompt, str):
        return _parsed(prompt)
    raise TypeError(f"expected a Prompt, a prompt string or a PromptSpec, got {type(prompt).__name__}")


@lru_cache(maxsize=4096)  # rewards score G images per prompt; a PromptSpec is immutable
def _parsed(text: str) -> PromptSpec:
    return parse_prompt(text)


def box_relations(box_a, box_b, margin: float = POSITION_THRESHOLD) -> frozenset[str]:
    """GenEval's `relative_position` (evaluation/evaluate_images.py), the one copy that the exact scorer and the
    GenEval scorer (`cotlab.evaluation.geneval`) share: the relations of box A to box B (x1, y1, x2, y2; anything
    after the fourth entry is ignored) among "left of", "right of", "above", "below" (image y grows downwards). The
    centre offset is shrunk per axis by `margin` x (size_A + size_B) towards 0; no relation if both shrunk components
    are below 1e-3; else (dx, dy) = shrunk offset / |offset| and a relation per component beyond +-0.5."""
    boxes = np.array([box_a[:4], box_b[:4]], dtype=np.float64).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - margin * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return frozenset()
    dx, dy = revised / np.linalg.norm(offset)
    out = set()
    if dx < -0.5:
        out.add("left of")
    if dx > 0.5:
        out.add("right of")
    if dy < -0.5:
        out.add("above")
    if dy > 0.5:
        out.add("below")
    return frozenset(out)


def relative_position(a: Obj, b: Obj) -> set[str]:
    """GenEval's `relative_position` of two objects: `box_relations` of their boxes."""
    return set(_grid_relations(a.box, b.box))


@lru_cache(maxsize=None)  # boxes lie on the grid: at most (2 sizes x 64 cells)^2 pairs
def _grid_relations(box_a: tuple, box_b: tuple) -> frozenset[str]:
    return box_relations(box_a, box_b)


def touching(a: Obj, b: Obj) -> bool:
    """Footprints that share an edge or a corner of a patch (and no patch)."""
    if a.cells & b.cells:
        return False
    return any(abs(r1 - r2) <= 1 and abs(c1 - c2) <= 1 for r1, c1 in a.cells for r2, c2 in b.cells)


def relation_holds(kind: str, a: Obj, b: Obj) -> bool:
    if kind in SPATIAL_RELATIONS:
        return kind in _grid_relations(a.box, b.box)
    if kind == "bigger than":
        return a.size == "large" and b.size == "small"
    if kind == "smaller than":
        return a.size == "small" and b.size == "large"
    if kind == "same color as":
        return a.color == b.color
    if kind == "touching":
        return touching(a, b)
    raise ValueError(f"unknown relation {kind!r}")


def metric_family(spec: PromptSpec) -> str:
    """Which CompBench-style formula scores this prompt (see the module docstring)."""
    if spec.relations:
        if len(spec.relations) > 1 or len(spec.entities) > 2 or any(len(e.facts()) > 2 for e in spec.entities):
            return "complex"
        return "spatial" if spec.relations[0].kind in SPATIAL_RELATIONS else "non_spatial"
    if any(e.exact for e in spec.entities):
        return "numeracy"
    return "binding"


def _relation_score(kind: str, c1: float, c2: float, holds: bool) -> float:
    if kind in SPATIAL_RELATIONS:
        value = 0.25 * c1 + 0.25 * c2 + 0.5 * holds
        return value if value >= 0.5 else 0.0
    return (c1 + c2 + holds) / 3


def score_scene(prompt, scene: Scene) -> Score:
    """Score a scene (ground truth or parsed) against a prompt."""
    return _score_scene(as_spec(prompt), scene)


@lru_cache(maxsize=4096)  # a policy that has learnt a prompt draws the same scenes for it again and again
def _score_scene(spec: PromptSpec, scene: Scene) -> Score:
    objects = scene.objects
    family = metric_family(spec)
    # Per phrase and object, computed once: the credit (as `Entity.credit`) and whether every named fact holds.
    credit, match = [], []
    for e in spec.entities:
        facts = tuple(e.facts().items())
        hits = [sum(getattr(o, k) == v for k, v in facts) for o in objects]
        credit.append([h / len(facts) if facts else 1.0 for h in hits])
        match.append([h == len(facts) for h in hits])
    holds = {}

    def related(kind: str, j: int, k: int) -> bool:
        if (kind, j, k) not in holds:
            holds[kind, j, k] = relation_holds(kind, objects[j], objects[k])
        return holds[kind, j, k]

    counts = [sum(m) for m in match]
    count_ok = [not e.exact or n == e.count for e, n in zip(spec.entities, counts)]
    singles = [i for i, e in enumerate(spec.entities) if e.count == 1]

    # Binary verdict: full matches only.
    full = {i: [j for j, m in enumerate(match[i]) if m] for i in singles}
    correct = all(count_ok) and any(
        all(related(r.kind, chosen[r.subject], chosen[r.object]) for r in spec.relations)
        for chosen in (dict(zip(singles, pick)) for pick in _injective(singles, full))
    )

    # Continuous value: best over assignments with partial credit.
    candidates = {}
    for i in singles:
        ranked = [j for c, j in sorted(zip(credit[i], range(len(objects))), key=lambda t: -t[0]) if c > 0]
        candidates[i] = [*ranked[:MAX_CANDIDATES], None]
    best = 0.0
    for pick in _injective(singles, candidates):
        chosen = dict(zip(singles, pick))
        best = max(best, _value(spec, family, credit, related, chosen, count_ok))
        if best >= 1.0:
            break
    if correct:  # the verdict's assignment scores 1 under every family; the search above may stop short of it
        best = 1.0
    return Score(float(best), bool(correct), family, scene)


def _injective(keys, options):
    """Assignments of one option per key with no object used twice (None may repeat)."""
    for pick in itertools.product(*(options[k] for k in keys)):
        used = [p for p in pick if p is not None]
        if len(used) == len(set(used)):
            yield pick


def _value(spec: PromptSpec, family: str, credit: list, related, chosen: dict, count_ok: list[bool]) -> float:
    """The CompBench-style value of one assignment `chosen` (phrase -> object index or None); `credit[i][j]` is
    phrase i's credit on object j and `related(kind, j, k)` whether a relation holds between objects j and k."""
    def phrase_score(i: int) -> float:
        if spec.entities[i].exact:
            return float(count_ok[i])
        j = chosen.get(i)
        return 0.0 if j is None else credit[i][j]

    def relation_score(r: Relation) -> float:
        j, k = chosen.get(r.subject), chosen.get(r.object)
        holds = j is not None and k is not None and related(r.kind, j, k)
        return _relation_score(r.kind, phrase_score(r.subject), phrase_score(r.object), holds)

    if family in ("spatial", "non_spatial"):
        return relation_score(spec.relations[0])
    phrases = tuple(phrase_score(i) for i in range(len(spec.entities)))
    if family == "binding":
        return _prod(phrases)
    if family == "numeracy":
        return _mean(phrases)
    return (_prod(phrases) + _mean(tuple(relation_score(r) for r in spec.relations))) / 2


# numpy's product and mean of a few credits, memoised: the search above asks for the same few tuples thousands of times
@lru_cache(maxsize=None)
def _prod(values: tuple[float, ...]) -> float:
    return float(np.prod(values))


@lru_cache(maxsize=None)
def _mean(values: tuple[float, ...]) -> float:
    return float(np.mean(values))


def score(prompt, image) -> Score:
    """Score one image against one prompt (a suite `Prompt` or any prompt string of ShapeWorld's language)."""
    return score_batch([prompt], [image])[0]


def score_batch(prompts, images) -> list[Score]:
    """Score images against prompts pairwise; images are parsed in one vectorised pass."""
    prompts, images = list(prompts), list(images)
    if len(prompts) != len(images):
        raise ValueError(f"got {len(prompts)} prompts and {len(images)} images; score pairs them one to one")
    if not images:
        return []
    specs = [as_spec(p) for p in prompts]
    readings = read_patch_batch(images)
    return [score_scene(spec, reading.scene) for spec, reading in zip(specs, readings)]


def satisfies(prompt, scene: Scene) -> bool:
    return score_scene(prompt, scene).correct


# -- ground truth: scenes made for a prompt, and scenes changed in one fact -----------------------------------------

def _random_attrs(entity: Entity, rng) -> dict:
    return {
        "shape": entity.shape or SHAPES[rng.integers(len(SHAPES))],
        "color": entity.color or COLOR_NAMES[rng.integers(len(COLOR_NAMES))],
        "texture": entity.texture or TEXTURES[rng.integers(len(TEXTURES))],
        "size": entity.size or SIZES[rng.integers(len(SIZES))],
    }


def _constrain(spec: PromptSpec, attrs: list[dict]) -> bool:
    """Make attribute-level relations true where the prompt leaves room; False if it cannot."""
    for r in spec.relations:
        a, b = attrs[r.subject], attrs[r.object]
        ea, eb = spec.entities[r.subject], spec.entities[r.object]
        if r.kind in ("bigger than", "smaller than"):
            big, small = (a, b) if r.kind == "bigger than" else (b, a)
            e_big, e_small = (ea, eb) if r.kind == "bigger than" else (eb, ea)
            if e_big.size == "small" or e_small.size == "large":
                return False
            big["size"], small["size"] = "large", "small"
        elif r.kind == "same color as":
            if ea.color and eb.color and ea.color != eb.color:
                return False
            colour = ea.color or eb.color or a["color"]
            a["color"] = b["color"] = colour
    return True


def scene_for(prompt, rng, *, distractor_prob: float = 0.5, max_distractors: int = 2,
              max_tries: int = 400) -> Scene:
    """A random scene that satisfies the prompt: its named facts kept, everything else random, plus (with
    `distractor_prob`) up to `max_distractors` extra objects that match none of its phrases. Each object made for a
    phrase matches only that phrase when the prompt allows it, so changing one named fact breaks the prompt."""
    spec = as_spec(prompt)
    rng = as_rng(rng)
    fallback = None
    for attempt in range(max_tries):
        drawn = _draw_scene(spec, rng, distractor_prob, max_distractors)
        if drawn is None:
            continue
        scene, owners = drawn
        if not satisfies(spec, scene):
            continue
        if _uniquely_witnessed(spec, scene, owners):
            return scene
        fallback = fallback or scene
        if attempt >= max_tries // 2 and fallback is not None:
            return fallback
    if fallback is not None:
        return fallback
    text = prompt.text if isinstance(prompt, Prompt) else prompt
    raise PromptError(f"no scene satisfies {excerpt(str(text))} (contradictory facts, or more objects than the grid "
                      f"holds)")


def _uniquely_witnessed(spec: PromptSpec, scene: Scene, owners: list[int | None]) -> bool:
    """No object matches a phrase it was not made for, unless its own phrase implies that one ("a red circle" is
    always "a circle"); distractors (owner None) match no phrase."""
    def implied(i: int, j: int | None) -> bool:
        return j is not None and spec.entities[i].facts().items() <= spec.entities[j].facts().items()

    return all(not e.matches(o) or i == j or implied(i, j)
               for o, j in zip(scene.objects, owners) for i, e in enumerate(spec.entities))


def _draw_scene(spec: PromptSpec, rng, distractor_prob: float, max_distractors: int):
    """A candidate scene and, per object, the index of the phrase it was made for (None: a distractor)."""
    owners, attrs = [], []
    for i, e in enumerate(spec.entities):
        for _ in range(e.count):
            owners.append(i)
            attrs.append(_random_attrs(e, rng))
    first = {i: owners.index(i) for i in range(len(spec.entities))}
    single_attrs = [attrs[first[i]] for i in range(len(spec.entities))]
    if not _constrain(spec, single_attrs):
        return None
    # Place related objects after their partners so that the relation can be chosen among free anchors.
    placed: dict[int, Obj] = {}
    occupied: set = set()
    order = sorted(range(len(attrs)), key=lambda k: any(r.object == owners[k] for r in spec.relations))
    for k in order:
        anchors = free_anchors(occupied, attrs[k]["size"])
        for r in spec.relations:
            if owners[k] == r.object and first[r.subject] in placed and k == first[r.object]:
                partner = placed[first[r.subject]]
                anchors = [(row, col) for row, col in anchors
                           if relation_holds(r.kind, partner, Obj(**attrs[k], row=row, col=col))]
            elif owners[k] == r.subject and first[r.object] in placed and k == first[r.subject]:
                partner = placed[first[r.object]]
                anchors = [(row, col) for row, col in anchors
                           if relation_holds(r.kind, Obj(**attrs[k], row=row, col=col), partner)]
        if not anchors:
            return None
        row, col = anchors[rng.integers(len(anchors))]
        placed[k] = Obj(**attrs[k], row=int(row), col=int(col))
        occupied |= placed[k].cells
    objects = [placed[k] for k in range(len(attrs))]
    owners = list(owners)
    if rng.random() < distractor_prob:
        for _ in range(int(rng.integers(1, max_distractors + 1))):
            extra = _random_attrs(Entity(), rng)
            anchors = free_anchors(occupied, extra["size"])
            if not anchors or any(e.matches(Obj(**extra, row=0, col=0)) for e in spec.entities):
                continue
            row, col = anchors[rng.integers(len(anchors))]
            objects.append(Obj(**extra, row=int(row), col=int(col)))
            owners.append(None)
            occupied |= objects[-1].cells
    order = rng.permutation(len(objects))
    return Scene(tuple(objects[i] for i in order)), [owners[i] for i in order]


FACTS = ("color", "shape", "texture", "size", "count", "side", "relation")


def facts_named(prompt) -> tuple[str, ...]:
    """The kinds of fact a prompt names, i.e. the changes `perturb` can make to break it."""
    spec = as_spec(prompt)
    kinds = {k for e in spec.entities for k in e.facts()} | {"count"}
    if any(r.kind in SPATIAL_RELATIONS for r in spec.relations):
        kinds.add("side")
    if any(r.kind not in SPATIAL_RELATIONS for r in spec.relations):
        kinds.add("relation")
    return tuple(k for k in FACTS if k in kinds)


def perturb(prompt, scene: Scene, fact: str, rng) -> Scene | None:
    """`scene` changed in one fact of kind `fact` that the prompt names (a colour, a shape, a count, a side, ...),
    chosen at random among the prompt's phrases and relations; None when the change cannot be made (no room)."""
    spec = as_spec(prompt)
    rng = as_rng(rng)
    if fact not in FACTS:
        raise ValueError(f"unknown fact {fact!r}; expected one of {', '.join(FACTS)}")
    objects = list(scene.objects)
    alternatives = {"color": COLOR_NAMES, "shape": SHAPES, "texture": TEXTURES, "size": SIZES}

    def witnesses(i: int) -> list[int]:
        return [j for j, o in enumerate(objects) if spec.entities[i].matches(o)]

    if fact in alternatives:
        named = [i for i, e in enumerate(spec.entities) if fact in e.facts() and witnesses(i)]
        if fact == "color":  # "the same color as" names a colour too
            named += [r.object for r in spec.relations if r.kind == "same color as"]
        if not named:
            return None
        i = named[rng.integers(len(named))]
        changed = _change_attribute(objects, witnesses(i), fact, alternatives[fact], rng)
        return None if changed is None else Scene(tuple(changed))
    if fact == "count":
        i = int(rng.integers(len(spec.entities)))
        e, found = spec.entities[i], witnesses(i)
        if e.exact and rng.random() < 0.5 or not found:
            attrs = {**_random_attrs(e, rng), **e.facts()}
            anchors = free_anchors(scene.occupied(), attrs["size"])
            if not anchors:
                return None
            row, col = anchors[rng.integers(len(anchors))]
            return Scene(tuple(objects) + (Obj(**attrs, row=int(row), col=int(col)),))
        drop = set(found) if not e.exact else {found[rng.integers(len(found))]}
        return Scene(tuple(o for j, o in enumerate(objects) if j not in drop))
    related = [r for r in spec.relations if (r.kind in SPATIAL_RELATIONS) == (fact == "side")]
    if not related:
        return None
    r = related[rng.integers(len(related))]
    if fact == "side":  # mirror the scene across the axis the relation is about
        horizontal = r.kind in ("left of", "right of")
        return Scene(tuple(
            o.moved(col=GRID - o.span - o.col) if horizontal else o.moved(row=GRID - o.span - o.row) for o in objects
        ))
    if r.kind == "same color as":
        changed = _change_attribute(objects, witnesses(r.object), "color", COLOR_NAMES, rng)
    elif r.kind in ("bigger than", "smaller than"):
        changed = _change_attribute(objects, sorted(set(witnesses(r.subject) + witnesses(r.object))), "size", SIZES, rng)
    else:  # touching: move the object's witnesses away from everything they touch
        changed = objects
        for j in witnesses(r.object):
            changed = _move_apart(changed, j, rng)
            if changed is None:
                return None
    return None if changed is None else Scene(tuple(changed))


def _change_attribute(objects: list[Obj], targets: list[int], attribute: str, values, rng) -> list[Obj] | None:
    out = list(objects)
    for j in targets:
        options = [v for v in values if v != getattr(out[j], attribute)]
        value = options[rng.integers(len(options))]
        others = {c for k, o in enumerate(out) if k != j for c in o.cells}
        anchors = free_anchors(others, out[j].size if attribute != "size" else value)
        if not anchors:
            return None
        # Stay in place when the changed object still fits there (a shrink always does).
        row, col = (out[j].row, out[j].col) if (out[j].row, out[j].col) in anchors else anchors[rng.integers(len(anchors))]
        out[j] = out[j].moved(**{attribute: value, "row": int(row), "col": int(col)})
    return out


def _move_apart(objects: list[Obj], j: int, rng) -> list[Obj] | None:
    others = [o for k, o in enumerate(objects) if k != j]
    occupied = {c for o in others for c in o.cells}
    anchors = [(r, c) for r, c in free_anchors(occupied, objects[j].size)
               if not any(touching(objects[j].moved(row=r, col=c), o) for o in others)]
    if not anchors:
        return None
    row, col = anchors[rng.integers(len(anchors))]
    out = list(objects)
    out[j] = objects[j].moved(row=int(row), col=int(col))
    return out


# -- suite-level aggregation ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SuiteReport:
    """Per-category (CompBench) or per-task (GenEval) results, and the overall score as each benchmark defines it."""

    suite: str
    value: dict  # category -> mean continuous value over images
    accuracy: dict  # category -> fraction of images judged correct
    count: dict  # category -> number of images
    overall: float  # GenEval: mean of task accuracies; CompBench: mean of category values

    def table(self):
        import pandas as pd

        rows = [{"category": c, "images": self.count[c], "value": self.value[c], "accuracy": self.accuracy[c]}
                for c in self.value]
        return pd.DataFrame(rows).set_index("category")


def aggregate(prompts, scores, suite: str | None = None) -> SuiteReport:
    """Aggregate per-image scores of suite prompts. Several images of one prompt are simply several entries."""
    prompts, scores = list(prompts), list(scores)
    if len(prompts) != len(scores):
        raise ValueError(f"got {len(prompts)} prompts and {len(scores)} scores")
    if not prompts:
        raise ValueError("aggregate needs at least one scored image")
    suite = suite or prompts[0].suite
    values, hits = defaultdict(list), defaultdict(list)
    for p, s in zip(prompts, scores):
        values[p.category].append(s.value)
        hits[p.category].append(float(s.correct))
    value = {c: float(np.mean(v)) for c, v in values.items()}
    accuracy = {c: float(np.mean(v)) for c, v in hits.items()}
    count = {c: len(v) for c, v in values.items()}
    overall = float(np.mean(list(accuracy.values()) if suite == "geneval" else list(value.values())))
    return SuiteReport(suite, value, accuracy, count, overall)
