"""Captions of random scenes: the base model's pretraining text, a distribution of its own (not the suites).

A caption describes a random scene truthfully: some or all of its objects, each with a random subset of its
attributes, sometimes counted, sometimes related, in phrasings drawn from both suites' surface forms and a few
more. Every caption is checked against its scene with the exact scorer, so the image always satisfies its caption.
The suites are built by another procedure (prompt first, then a scene made for it) and are never sampled here.

Hold-outs (issue 19, level L3). `CaptionConfig.holdout` names a hold-out of `cotlab.world.HOLDOUTS` held out of
pretraining too (`pretraining=True`: "L3-above-below", "L3-count-four"), or "L0" (nothing, the default). A caption
that touches it (`HoldOut.touches`: the relation in any wording, the numeral, ...) is never produced: like a caption
the scorer rejects, the whole draw (scene and caption) is redrawn. The distribution is then the old one conditioned
on not touching the hold-out, p(scene, caption | caption does not touch it): of all distributions with no touching
caption, the one closest to the old (it minimises KL(new || old)), and every allowed caption keeps its relative odds.
"L0" touches nothing and is never checked, so it draws exactly the captions (and random numbers) it always did.
Measured on 4,000 default draws: 7.6% of captions touch "L3-above-below" (redrawn; mean objects per scene 2.48 ->
2.44); none touches "L3-count-four" (none in 15,000: captions count only to two), so its captions are the default's.
"""
from __future__ import annotations

from dataclasses import dataclass

from .holdout import HOLDOUTS, HoldOut
from .language import Entity, phrase_text
from .scene import Scene, as_rng, random_scene
from .scoring import relative_position, satisfies, touching


@dataclass(frozen=True)
class CaptionConfig:
    """The pretraining caption distribution (documented in chapter 1)."""

    max_objects: int = 4  # random scenes of 1..max_objects objects
    attribute_prob: float = 0.5  # each of colour / texture / size is named with this probability
    shape_adjective_prob: float = 0.2  # "a round object" instead of "a circle"
    count_prob: float = 0.25  # describe a group of identical-phrase objects by its exact count
    relation_prob: float = 0.3  # add one true relation between two described objects
    subset_prob: float = 0.3  # describe only some of the objects ("a" means at least one)
    prefix_prob: float = 0.3  # open with "a photo of" / "an image of" / "there is"
    holdout: str = "L0"  # a hold-out kept out of the captions ("L0": none; else one with pretraining=True, L3)

    def __post_init__(self):
        allowed = [n for n, h in HOLDOUTS.items() if h.empty or h.pretraining]
        if not isinstance(self.holdout, str) or self.holdout not in allowed:
            known = isinstance(self.holdout, str) and self.holdout in HOLDOUTS
            kind = "a hold-out of RL only (pretraining=False)" if known else "not a hold-out"
            raise ValueError(f"CaptionConfig.holdout={self.holdout!r} is {kind}; captions hold out nothing (L0) or "
                             f"what a hold-out keeps out of pretraining (L3): {', '.join(allowed)}")

    @property
    def held_out(self) -> HoldOut:
        """The `HoldOut` no caption touches."""
        return HOLDOUTS[self.holdout]


SPATIAL_WORDS = {"left of": ("left of", "on the left of", "to the left of"),
                 "right of": ("right of", "on the right of", "to the right of"),
                 "above": ("above", "on the top of", "on top of"), "below": ("below", "on the bottom of", "under")}


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def caption(scene: Scene, rng, cfg: CaptionConfig = CaptionConfig()) -> str:
    """A true description of `scene` drawn from the caption distribution."""
    rng = as_rng(rng)
    objects = list(scene.objects)
    if not objects:
        raise ValueError("cannot caption an empty scene")
    if len(objects) > 1 and rng.random() < cfg.subset_prob:
        keep = rng.choice(len(objects), size=int(rng.integers(1, len(objects))), replace=False)
        objects = [objects[i] for i in sorted(keep)]
    entities = []
    for obj in objects:
        named = {a: getattr(obj, a) for a in ("color", "texture", "size") if rng.random() < cfg.attribute_prob}
        entities.append(Entity(shape=obj.shape, **named))
    relation = None
    if len(entities) >= 2 and rng.random() < cfg.relation_prob:
        i, j = (int(k) for k in rng.choice(len(entities), size=2, replace=False))
        a, b = objects[i], objects[j]
        options = [(SPATIAL_WORDS[r], r) for r in sorted(relative_position(a, b))]
        if a.size == "large" and b.size == "small":
            options.append((("is bigger than", "bigger than"), "bigger than"))
        if touching(a, b):
            options.append((("is touching", "touching"), "touching"))
        if options:
            relation = (i, j, _pick(rng, _pick(rng, options)[0]))
    phrases = []
    used = set()
    if relation is not None:
        i, j, words = relation
        phrases.append(f"{_phrase(entities[i], rng, cfg)} {words} {_phrase(entities[j], rng, cfg)}")
        used = {i, j}
    groups: dict[Entity, int] = {}
    for k, e in enumerate(entities):
        if k not in used:
            groups[e] = groups.get(e, 0) + 1
    for e, n in groups.items():
        if n > 1 or rng.random() < cfg.count_prob:
            phrases.append(_phrase(Entity(**{**e.__dict__, "count": n, "exact": True}), rng, cfg))
        else:
            phrases.extend(_phrase(e, rng, cfg) for _ in range(n))
    order = rng.permutation(len(phrases))
    phrases = [phrases[k] for k in order]
    text = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    if rng.random() < cfg.prefix_prob:
        text = _pick(rng, ("a photo of ", "an image of ", "a picture of ")) + text
    return text


def _phrase(e: Entity, rng, cfg: CaptionConfig) -> str:
    return phrase_text(e, shape_as_adjective=rng.random() < cfg.shape_adjective_prob,
                       generic_noun=_pick(rng, ("object", "shape", "thing")))


def captioned_scene(rng, cfg: CaptionConfig = CaptionConfig()) -> tuple[Scene, str]:
    """A random scene and a true caption of it. Numerals are exact counts, so a caption that counts a group while
    describing only part of the scene is re-drawn until the scorer accepts it; so is one that touches the config's
    hold-out (module docstring)."""
    rng = as_rng(rng)
    held = cfg.held_out
    while True:
        scene = random_scene(rng, max_objects=cfg.max_objects)
        text = caption(scene, rng, cfg)
        if satisfies(text, scene) and not held.touches(text):
            return scene, text


def sample_captions(n: int, seed: int = 0) -> list[str]:
    """`n` true captions of random scenes (of different lengths, so a batch of them is left-padded as in training)."""
    rng = as_rng(seed)
    return [captioned_scene(rng)[1] for _ in range(n)]


__all__ = ["CaptionConfig", "caption", "captioned_scene", "sample_captions"]
