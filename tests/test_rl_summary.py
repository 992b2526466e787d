"""`summarize_runs` on a constructed `before_after` table: each group's mean, t-interval and gain over the base."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cotlab.experiments import rl
from cotlab.experiments.rl import (gap_lines, policy_samples, probe_curves, run_metrics, summarize_runs,
                                  training_curves)
from cotlab.store import write_jsonl

BASE = {"compbench": 0.30, "geneval": 0.20}
VALUES = {("grpo", "compbench"): [0.50, 0.54, 0.58], ("grpo", "geneval"): [0.25, 0.25, 0.25],
          ("dpo", "compbench"): [0.40, 0.44], ("dpo", "geneval"): [0.10, 0.30]}


def results(*tags: dict) -> pd.DataFrame:
    """`before_after`'s table: the base model once, then every run of each tag (a swept value), scored overall and
    in a category (which summaries do not read); a tag's scores are VALUES plus its "shift"."""
    rows = [{"algorithm": "base", "reward": "none", "seed": None, "suite": s, "category": "overall", "value": v}
            for s, v in BASE.items()]
    rows += [{"algorithm": "base", "reward": "none", "seed": None, "suite": "compbench", "category": "color",
              "value": 0.9}]
    for tag in tags or ({},):
        tag = dict(tag)
        shift = tag.pop("shift", 0.0)
        for (algorithm, suite), values in VALUES.items():
            for seed, value in enumerate(values):
                common = {"algorithm": algorithm, "reward": "metric", "seed": seed, "suite": suite, "health": "ok"}
                rows.append({**common, "category": "overall", "value": value + shift, **tag})
                rows.append({**common, "category": "color", "value": 0.0, **tag})
    return pd.DataFrame(rows)


def half_width(values) -> float:
    values = np.asarray(values)
    return stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))


def test_summarize_runs_gives_each_groups_mean_interval_and_gain_over_the_base():
    summary = summarize_runs(results()).set_index("algorithm")
    assert list(summary.index) == ["grpo", "dpo"] and set(summary["reward"]) == {"metric"}
    assert summary["seeds"].to_dict() == {"grpo": 3, "dpo": 2}
    for algorithm in ("grpo", "dpo"):
        row = summary.loc[algorithm]
        for suite, name in (("compbench", "ID"), ("geneval", "OOD")):
            values = VALUES[(algorithm, suite)]
            assert row[name] == pytest.approx(np.mean(values))
            assert row[f"{name} ±95%"] == pytest.approx(half_width(values))
            assert row[f"{name} gain"] == pytest.approx(np.mean(values) - BASE[suite])
            assert row[f"{name} gain ±95%"] == pytest.approx(row[f"{name} ±95%"])  # the base is a constant
        assert row["health"] == "ok"
    assert summary.loc["grpo", "OOD ±95%"] == 0  # equal values: no spread


def test_summarize_runs_groups_by_a_swept_column_and_gives_its_values_back_as_given():
    table = results({"G": 2}, {"G": 8, "shift": 0.1})
    assert table["G"].dtype == float  # the base rows leave G empty
    summary = summarize_runs(table, by=("G", "algorithm"))
    assert list(zip(summary["G"], summary["algorithm"])) == [(2, "grpo"), (2, "dpo"), (8, "grpo"), (8, "dpo")]
    assert all(type(g) is int for g in summary["G"])
    rows = summary.set_index(["G", "algorithm"])
    assert rows.loc[(2, "dpo"), "ID"] == pytest.approx(0.42) and rows.loc[(8, "dpo"), "ID"] == pytest.approx(0.52)
    assert rows.loc[(8, "grpo"), "OOD gain"] == pytest.approx(0.25 + 0.1 - BASE["geneval"])


def test_gap_lines_name_each_row_its_gap_and_who_is_ahead():
    gaps = pd.DataFrame([
        {"reward": "metric", "suite": "ID", "GRPO - DPO": -0.0512, "±95%": 0.0101, "ahead": "DPO"},
        {"reward": "judge[id]", "suite": "OOD", "GRPO - DPO": 0.004, "±95%": 0.02, "ahead": "neither"}])
    assert gap_lines(gaps) == [
        "* **metric**, ID: GRPO - DPO = -0.051 ± 0.010 (**DPO** ahead)",
        "* **judge[id]**, OOD: GRPO - DPO = +0.004 ± 0.020 (interval includes 0: no clear winner)"]
    assert gap_lines(gaps.rename(columns={"reward": "G"}).assign(G=[2, 8]))[1].startswith("* **8**, OOD:")


def test_run_metrics_label_every_step_and_keep_or_rename_columns(tmp_path):
    write_jsonl(tmp_path / "a" / "metrics.jsonl", [{"step": 1, "loss/total": 0.5, "reward/mean": 0.1},
                                                  {"step": 2, "loss/total": 0.4, "reward/mean": 0.3}])
    write_jsonl(tmp_path / "b" / "metrics.jsonl", [{"step": 1, "loss": 0.9}])  # logged before the namespaces
    runs = [({"algorithm": "grpo", "seed": 0}, tmp_path / "a"), ({"algorithm": "dpo", "seed": 1}, tmp_path / "b")]
    every = run_metrics(runs)
    assert list(every.columns) == ["algorithm", "seed", "step", "loss/total", "reward/mean"]
    assert every["algorithm"].tolist() == ["grpo", "grpo", "dpo"] and every["step"].tolist() == [1, 2, 1]
    assert every["loss/total"].tolist() == [0.5, 0.4, 0.9]  # the old run's `loss` read under its current name
    assert np.isnan(every["reward/mean"].iloc[2])  # not logged by that run
    kept = run_metrics(runs, ("step", "reward/mean"))
    assert list(kept.columns) == ["algorithm", "seed", "step", "reward/mean"]
    renamed = run_metrics(runs[:1], {"reward/mean": "training reward"})
    assert renamed.to_dict("records") == [{"algorithm": "grpo", "seed": 0, "training reward": 0.1},
                                          {"algorithm": "grpo", "seed": 0, "training reward": 0.3}]


