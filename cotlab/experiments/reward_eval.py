"""Intrinsic generalisation of a reward model, measured against the exact scorer on base-policy samples.

Two measures, each on held-out in-domain prompts (CompBench-style val) and out-of-domain prompts (GenEval-style):
- pairwise accuracy: over pairs of images of the same prompt whose exact scores differ, the fraction the reward model
  orders as the exact scorer does (a tie in reward counts one half). The exact score is each suite's own per-image
  quantity: the CompBench-style value in domain, the GenEval-style verdict (correct or not) out of domain;
- Best-of-N: for each prompt pick the highest-reward of its N samples; the suite's exact score of the picked images
  (CompBench: mean of category values; GenEval: mean of task accuracies), next to a random pick (the first sample)
  and the oracle pick. This is how the reprinted table in PAPER.md measures a reward model's generalisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cotlab import rewards
from cotlab.evaluation import mean_ci
from cotlab.evaluation.shapeworld import first_per_category
from cotlab.rewards.learned import with_artifacts
from cotlab.world import (aggregate, decode_arrays, facts_named, load_suite, perturb, random_scene, scene_codes,
                          scene_for, score_batch)

SUITE_SPLITS = {"id": ("compbench", "val"), "ood": ("geneval", "test")}


@dataclass
class Samples:
    """N base-policy images for each of P prompts, with their exact scores."""

    prompts: list  # P suite Prompts
    tokens: np.ndarray  # (P, N, 64) image codes
    value: np.ndarray  # (P, N) CompBench-style value
    correct: np.ndarray  # (P, N) GenEval-style verdict

    @property
    def suite(self) -> str:
        return self.prompts[0].suite

    def images(self) -> list:
        from PIL import Image

        return [Image.fromarray(a) for a in decode_arrays(self.tokens.reshape(-1, self.tokens.shape[-1]))]

    def metric(self) -> np.ndarray:
        """The per-image quantity the suite's overall score averages."""
        return self.correct.astype(np.float64) if self.suite == "geneval" else self.value

    def overall(self, pick: np.ndarray) -> float:
        """The suite's overall exact score of one picked image per prompt (`pick`: (P,) indices into N)."""
        rows = np.arange(len(self.prompts))
        picked = [SimpleNamespace(value=v, correct=c) for v, c in zip(self.value[rows, pick], self.correct[rows, pick])]
        return aggregate(self.prompts, picked, self.suite).overall  # reads .value and .correct of each Score


def _suite_prompts(which: str, prompts_per_category: int, n: int) -> list:
    """The first `prompts_per_category` prompts of each category of the "id" or "ood" suite; `n` candidates each."""
    if which not in SUITE_SPLITS:
        raise ValueError(f"unknown suite {which!r}; expected one of {', '.join(SUITE_SPLITS)}")
    if n < 2:
        raise ValueError(f"n must be at least 2 to compare samples, got {n}")
    return first_per_category(load_suite(*SUITE_SPLITS[which]), prompts_per_category)


