"""Evaluating a policy on ShapeWorld's suites with the exact scorer, with an eval card on every result."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cotlab import __version__
from cotlab.world import SuiteReport, aggregate, load_suite, score_batch


def code_version() -> str:
    from cotlab.experiments.store import code_version as sources_hash

    return f"{__version__}+{sources_hash(['cotlab'])[:10]}"


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
        metric = "accuracy" if self.card.suite == "geneval" else "value"
        return table[[metric, f"{metric} ±95%"]]


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
    from cotlab.world import random_scene, render

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
                    reward: str = "none", tier: str = "", progress: bool = True) -> EvalResult:
    """Sample `images_per_prompt` images per prompt for each seed and score them exactly.

    `prompts_per_category` evaluates the first n prompts of each category (all when None) — the same prompts for
    every seed and every policy, so that comparisons are paired."""
    split = split or ("val" if suite == "compbench" else "test")  # held-out prompts by default, never training ones
    prompts = first_per_category(load_suite(suite, split), prompts_per_category)
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
                    code_version())
    return EvalResult(card, reports, pd.DataFrame(rows))