def test_training_curves_read_each_cached_run_under_its_reward_arm_and_seed(tmp_path, monkeypatch):
    from cotlab.training import preset

    configs = [preset("smoke", "grpo", seed=0), preset("smoke", "dpo", seed=1, reward="judge")]
    write_jsonl(tmp_path / "grpo" / "metrics.jsonl",
                [{"step": s, "loss/total": 1.0 / s, "reward/mean": 0.1 * s, "optim/grad_norm": 9.0} for s in (1, 2)])
    write_jsonl(tmp_path / "dpo" / "metrics.jsonl",  # a run of an older store, logged under the old names
                [{"step": s, "loss": 1.0 / s, "reward_mean": 0.1 * s, "grad_norm": 9.0} for s in (1, 2)])
    monkeypatch.setattr(rl, "rl_run", lambda cfg, store=None, progress=True: tmp_path / cfg.algorithm)
    curves = training_curves(configs)
    assert list(curves.columns) == ["reward", "algorithm", "seed", "step", "training reward", "loss"]
    assert rl.reward_label(configs[1]).startswith("judge[")
    assert curves[["reward", "algorithm", "seed"]].drop_duplicates().values.tolist() == [
        ["metric", "grpo", 0], [rl.reward_label(configs[1]), "dpo", 1]]
    assert curves["training reward"].tolist() == pytest.approx([0.1, 0.2, 0.1, 0.2])
    assert curves["loss"].tolist() == pytest.approx([1.0, 0.5, 1.0, 0.5])


def test_probe_curves_keep_only_the_probed_steps_and_plot_both_measures(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from cotlab.plotting import probe_plot
    from cotlab.training import preset

    configs = [preset("smoke", "grpo", seed=s) for s in (0, 1)] + [preset("smoke", "dpo", seed=0)]
    for cfg in configs:
        rows = [{"step": s, "reward/mean": 0.5} for s in (1, 2, 3, 4)]
        for row in rows[1::2]:  # probed at steps 2 and 4
            row.update({"probe/reward_mean": 0.1 * row["step"] + cfg.seed, "probe/kl_base_k1": 0.01 * row["step"]})
        write_jsonl(tmp_path / f"{cfg.algorithm}{cfg.seed}" / "metrics.jsonl", rows)
    monkeypatch.setattr(rl, "rl_run", lambda cfg, store=None, progress=True: tmp_path / f"{cfg.algorithm}{cfg.seed}")
    curves = probe_curves(configs)
    assert list(curves.columns) == ["reward", "algorithm", "seed", "step", "probe reward", "KL to base"]
    assert curves["step"].tolist() == [2, 4] * 3
    assert curves["probe reward"].tolist() == pytest.approx([0.2, 0.4, 1.2, 1.4, 0.2, 0.4])
    assert curves["KL to base"].tolist() == pytest.approx([0.02, 0.04] * 3)
    fig = probe_plot(curves)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["metric: probe reward", "metric: KL to base"]
    monkeypatch.setattr(rl, "rl_run", lambda cfg, store=None, progress=True: tmp_path / "unprobed")
    write_jsonl(tmp_path / "unprobed" / "metrics.jsonl", [{"step": 1, "reward/mean": 0.5}])
    assert probe_curves(configs[:1]).empty


def test_policy_samples_draw_the_base_and_each_run_at_one_seed_titled_by_the_exact_scorer(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import torch

    from cotlab import world as w
    from tiny import tiny_policy

    for name, seed in (("base", 0), ("grpo", 1), ("dpo", 2)):
        tiny_policy(seed).save_pretrained(tmp_path / name / "policy")
    runs = {arm: SimpleNamespace(policy=str(tmp_path / "base" / "policy"), guidance_scale=2.0, arm=arm)
            for arm in ("grpo", "dpo")}
    monkeypatch.setattr(rl, "rl_run", lambda cfg, store=None, progress=True: tmp_path / cfg.arm)
    prompts = w.load_suite("geneval")[:3]
    images, titles = policy_samples(runs, prompts, seed=5)
    assert len(images) == len(titles) == 9
    assert [t.split(":")[0] for t in titles] == ["base"] * 3 + ["grpo"] * 3 + ["dpo"] * 3
    direct = tiny_policy(1).sample([p.text for p in prompts], 1, guidance_scale=2.0,
                                   generator=torch.Generator().manual_seed(5)).images
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images[3:6], direct))
    verdicts = w.score_batch(prompts, direct)
    assert titles[3:6] == [f"grpo: {p.text} ({'ok' if s.correct else 'wrong'})" for p, s in zip(prompts, verdicts)]
    with pytest.raises(ValueError, match="at least one run"):
        policy_samples({}, prompts)
