"""Evaluating a policy on ShapeWorld's suites with the exact scorer, with an eval card on every result."""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cotlab.store import package_version
from cotlab.world import (SuiteReport, aggregate, check_holdout, load_suite, meaning_twins, random_scene, render,
                          score_batch)
from cotlab.world.language import NUMBER_WORDS
from cotlab.world.scene import Scene, free_anchors
from cotlab.world.scoring import as_spec, relation_holds


@dataclass(frozen=True)
class EvalCard:
    """Everything a reader needs to know about how a number was made."""

    policy: str
    reward: str  # the reward model the policy was trained with ("none" for a base model)
    tier: str
    seeds: tuple[int, ...]
    images_per_prompt: int
    guidance_scale: float
    temperature: float
    top_k: int
    logprob_mode: str
    suite: str
    split: str
    prompts: int
    code_version: str  # cotlab's version and a hash of its sources

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"value": [str(v) for v in asdict(self).values()]}, index=list(asdict(self)))


@dataclass
class EvalResult:
    card: EvalCard
    reports: list[SuiteReport]  # one per seed
    images: pd.DataFrame  # one row per image: seed, prompt, category, value, correct, skill (NaN: not conditioned on)

    def summary(self) -> pd.DataFrame:
        """Per category: mean over seeds of the category value and accuracy, with a 95% t-interval half-width
        (0 with a single seed); the suite's overall score last."""
        rows = {}
        for report in self.reports:
            for cat in report.value:
                rows.setdefault(cat, {"value": [], "accuracy": []})
                rows[cat]["value"].append(report.value[cat])
                rows[cat]["accuracy"].append(report.accuracy[cat])
        rows["overall"] = {"value": [r.overall for r in self.reports], "accuracy": [r.overall for r in self.reports]}
        out = {}
        for cat, vals in rows.items():
            out[cat] = {}
            for key, xs in vals.items():
                mean, half = mean_ci(xs)
                out[cat][key], out[cat][f"{key} ±95%"] = mean, half
        table = pd.DataFrame(out).T
        metric = headline_metric(self.card.suite)
        return table[[metric, f"{metric} ±95%"]]

    def scores(self, n_boot: int = 2000) -> pd.DataFrame:
        """Per category, and "overall" last: both metrics on every suite and the headline one with its per-image
        bootstrap standard error, from all images of all seeds.

        Columns: continuous (mean continuous value), accuracy (fraction judged correct), value (the suite's headline
        metric: continuous for CompBench-style, accuracy for GenEval-style, as each benchmark reports), se (bootstrap
        SE of value: images resampled within the category; for overall, within every category, which keeps the
        benchmark's mean of category means, `image_bootstrap_se`). With the same images per prompt and prompts per
        seed, a category's pooled mean equals the mean over seeds of its per-seed means, so value matches `summary`.

        And the skill score (`skill_score`, a conditional accuracy): skill (the fraction of the images it conditions
        on that show the skill; NaN where it conditions on none), skill_n (how many images it conditions on) and
        skill_se (`conditional_bootstrap_se`). Its overall is pooled over every conditioned image (not a mean of
        category means: the conditioning leaves categories with very different counts, which change from policy to
        policy)."""
        images = self.images.assign(correct=self.images["correct"].astype(float))
        headline = "value" if headline_metric(self.card.suite) == "value" else "correct"
        groups = dict(tuple(images.groupby("category", sort=False)))
        rows = {c: {"continuous": g["value"].mean(), "accuracy": g["correct"].mean(), "value": g[headline].mean(),
                    "se": image_bootstrap_se(g[headline], n_boot=n_boot)} for c, g in groups.items()}
        table = pd.DataFrame(rows).T
        overall = table[["continuous", "accuracy", "value"]].mean()
        overall["se"] = image_bootstrap_se(images[headline], strata=images["category"], n_boot=n_boot)
        table = pd.concat([table, overall.to_frame("overall").T])
        skill = images["skill"] if "skill" in images else pd.Series(np.nan, index=images.index)
        parts = [*((c, skill[g.index], None) for c, g in groups.items()), ("overall", skill, images["category"])]
        for c, values, strata in parts:
            table.loc[c, "skill"] = float(values.mean()) if values.notna().any() else np.nan  # mean skips NaN
            table.loc[c, "skill_n"] = float(values.notna().sum())
            table.loc[c, "skill_se"] = conditional_bootstrap_se(values, strata=strata, n_boot=n_boot)
        return table


