"""Figures for the book: image grids with captions (matplotlib; seaborn styles the rest)."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np


def image_grid(images, titles=None, ncols: int = 6, scale: float = 1.8, wrap: int = 26, suptitle: str | None = None):
    """Show images in a grid, each with an optional wrapped caption; returns the figure."""
    images = list(images)
    if not images:
        raise ValueError("image_grid needs at least one image")
    titles = list(titles) if titles is not None else [None] * len(images)
    if len(titles) != len(images):
        raise ValueError(f"got {len(images)} images and {len(titles)} titles")
    ncols = min(ncols, len(images))
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows * 1.25), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(np.asarray(image), interpolation="nearest")
        if title:
            ax.set_title("\n".join(textwrap.wrap(title, wrap)), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def sweep_plot(results, variable: str, *, title: str = "", xlabel: str | None = None):
    """ID and OOD overall score against a swept `variable` (a column of `before_after`'s table), one line per
    algorithm with 95% intervals over seeds, the base model as a dotted line; returns the figure."""
    import seaborn as sns

    overall = results[results["category"] == "overall"]
    base = overall[overall["algorithm"] == "base"].set_index("suite")["value"]
    trained = overall[overall["algorithm"] != "base"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, (suite, name) in zip(axes, (("compbench", "in domain (CompBench-style val)"),
                                        ("geneval", "out of domain (GenEval-style)"))):
        sns.pointplot(trained[trained["suite"] == suite], x=variable, y="value", hue="algorithm",
                      hue_order=["grpo", "dpo"], errorbar=("ci", 95), dodge=0.2, ax=ax)
        ax.axhline(base[suite], color="grey", ls=":", lw=1, label="base")
        ax.set(title=f"{title}: {name}" if title else name, xlabel=xlabel or variable, ylabel="overall score")
        ax.legend()
    fig.tight_layout()
    return fig


def probe_plot(curves):
    """The probe's on-policy reward and KL to the base against the optimizer step (`rl.probe_curves`), one line per
    arm with 95% intervals over seeds, one row of two panels per reward model; returns the figure."""
    import seaborn as sns

    rewards = list(dict.fromkeys(curves["reward"]))
    fig, axes = plt.subplots(len(rewards), 2, figsize=(11, 3.2 * len(rewards)), squeeze=False)
    for row, reward in zip(axes, rewards):
        part = curves[curves["reward"] == reward]
        for ax, measure in zip(row, ("probe reward", "KL to base")):
            sns.lineplot(part, x="step", y=measure, hue="algorithm", errorbar=("ci", 95), marker="o", ax=ax)
            ax.set(title=f"{reward}: {measure}", xlabel="optimizer step", ylabel=measure)
    fig.tight_layout()
    return fig


def spread_plot(table, ax=None):
    """Best-of-N per reward model (95% bars over seeds) between the random and oracle picks (lines), from a table as
    `cotlab.experiments.reward_eval.spread` makes it: indexed by reward model, with a ``<suite> best-of-<n>`` column
    and its ``... ±`` half-width, a ``seeds`` column (0 for the two pick rows) and the rows "random pick" and
    "oracle pick"; returns the axes."""
    bon_col = next(c for c in table.columns if "best-of-" in c and not c.endswith("±"))
    models = table[table["seeds"] > 0]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.35 * len(models) + 1.5))
    y = np.arange(len(models))
    ax.errorbar(models[bon_col], y, xerr=models[f"{bon_col} ±"].fillna(0), fmt="o", capsize=3)
    for name, style in (("random pick", ":"), ("oracle pick", "--")):
        ax.axvline(table.loc[name, bon_col], color="grey", ls=style, lw=1, label=name)
    ax.set_yticks(y, models.index)
    ax.set(xlabel=bon_col.replace("ood", "out-of-domain").replace("id ", "in-domain "),
           title="Spread of the reward models' generalisation")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def scaling_plot(result: dict):
    """Seconds per GRPO step against each axis of a `cotlab.bench.bench_scaling` result (log-log), with the sampling
    and update phases, and the linear-growth line through the first point; returns the figure."""
    rows = result["rows"]
    axes_names = list(dict.fromkeys(r["axis"] for r in rows))
    fig, axes = plt.subplots(1, len(axes_names), figsize=(4 * len(axes_names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], axes_names):
        part = [r for r in rows if r["axis"] == name]
        x = np.array([r["value"] for r in part], dtype=float)
        for key, style in (("seconds", "o-"), ("sampling", "s--"), ("update", "^--")):
            ax.plot(x, [r[key] for r in part], style, label="step" if key == "seconds" else key)
        ax.plot(x, part[0]["seconds"] * x / x[0], ":", color="grey", label="linear")
        ax.set(xscale="log", yscale="log", xlabel=name.replace("_", " "), ylabel="seconds",
               title=f"GRPO step vs {name.replace('_', ' ')}")
        ax.minorticks_off()  # log axes spanning less than a decade label their minor ticks over the major ones
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
