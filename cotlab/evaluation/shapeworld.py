"""Evaluating a policy on ShapeWorld's suites with the exact scorer, with an eval card on every result."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cotlab.store import package_version
from cotlab.world import SuiteReport, aggregate, load_suite, meaning_twins, random_scene, render, score_batch


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
    images: pd.DataFrame  # one row per image: seed, prompt, category, value, correct

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
        seed, a category's pooled mean equals the mean over seeds of its per-seed means, so value matches `summary`."""
        images = self.images.assign(correct=self.images["correct"].astype(float))
        headline = "value" if headline_metric(self.card.suite) == "value" else "correct"
        groups = dict(tuple(images.groupby("category", sort=False)))
        rows = {c: {"continuous": g["value"].mean(), "accuracy": g["correct"].mean(), "value": g[headline].mean(),
                    "se": image_bootstrap_se(g[headline], n_boot=n_boot)} for c, g in groups.items()}
        table = pd.DataFrame(rows).T
        overall = table[["continuous", "accuracy", "value"]].mean()
        overall["se"] = image_bootstrap_se(images[headline], strata=images["category"], n_boot=n_boot)
        return pd.concat([table, overall.to_frame("overall").T])


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
    meaning twin among the hold-out's ID training prompts (`cotlab.world.meaning_twins`)."""
    split = split or ("val" if suite == "compbench" else "test")  # held-out prompts by default, never training ones
    prompts = load_suite(suite, split, holdout=holdout)
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
                             "correct": s.correct})
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