# -- the skill score: one skill, given its prerequisites ----------------------------------------------------------

SKILLS = ("relation", "count", "binding")


def skill_kinds(holdout="L0") -> tuple[str, ...]:
    """The skills a hold-out holds out, in `SKILLS` order: "relation" for held-out relations, "count" for held-out
    counts, "binding" for held-out attribute combinations; every skill for a hold-out that names none of them (L0, or
    words only), so that each prompt is scored on the first skill it asks for."""
    h = check_holdout(holdout)
    kinds = tuple(k for k, named in zip(SKILLS, (h.relations, h.counts, h.combos)) if named)
    return kinds or SKILLS


def _witnessed(groups) -> bool:
    """Whether distinct objects can be picked, one from each group of candidate indices (an injective assignment)."""
    return any(len(set(pick)) == len(pick) for pick in itertools.product(*groups))


def prompt_skill(prompt, kinds=SKILLS) -> str | None:
    """The skill of `kinds` a prompt is scored on: the first it asks for ("relation": it names a relation; "count": a
    numeral; "binding": a phrase naming two facts or more, e.g. "a red circle"), None when it asks for none."""
    spec = as_spec(prompt)
    asks = {"relation": bool(spec.relations), "count": any(e.exact for e in spec.entities),
            "binding": any(len(e.facts()) >= 2 for e in spec.entities)}
    return next((k for k in kinds if asks[k]), None)


def skill_score(prompt, scene, kinds=SKILLS) -> float:
    """The held-out skill alone, from what the exact parser saw (`scene`, e.g. `Score.scene`): 1.0 or 0.0 on an image
    whose prerequisites hold, NaN (excluded, never scored 0) on one whose prerequisites fail or whose prompt asks for
    none of `kinds` (`prompt_skill` picks the skill):

    * relation: prerequisite, every phrase a relation names is drawn, all its named facts right, by distinct objects;
      skill, some such choice of objects makes every relation of the prompt hold (GenEval's position rule,
      `cotlab.world.relation_holds`);
    * count: prerequisite, every phrase with a numeral has its kind drawn (at least one object with all its facts);
      skill, each such phrase has exactly its count (as `.correct` counts);
    * binding: prerequisite, every fact named by a binding phrase (one naming two facts or more) is drawn on some
      object (the red and the circle of "a red circle", on any objects); skill, distinct objects carry each binding
      phrase's facts together.
    Given its prerequisite, each skill is the part of GenEval's `.correct` verdict that tests it (counts and other
    phrases left aside); `value`, `continuous` and `accuracy` are unchanged by it."""
    spec = as_spec(prompt)
    kind = prompt_skill(spec, kinds)
    objects = scene.objects if hasattr(scene, "objects") else tuple(scene)
    if kind is None:
        return float("nan")
    matches = [[j for j, o in enumerate(objects) if e.matches(o)] for e in spec.entities]
    if kind == "relation":
        named = sorted({i for r in spec.relations for i in (r.subject, r.object)})
        if not _witnessed([matches[i] for i in named]):
            return float("nan")
        for pick in itertools.product(*(matches[i] for i in named)):
            chosen = dict(zip(named, pick))
            if len(set(pick)) == len(pick) and all(
                    relation_holds(r.kind, objects[chosen[r.subject]], objects[chosen[r.object]])
                    for r in spec.relations):
                return 1.0
        return 0.0
    if kind == "count":
        counted = [i for i, e in enumerate(spec.entities) if e.exact]
        if not all(matches[i] for i in counted):
            return float("nan")
        return float(all(len(matches[i]) == spec.entities[i].count for i in counted))
    binding = [i for i, e in enumerate(spec.entities) if len(e.facts()) >= 2]
    drawn = all(any(getattr(o, k) == v for o in objects) for i in binding for k, v in spec.entities[i].facts().items())
    if not drawn:
        return float("nan")
    return float(_witnessed([matches[i] for i in binding]))


