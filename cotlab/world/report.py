"""Measurements of the world itself, as tables for the book: parser robustness, scorer checks, suite statistics."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from PIL import ImageFilter
from tqdm import tqdm

from .language import tokenize
from .render import CODEBOOK_SIZE, PatchTokenizer, read_patch_batch, render
from .scene import as_rng, random_scene
from .scoring import facts_named, metric_family, perturb, scene_for, score_batch


def parser_robustness(num_scenes: int, seed, blur_radii=(0.0, 0.5, 0.7, 1.0, 1.5)) -> pd.DataFrame:
    """Parse `num_scenes` random scenes, clean and blurred: the share recovered exactly, the share with a misread
    object (wrong attribute where an object is), and the share with an object parsed on empty patches (invented)."""
    rng = as_rng(seed)
    scenes = [random_scene(rng) for _ in tqdm(range(num_scenes), desc="scenes", leave=False)]
    rows = []
    for radius in blur_radii:
        images = [render(s) if radius == 0 else render(s).filter(ImageFilter.GaussianBlur(radius)) for s in scenes]
        readings = read_patch_batch(images)
        exact = misread = invented = lost = 0
        for scene, reading in zip(scenes, readings):
            parsed, truth = set(reading.scene.objects), set(scene.objects)
            exact += parsed == truth
            misread += any(o not in truth and o.cells & scene.occupied() for o in parsed)
            invented += any(not o.cells & scene.occupied() for o in parsed)
            lost += len(truth - parsed)
        rows.append({"blur radius (px)": radius, "scenes": num_scenes, "exact": exact / num_scenes,
                     "with a misread object": misread / num_scenes, "with an invented object": invented / num_scenes,
                     "objects lost per scene": lost / num_scenes})
    return pd.DataFrame(rows).set_index("blur radius (px)")


def random_code_readings(num_images: int, seed) -> pd.DataFrame:
    """What the parser makes of images decoded from uniformly random codes (incoherent token sequences)."""
    rng = as_rng(seed)
    codes = rng.integers(0, CODEBOOK_SIZE, (num_images, 64))
    readings = read_patch_batch(PatchTokenizer().decode(codes))
    return pd.DataFrame({
        "small objects (whole)": [sum(o.size == "small" for o in r.scene.objects) for r in readings],
        "large objects (whole)": [sum(o.size == "large" for o in r.scene.objects) for r in readings],
        "fragments (quadrants of no whole object)": [len(r.fragments) for r in readings],
        "unrecognised patches": [len(r.unrecognised) for r in readings],
    }).describe().loc[["mean", "min", "max"]]


def scorer_check(prompts, seed) -> pd.DataFrame:
    """Per category: the share of ground-truth renders judged correct, and of renders changed in one named fact
    (each kind the prompt names, where the change fits) judged wrong."""
    rng = as_rng(seed)
    rows = {}
    for p in tqdm(prompts, desc="scorer check", leave=False):
        scene = scene_for(p, rng)
        changed = [c for c in (perturb(p, scene, f, rng) for f in facts_named(p)) if c is not None]
        scores = score_batch([p] * (1 + len(changed)), [render(scene)] + [render(c) for c in changed])
        row = rows.setdefault(p.category, {"prompts": 0, "ground truth correct": 0, "changed scenes": 0,
                                           "changed judged wrong": 0})
        row["prompts"] += 1
        row["ground truth correct"] += scores[0].correct
        row["changed scenes"] += len(changed)
        row["changed judged wrong"] += sum(not s.correct for s in scores[1:])
    table = pd.DataFrame(rows).T
    table["ground truth correct"] /= table["prompts"]
    table["changed judged wrong"] /= table["changed scenes"]
    return table


def suite_statistics(prompts) -> pd.DataFrame:
    """Per category: prompts, distinct texts, words per prompt, objects asked for, relations, scoring family."""
    rows = []
    for category in dict.fromkeys(p.category for p in prompts):
        group = [p for p in prompts if p.category == category]
        rows.append({
            "category": category,
            "prompts": len(group),
            "distinct texts": len({p.text for p in group}),
            "words per prompt": np.mean([len(tokenize(p.text)) for p in group]),
            "objects asked for": np.mean([sum(e.count for e in p.spec.entities) for p in group]),
            "relations": np.mean([len(p.spec.relations) for p in group]),
            "facts named per object": np.mean([np.mean([len(e.facts()) for e in p.spec.entities]) for p in group]),
            "scoring family": ", ".join(sorted(Counter(metric_family(p.spec) for p in group))),
        })
    return pd.DataFrame(rows).set_index("category")


def word_overlap(id_prompts, ood_prompts) -> pd.DataFrame:
    """Which words each suite uses that the other does not, and what they share."""
    id_words = Counter(t for p in id_prompts for t in tokenize(p.text) if t not in ",.")
    ood_words = Counter(t for p in ood_prompts for t in tokenize(p.text) if t not in ",.")
    return pd.DataFrame({
        "words": [
            ", ".join(sorted(id_words.keys() - ood_words.keys())),
            ", ".join(sorted(ood_words.keys() - id_words.keys())),
            ", ".join(sorted(id_words.keys() & ood_words.keys())),
        ]}, index=["only in compbench (ID)", "only in geneval (OOD)", "in both"])