def _scored(prompts: list, tokens: np.ndarray, scores: list) -> Samples:
    """`Samples` of `prompts` from their candidates' tokens and exact scores, prompt-major."""
    shape = (len(prompts), len(scores) // len(prompts))
    return Samples(prompts, tokens.reshape(*shape, -1), np.array([s.value for s in scores]).reshape(shape),
                   np.array([s.correct for s in scores]).reshape(shape))


def sample_base(policy, which: str, *, prompts_per_category: int = 20, n: int = 4, seed: int = 0,
                guidance_scale: float = 5.0, batch_images: int = 128, progress: bool = True) -> Samples:
    """`n` samples per prompt from `policy` for the first `prompts_per_category` prompts of each category of the
    "id" or "ood" suite, scored exactly."""
    prompts = _suite_prompts(which, prompts_per_category, n)
    generator = torch.Generator(device=policy.device).manual_seed(int(seed))
    per_call = max(1, batch_images // n)
    tokens, scores = [], []
    for start in tqdm(range(0, len(prompts), per_call), desc=f"base samples ({which})", disable=not progress,
                      leave=False):
        chunk = prompts[start:start + per_call]
        roll = policy.sample([p.text for p in chunk], n, guidance_scale=guidance_scale, generator=generator)
        tokens.append(roll.image_tokens.cpu().numpy())
        scores += score_batch([p for p in chunk for _ in range(n)], roll.images)
    return _scored(prompts, np.concatenate(tokens), scores)


def ground_truth_samples(which: str, *, prompts_per_category: int = 20, n: int = 4, seed: int = 0,
                         artifact_prob: float = 0.0) -> Samples:
    """`n` candidates per prompt without a base model, for the first `prompts_per_category` prompts of each category of
    the "id" or "ood" suite: a scene made for the prompt, scenes with one of its named facts broken (`perturb`; a
    random scene where no fact can be broken) and one random scene, each with (probability `artifact_prob`) 1-3
    random code patches, rendered, scored exactly from pixels and shuffled (so the first candidate, the random pick,
    is no better than any other)."""
    prompts = _suite_prompts(which, prompts_per_category, n)
    rng = np.random.default_rng([seed, 23])
    codes = []
    for p in prompts:
        made = scene_for(p.text, rng)
        facts = list(facts_named(p.text))
        scenes = [made]
        for _ in range(n - 2):
            broken = perturb(p.text, made, facts[rng.integers(len(facts))], rng)
            scenes.append(broken if broken is not None else random_scene(rng))
        scenes.append(random_scene(rng))
        order = rng.permutation(n)
        codes += [with_artifacts(scene_codes(scenes[k]), rng, artifact_prob) for k in order]
    tokens = np.stack(codes)
    return _scored(prompts, tokens, score_batch([p for p in prompts for _ in range(n)], decode_arrays(tokens)))


def reward_matrix(rm, samples: Samples) -> np.ndarray:
    """(P, N) rewards of every sample under `rm`."""
    texts = [p.text for p in samples.prompts for _ in range(samples.tokens.shape[1])]
    return rm(texts, samples.images()).numpy().reshape(samples.value.shape)


def pairwise_accuracy(rewards: np.ndarray, exact: np.ndarray) -> float:
    """Fraction of same-prompt pairs with different exact scores that `rewards` orders the same way (ties: 1/2); NaN
    when no such pair exists (e.g. a base at chance whose samples all score alike): the measure is undefined there."""
    agree, total = 0.0, 0
    for r, e in zip(rewards, exact):
        i, j = np.triu_indices(len(e), k=1)
        keep = np.abs(e[i] - e[j]) > 1e-9
        de, dr = e[i][keep] - e[j][keep], r[i][keep] - r[j][keep]
        agree += float(np.sum(np.sign(dr) == np.sign(de)) + 0.5 * np.sum(dr == 0))
        total += int(keep.sum())
    return agree / total if total else float("nan")


def best_of_n(rewards: np.ndarray, samples: Samples) -> float:
    """The suite's exact overall score of the highest-reward sample per prompt (first of equals)."""
    return samples.overall(rewards.argmax(1))


def intrinsic_generalisation(rm, samples: dict[str, Samples]) -> dict:
    """Pairwise accuracy and Best-of-N of `rm` on each suite's samples ({"id": ..., "ood": ...})."""
    out = {}
    for which, s in samples.items():
        r = reward_matrix(rm, s)
        out[f"{which} pairwise"] = pairwise_accuracy(r, s.metric())
        out[f"{which} best-of-{s.tokens.shape[1]}"] = best_of_n(r, s)
    return out


def reference_rows(samples: dict[str, Samples]) -> pd.DataFrame:
    """What Best-of-N is read against: a random pick (the first sample) and the oracle pick, per suite."""
    rows = {}
    for name, pick in (("random pick", lambda s: np.zeros(len(s.prompts), dtype=int)),
                       ("oracle pick", lambda s: s.metric().argmax(1))):
        rows[name] = {f"{w} best-of-{s.tokens.shape[1]}": s.overall(pick(s)) for w, s in samples.items()}
    return pd.DataFrame(rows).T


def compare_reward_models(samples: dict[str, Samples], models: list[dict], seeds=(0, 1, 2), *, store=None,
                          progress: bool = True) -> pd.DataFrame:
    """One row per (reward model, training seed): its intrinsic generalisation on `samples`.

    `models`: registry options per model, e.g. {"name": "judge", "breadth": "id"}; learned models are trained (or
    reused from the run store) once per seed, `metric` (deterministic) is measured once."""
    rows = []
    for options in models:
        options = dict(options)
        name = options.pop("name")
        learned = name in ("preference", "judge")
        for seed in seeds if learned else seeds[:1]:
            extra = {"seed": seed, "store": store, "progress": progress} if learned else {}
            rm = rewards.get(name, **options, **extra)
            label = rm.name if learned else name
            rows.append({"reward model": label, "family": name, "breadth": options.get("breadth", rm.cfg.breadth)
                         if learned else "-", "seed": seed, **intrinsic_generalisation(rm, samples)})
    return pd.DataFrame(rows)


def summarize(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% t-interval half-width over seeds of every measure, one row per reward model."""
    measures = [c for c in per_seed.columns if c not in ("reward model", "family", "breadth", "seed")]
    out = {}
    for name, group in per_seed.groupby("reward model", sort=False):
        row = {"seeds": len(group)}
        for m in measures:
            row[m], row[f"{m} ±95%"] = mean_ci(group[m])
        out[name] = row
    return pd.DataFrame(out).T


def spread(per_seed: pd.DataFrame, references: pd.DataFrame, which: str = "ood") -> pd.DataFrame:
    """How far the reward models' generalisation spreads between a random and the oracle pick (issue 18: a slope over
    reward models means something only if they span that interval). One row per reward model of `per_seed`
    (`compare_reward_models`): its family, breadth and seeds, pairwise accuracy and Best-of-N on suite `which` (mean
    and 95% half-width over seeds), and `share` = (Best-of-N - random) / (oracle - random), 0 at a random pick and 1
    at the oracle's; then the random and oracle rows of `references` (`reference_rows`), sorted by Best-of-N."""
    bon_col = next(c for c in per_seed.columns if c.startswith(f"{which} best-of-"))
    pair_col = f"{which} pairwise"
    random, oracle = (float(references.loc[name, bon_col]) for name in ("random pick", "oracle pick"))
    width = oracle - random
    rows = []
    for name, group in per_seed.groupby("reward model", sort=False):
        (pm, ph), (bm, bh) = mean_ci(group[pair_col]), mean_ci(group[bon_col])
        rows.append({"reward model": name, "family": group["family"].iloc[0], "breadth": group["breadth"].iloc[0],
                     "seeds": len(group), pair_col: pm, f"{pair_col} ±": ph, bon_col: bm, f"{bon_col} ±": bh,
                     "share": (bm - random) / width if width > 0 else float("nan")})
    rows += [{"reward model": name, "family": "-", "breadth": "-", "seeds": 0, pair_col: float("nan"),
              f"{pair_col} ±": float("nan"), bon_col: value, f"{bon_col} ±": 0.0, "share": share}
             for name, value, share in (("random pick", random, 0.0), ("oracle pick", oracle, 1.0))]
    return pd.DataFrame(rows).set_index("reward model").sort_values(bon_col)


__all__ = ["Samples", "best_of_n", "compare_reward_models", "ground_truth_samples", "intrinsic_generalisation",
           "pairwise_accuracy", "reference_rows", "reward_matrix", "sample_base", "spread", "summarize"]