def _at_chance(spec, scene, kind: str, rng):
    """`scene` (made for the prompt, `scene_for`) with the skill's own facts redrawn at random, everything else kept:
    relation, every object moved to a random free place; count, each counted phrase drawn 1-4 times (ShapeWorld's
    numerals), uniformly; binding, the named colours, textures and sizes of the binding phrases' objects shuffled
    among those objects (shapes stay). None when the redraw does not fit on the grid."""
    objects = list(scene.objects)
    if kind == "relation":
        placed, occupied = [], set()
        for o in (objects[k] for k in rng.permutation(len(objects))):
            anchors = free_anchors(occupied, o.size)
            if not anchors:
                return None
            row, col = anchors[rng.integers(len(anchors))]
            placed.append(o.moved(row=int(row), col=int(col)))
            occupied |= placed[-1].cells
        return Scene(tuple(placed))
    if kind == "count":
        for e in (e for e in spec.entities if e.exact):
            mine = [o for o in objects if e.matches(o)]
            want = int(rng.integers(1, max(NUMBER_WORDS) + 1))
            objects = [o for o in objects if not e.matches(o)] + mine[:want]
            for _ in range(want - len(mine)):
                occupied = {c for o in objects for c in o.cells}
                size = mine[0].size
                anchors = free_anchors(occupied, size)
                if not anchors:
                    return None
                row, col = anchors[rng.integers(len(anchors))]
                objects.append(mine[0].moved(row=int(row), col=int(col)))
        return Scene(tuple(objects))
    owners = [j for j, o in enumerate(objects) if any(e.matches(o) for e in spec.entities if len(e.facts()) >= 2)]
    for attribute in ("color", "texture", "size"):
        if any(attribute in e.facts() for e in spec.entities if len(e.facts()) >= 2):
            values = [getattr(objects[j], attribute) for j in owners]
            for j, k in zip(owners, rng.permutation(len(owners))):
                try:
                    objects[j] = objects[j].moved(**{attribute: values[k]})
                except ValueError:  # grown past the grid's edge
                    return None
    occupied = [c for o in objects for c in o.cells]
    return Scene(tuple(objects)) if len(occupied) == len(set(occupied)) else None


def skill_chance(suite: str, split: str | None = None, *, holdout: str = "L0", images_per_prompt: int = 4,
                 prompts_per_category: int | None = None, seed: int = 0) -> pd.DataFrame:
    """What chance means for the skill score: a policy that draws every named object right and leaves the skill
    itself to chance (`_at_chance`: objects placed at random; counts 1-4 at random; attribute values shuffled among
    the objects), `images_per_prompt` such scenes per prompt of the suite's part (`evaluate_policy`'s prompts),
    scored by `skill_score` with `skill_kinds(holdout)`. Per category and "overall" (pooled, as `EvalResult.scores`):
    skill (chance level), skill_n (scenes conditioned on) and skill_se (`conditional_bootstrap_se`). For
    above/below, GenEval's position rule is symmetric, so a random placement of two objects is "above" as often as
    "below"; but side-by-side placements are neither, so chance is below 0.5."""
    from cotlab.world import scene_for

    split = split or ("val" if suite == "compbench" else "test")
    prompts = first_per_category(load_suite(suite, split, holdout=holdout), prompts_per_category)
    kinds = skill_kinds(holdout)
    rng = np.random.default_rng([int(seed), 11])
    rows = []
    for p in prompts:
        kind = prompt_skill(p.spec, kinds)
        for _ in range(images_per_prompt):
            value = float("nan")
            if kind is not None:
                scene = _at_chance(p.spec, scene_for(p, rng, distractor_prob=0.0), kind, rng)
                value = float("nan") if scene is None else skill_score(p.spec, scene, kinds)
            rows.append({"category": p.category, "skill": value})
    frame = pd.DataFrame(rows)
    out = {}
    for c, values, strata in [*((c, g["skill"], None) for c, g in frame.groupby("category", sort=False)),
                              ("overall", frame["skill"], frame["category"])]:
        out[c] = {"skill": float(values.mean()) if values.notna().any() else np.nan,
                  "skill_n": int(values.notna().sum()), "skill_se": conditional_bootstrap_se(values, strata=strata)}
    return pd.DataFrame(out).T


def headline_metric(suite: str) -> str:
    """The metric a suite's benchmark reports: GenEval accuracy, T2I-CompBench the mean continuous value."""
    return "accuracy" if suite == "geneval" else "value"


def image_bootstrap_se(values, strata=None, n_boot: int = 2000, seed: int = 0) -> float:
    """Per-image bootstrap standard error of a suite score (Efron & Tibshirani 1993, ch. 6), seeded.

    Without strata the score is the mean of per-image values; with strata (categories) it is the mean of the
    category means, and images are resampled within each category (stratified bootstrap), so each keeps its size."""
    x = np.asarray(values, dtype=float)
    labels = np.zeros(x.size, dtype=int) if strata is None else pd.factorize(np.asarray(strata))[0]
    rng = np.random.default_rng(seed)
    means = []
    for k in range(labels.max() + 1):
        xk = x[labels == k]
        means.append(xk[rng.integers(0, xk.size, (n_boot, xk.size))].mean(axis=1))
    return float(np.mean(means, axis=0).std(ddof=1))


def conditional_bootstrap_se(values, strata=None, n_boot: int = 2000, seed: int = 0) -> float:
    """Per-image bootstrap standard error of a conditional accuracy (`skill_score`): `values` 1, 0 or NaN (an image
    the score does not condition on). Resampled as `image_bootstrap_se` does (the same seed, every image within its
    stratum, so each stratum keeps its size), NaN images included, so that the number conditioned on varies from
    resample to resample as it would in a new evaluation; the statistic is the pooled conditional mean, sum of the
    conditioned values / their number. NaN when fewer than two images are conditioned on; resamples that condition
    on none are left out."""
    x = np.asarray(values, dtype=float)
    if np.sum(~np.isnan(x)) < 2:
        return float("nan")
    labels = np.zeros(x.size, dtype=int) if strata is None else pd.factorize(np.asarray(strata))[0]
    rng = np.random.default_rng(seed)
    hits, counts = np.zeros(n_boot), np.zeros(n_boot)
    for k in range(labels.max() + 1):
        xk = x[labels == k]
        drawn = xk[rng.integers(0, xk.size, (n_boot, xk.size))]
        hits += np.nansum(drawn, axis=1)
        counts += np.sum(~np.isnan(drawn), axis=1)
    kept = counts > 0
    return float((hits[kept] / counts[kept]).std(ddof=1))


def mean_ci(xs, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of a Student-t confidence interval over independent runs (seeds)."""
    from scipy import stats

    xs = np.asarray(xs, dtype=np.float64)
    if xs.size < 2:
        return float(xs.mean()), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, xs.size - 1) * xs.std(ddof=1) / np.sqrt(xs.size)
    return float(xs.mean()), float(half)


def first_per_category(prompts, n: int | None) -> list:
    """The first `n` prompts of each category, in suite order (all when n is None)."""
    if n is None:
        return list(prompts)
    kept, counts = [], Counter()
    for p in prompts:
        if counts[p.category] < n:
            kept.append(p)
            counts[p.category] += 1
    return kept


def chance_reports(suite: str, split: str | None = None, *, images_per_prompt: int = 4, seeds=(0,),
                   prompts_per_category: int | None = None) -> list[SuiteReport]:
    """What chance means on a suite: one report per seed for a prompt-blind image source, random clean scenes of
    1-4 objects (the pretraining scene distribution), scored against the prompts."""
    split = split or ("val" if suite == "compbench" else "test")
    prompts = first_per_category(load_suite(suite, split), prompts_per_category)
    rows = [p for p in prompts for _ in range(images_per_prompt)]
    reports = []
    for seed in seeds:
        rng = np.random.default_rng([int(seed), 5])
        reports.append(aggregate(rows, score_batch(rows, [render(random_scene(rng)) for _ in rows]), suite))
    return reports


def evaluate_policy(policy, suite: str, split: str | None = None, *, images_per_prompt: int = 4,
                    guidance_scale: float = 5.0, temperature: float = 1.0, top_k: int = 0, seeds=(0,),
                    prompts_per_category: int | None = None, batch_images: int = 128, policy_name: str = "policy",
                    reward: str = "none", tier: str = "", holdout: str = "L0", twin_free: bool = False,
                    progress: bool = True) -> EvalResult:
    """Sample `images_per_prompt` images per prompt for each seed and score them exactly.

    `prompts_per_category` evaluates the first n prompts of each category (all when None) — the same prompts for
    every seed and every policy, so that comparisons are paired. `holdout` (a name of `cotlab.world.HOLDOUTS`) selects
    the parts of a hold-out's splits ("val-heldout", "test-seen", ...); `twin_free` keeps only the prompts without a
    meaning twin among the hold-out's ID training prompts (`cotlab.world.meaning_twins`). Each image also gets its
    skill score (`skill_score`) on the skills the hold-out holds out (`skill_kinds`; every skill at L0)."""
    split = split or ("val" if suite == "compbench" else "test")  # held-out prompts by default, never training ones
    prompts = load_suite(suite, split, holdout=holdout)
    kinds = skill_kinds(holdout)
    if twin_free:
        twins = meaning_twins(prompts, load_suite("compbench", "train", holdout=holdout))
        prompts = [p for p, twin in zip(prompts, twins) if not twin]
    prompts = first_per_category(prompts, prompts_per_category)
    per_call = max(1, batch_images // images_per_prompt)
    reports, rows = [], []
    for seed in seeds:
        generator = torch.Generator(device=policy.device).manual_seed(int(seed))
        scored = []
        batches = range(0, len(prompts), per_call)
        for start in tqdm(batches, desc=f"{suite} seed {seed}", disable=not progress, leave=False):
            chunk = prompts[start:start + per_call]
            roll = policy.sample([p.text for p in chunk], images_per_prompt, guidance_scale=guidance_scale,
                                 temperature=temperature, top_k=top_k, generator=generator)
            rows_prompts = [p for p in chunk for _ in range(images_per_prompt)]
            for p, s in zip(rows_prompts, score_batch(rows_prompts, roll.images)):
                scored.append((p, s))
                rows.append({"seed": seed, "prompt": p.text, "category": p.category, "value": s.value,
                             "correct": s.correct, "skill": skill_score(p.spec, s.scene, kinds)})
        reports.append(aggregate([p for p, _ in scored], [s for _, s in scored], suite))
    card = EvalCard(policy_name, reward, tier, tuple(int(s) for s in seeds), images_per_prompt, float(guidance_scale),
                    float(temperature), int(top_k), policy.spec.logprob_mode, suite, split, len(prompts),
                    package_version())
    return EvalResult(card, reports, pd.DataFrame(rows))


def guidance_sweep(policy, weights, suites=(("compbench", "val"), ("geneval", None)), *, seeds=(0,),
              **eval_options) -> pd.DataFrame:
    """How the CFG weight moves each suite: `evaluate_policy` of `policy` at every weight of `weights` on every
    (suite, split) of `suites`, the same prompts and sampling seeds at each weight (`eval_options`: images_per_prompt,
    temperature, prompts_per_category...). One row per weight, suite and seed: "CFG weight", suite, seed, overall."""
    rows = []
    for weight in weights:
        for name, split in suites:
            result = evaluate_policy(policy, name, split, guidance_scale=weight, seeds=seeds,
                                     **{"progress": False, **eval_options})
            rows += [{"CFG weight": weight, "suite": name, "seed": seed, "overall": report.overall}
                     for seed, report in zip(seeds, result.reports)]
    return pd.DataFrame(rows)
