"""Issue 19's RL layer: hold-outs in RL configs and training prompts, held out of pretraining captions (L3), and the
transfer chapter's runs, parts, ratios, claims and positive control (arithmetic on constructed rows: nothing trains)."""
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

import cotlab.experiments.rl as rl
import cotlab.experiments.transfer as tr
from cotlab.checks import ConfigError
from cotlab.policy.pretrain import BASE_TIERS, PRETRAIN_TIERS, base_key, holdout_tier
from cotlab.store import canonical_json
from cotlab.training import ALIGNED_FIELDS, aligned, arm_of, preset, training_prompts
from cotlab.world import HOLDOUTS, CaptionConfig, captioned_scene, load_suite, meaning_twins, scene_codes

# Recorded with the code before hold-outs existed (CaptionConfig without `holdout`): 400 captions of
# np.random.default_rng(1234) with the default config (captions, and the scenes' codes), and 300 of
# np.random.default_rng(7).
CAPTIONS_SHA256 = "1ca99476f5687fb6a25cd7f06faa92e4d6f526675e0832a0937cc3fe6232dde0"
SCENES_SHA256 = "d527e58863bc0c31a48e581765c93ce3b0b8056a683a365eb22d7ae9fc891c85"
CAPTIONS_SEED7_SHA256 = "dba1af05bb46ff856a4159dcd93ca225f2ba1f192b98023b9fae889459dddc36"
FIRST_CAPTIONS = ["a picture of a small square on the top of a cross, a large brown square and a diamond thing",
                  "a picture of a large triangle, a large solid cross and a dotted red cross", "one solid circle"]
# The run-store config of each base tier before hold-outs existed: sha256 of its canonical JSON (asdict then).
BASE_KEY_SHA256 = {"tiny": "b6ed0cf0b242abd5bd5f04686a8a71579b009486b41705577f4991a22443f7f0",
                   "smoke": "e2dd6e753324a3f733c32267c59613173bb8f5e954aee15e84dcc02ad57b78d1",
                   "default": "66ed600056c975fbc3f21cb52ccbe3b7a11f6f87e8e77c6d4933ff247a591e56"}
DEFAULT_BASE_KEY = {"size": "default", "seed": 0, "steps": 2000, "batch_size": 64, "lr": 0.002, "warmup_frac": 0.05,
                    "weight_decay": 0.01, "uncond_prob": 0.1, "start_weight": 1.0, "checkpoint_every": 250,
                    "captions": {"max_objects": 4, "attribute_prob": 0.5, "shape_adjective_prob": 0.2,
                                 "count_prob": 0.25, "relation_prob": 0.3, "subset_prob": 0.3, "prefix_prob": 0.3}}
METRIC = {"name": "metric"}


def sha256(texts) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


# -- RL configs and training prompts ----------------------------------------------------------------------------------

def test_the_holdout_is_an_aligned_config_field_checked_by_name():
    cfg = preset("smoke", "grpo")
    assert cfg.holdout == "L0" and "holdout" in ALIGNED_FIELDS and cfg.to_dict()["holdout"] == "L0"
    assert not aligned(cfg, cfg.replace(holdout="L1-20"))
    with pytest.raises(ConfigError, match="unknown holdout 'L9'; known: " + ", ".join(HOLDOUTS)):
        preset("smoke", "dpo", holdout="L9")
    for bad in (None, 3, "l0"):
        with pytest.raises(ConfigError, match=f"unknown holdout {bad!r}"):
            preset("smoke", "grpo", holdout=bad)


def test_training_prompts_leave_out_what_the_holdout_names():
    every = training_prompts(preset("smoke", "grpo"))
    for name in ("L1-20", "L2-above-below", "L2-count-four"):
        kept = training_prompts(preset("smoke", "grpo", holdout=name))
        assert kept and not any(HOLDOUTS[name].touches(p) for p in kept)
        assert set(kept) < set(every)
        assert set(every) - set(kept) == {p for p in every if HOLDOUTS[name].touches(p)}


def test_a_holdout_is_refused_where_it_cannot_filter(tmp_path):
    (tmp_path / "color_train.txt").write_text("a red circle\n")
    with pytest.raises(ValueError, match="holdout='L1-20' needs a ShapeWorld suite"):
        training_prompts(preset("smoke", "grpo", prompts=str(tmp_path), holdout="L1-20"))
    with pytest.raises(ValueError, match="split 'val' of compbench keeps .* prompts that touch"):
        training_prompts(preset("smoke", "grpo", split="val", holdout="L2-above-below"))


# -- L3: captions without the hold-out, bases cached like the default one ----------------------------------------------

def test_l0_captions_are_byte_identical_to_those_before_holdouts():
    rng, scenes, captions = np.random.default_rng(1234), hashlib.sha256(), []
    for _ in range(400):
        scene, text = captioned_scene(rng)
        captions.append(text)
        scenes.update(scene_codes(scene).tobytes())
    assert captions[:3] == FIRST_CAPTIONS
    assert sha256(captions) == CAPTIONS_SHA256 and scenes.hexdigest() == SCENES_SHA256
    rng = np.random.default_rng(7)
    assert sha256(captioned_scene(rng, CaptionConfig(holdout="L0"))[1] for _ in range(300)) == CAPTIONS_SEED7_SHA256


def test_l3_captions_never_touch_their_holdout():
    rng = np.random.default_rng(3)
    before = [captioned_scene(rng)[1] for _ in range(300)]
    assert any(HOLDOUTS["L3-above-below"].touches(c) for c in before)  # the test can fail
    rng = np.random.default_rng(3)
    after = [captioned_scene(rng, CaptionConfig(holdout="L3-above-below"))[1] for _ in range(300)]
    assert not any(HOLDOUTS["L3-above-below"].touches(c) for c in after)
    for bad, why in (("L9", "not a hold-out"), ("L2-above-below", "RL only"), (["L0"], "not a hold-out")):
        with pytest.raises(ValueError, match=why):
            CaptionConfig(holdout=bad)


def test_the_base_keys_are_unchanged_and_l3_bases_differ_only_in_their_captions():
    for tier, digest in BASE_KEY_SHA256.items():
        assert hashlib.sha256(canonical_json(base_key(PRETRAIN_TIERS[tier])).encode()).hexdigest() == digest
    assert base_key(PRETRAIN_TIERS["default"]) == DEFAULT_BASE_KEY
    l3 = [name for name, h in HOLDOUTS.items() if h.pretraining]
    assert set(PRETRAIN_TIERS) == set(BASE_TIERS) | {f"{t}-{h}" for t in BASE_TIERS for h in l3}
    key = base_key(PRETRAIN_TIERS["default-L3-above-below"])
    assert key["captions"].pop("holdout") == "L3-above-below" and key == DEFAULT_BASE_KEY
    assert holdout_tier("default", "L3-count-four") == "default-L3-count-four"
    assert holdout_tier("default", "L2-count-four") == holdout_tier("default", "L0") == "default"
    with pytest.raises(ValueError, match="no base pretrained without it"):
        holdout_tier("checkpoints/janus", "L3-above-below")


# -- runs and evaluation parts ---------------------------------------------------------------------------------------

def test_holdout_suites_are_the_seen_and_heldout_parts():
    assert tr.holdout_suites("L0") == [("compbench", "val"), ("geneval", "test")]
    assert tr._calls("L0") == [list(rl.SUITES)]  # L0 reads chapters 3-7's evaluations back
    parts = tr.holdout_suites("L2-above-below")
    assert parts == [("compbench", "val-seen"), ("compbench", "val-heldout"), ("geneval", "test-seen"),
                     ("geneval", "test-heldout")]
    assert [tr.ROLES[p] for p in parts] == ["id", "id-heldout", "ood", "ood-heldout"]
    assert all(len({s for s, _ in call}) == len(call) for call in tr._calls("L2-above-below"))
    with pytest.raises(ValueError, match="unknown hold-out"):
        tr.holdout_suites("L4")


def test_part_scores_label_every_row_with_its_part(monkeypatch):
    calls = []

    def fake(policy_dir, name, *, suites, store=None, progress=True, **options):
        calls.append((list(suites), options))
        return [{"suite": s, "category": "overall", "value": 0.5, "continuous": 0.5, "accuracy": 0.5, "se": 0.01}
                for s, _ in suites]

    monkeypatch.setattr(rl, "evaluation_scores", fake)
    rows = tr.part_scores("p", "base", "L1-20", images_per_prompt=2)
    assert [r["part"] for r in rows] == ["compbench:val-seen", "geneval:test-seen", "compbench:val-heldout",
                                         "geneval:test-heldout"]
    assert [r["role"] for r in rows] == ["id", "ood", "id-heldout", "ood-heldout"]
    assert all(options == {"images_per_prompt": 2, "holdout": "L1-20"} for _, options in calls)
    calls.clear()
    rows = tr.part_scores("p", "base", "L0", images_per_prompt=2)
    assert calls == [(list(rl.SUITES), {"images_per_prompt": 2})]  # L0: no holdout option, chapters 3-7's keys
    assert [(r["part"], r["role"]) for r in rows] == [("compbench:val", "id"), ("geneval:test", "ood")]
    calls.clear()
    rows = tr.part_scores("p", "base", "L2-count-four", twin_free=True)
    assert calls[-1] == ([("geneval", "test-seen")], {"holdout": "L2-count-four", "twin_free": True})
    assert (rows[-1]["part"], rows[-1]["role"]) == ("geneval:test-seen+twin-free", "ood-twin-free")
    assert tr.farthest([r["role"] for r in rows]) == "ood-heldout"
    assert tr.farthest(["id", "ood", "ood-twin-free"]) == "ood"


def test_transfer_runs_pair_every_arm_at_every_holdout():
    holdouts = ["L0", "L2-above-below", "L3-above-below"]
    configs, tags = tr.transfer_runs("smoke", [0, 1], METRIC, holdouts)
    assert len(configs) == 3 * 3 * 2
    assert [arm_of(c) for c in configs[:6]] == ["grpo"] * 2 + ["dpo"] * 2 + ["dpo-online"] * 2
    for cfg, tag in zip(configs, tags):
        assert tag == {"holdout": cfg.holdout, "level": cfg.holdout[:2]}
        assert cfg.policy == ("smoke-L3-above-below" if cfg.holdout == "L3-above-below" else "smoke")
    with pytest.raises(ValueError, match="unknown hold-out"):
        tr.transfer_runs("smoke", [0], METRIC, ["L1-99"])


def test_the_overfit_control_makes_many_epochs_over_a_few_dozen_prompts():
    cfg, tag = tr.overfit_control("default", 0, METRIC, "L2-above-below")
    assert (cfg.num_prompts, cfg.holdout, cfg.policy, arm_of(cfg)) == (24, "L2-above-below", "default", "grpo")
    draws = cfg.rounds * cfg.max_steps * cfg.prompts_per_step
    assert draws / cfg.num_prompts >= 20 and tag["epochs"] == round(draws / 24, 2) and tag["control"] == "overfit"
    assert len(training_prompts(cfg)) == 24
    cfg, tag = tr.overfit_control("smoke", 1, METRIC, "L3-count-four", num_prompts=30, epochs=50)
    assert cfg.policy == "smoke-L3-count-four" and cfg.max_steps == math.ceil(50 * 30 / 8) and tag["epochs"] >= 50


# -- transfer ratios, claims and the control on constructed rows -------------------------------------------------------

def _rows(runs: dict, base: dict, holdout="L2-above-below", policy="default", control=None) -> list[dict]:
    """transfer_results-style overall rows: base {role: score}; runs {(arm, seed): {role: score}} (value and
    accuracy both the score, accuracy minus 0.1)."""
    parts = {"id": "compbench:val-seen", "id-heldout": "compbench:val-heldout", "ood": "geneval:test-seen",
             "ood-heldout": "geneval:test-heldout"}

    def row(algorithm, seed, role, score, se=0.01):
        return {"algorithm": algorithm, "reward": "metric" if seed is not None else "none", "policy": policy,
                "holdout": holdout, "seed": seed, "part": parts[role], "role": role, "category": "overall",
                "value": score, "accuracy": score - 0.1, "continuous": score, "se": se,
                **({"control": control} if control and algorithm != "base" else {})}

    out = [row("base", None, role, score) for role, score in base.items()]
    out += [row(arm, seed, role, score) for (arm, seed), scores in runs.items() for role, score in scores.items()]
    return out


def test_transfer_table_divides_heldout_gains_by_the_in_domain_gain_and_guards_near_zero():
    base = {"id": 0.30, "id-heldout": 0.20, "ood": 0.25, "ood-heldout": 0.10}
    runs = {("grpo", 0): {"id": 0.50, "id-heldout": 0.30, "ood": 0.35, "ood-heldout": 0.15},
            ("grpo", 1): {"id": 0.31, "id-heldout": 0.25, "ood": 0.30, "ood-heldout": 0.20}}  # id gain 0.01 < 0.03
    table = tr.transfer_table(_rows(runs, base))
    assert set(table["target"]) == {"id-heldout", "ood", "ood-heldout"} and set(table["metric"]) == {"value",
                                                                                                      "accuracy"}
    seed0 = table[(table["seed"] == 0) & (table["metric"] == "value")].set_index("target")
    assert seed0.loc["ood-heldout", "gain"] == pytest.approx(0.05)
    assert seed0.loc["ood-heldout", "ratio"] == pytest.approx(0.25) and seed0["defined"].all()
    assert seed0.loc["id-heldout", "ratio"] == pytest.approx(0.5)
    seed1 = table[table["seed"] == 1]
    assert not seed1["defined"].any() and seed1["ratio"].isna().all()
    summary = tr.transfer_summary(table)
    row = summary[(summary["target"] == "ood-heldout") & (summary["metric"] == "value")].iloc[0]
    assert row["seeds"] == 2 and row["undefined seeds"] == [1] and row["ratio"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="no base row"):
        tr.transfer_table([r for r in _rows(runs, base) if not (r["algorithm"] == "base" and r["role"] == "ood")])


def _table(grpo_ratios, dpo_ratios, holdout, id_gains=None):
    rows = []
    for arm, ratios in (("grpo", grpo_ratios), ("dpo", dpo_ratios)):
        for seed, ratio in enumerate(ratios):
            defined = not math.isnan(ratio)
            rows.append({"algorithm": arm, "reward": "metric", "policy": "default", "holdout": holdout,
                         "level": tr.level_of(holdout), "seed": seed, "metric": "value",
                         "target": "ood" if holdout == "L0" else "ood-heldout", "part": "x",
                         "id_gain": 0.1 if defined else 0.0, "gain": ratio * 0.1 if defined else 0.0,
                         "ratio": ratio, "defined": defined})
    return rows


def test_transfer_claim_pairs_seeds_per_level_with_holm():
    table = pd.DataFrame(_table([0.9, 0.8, 0.85, 0.95], [0.3, 0.35, 0.2, 0.3], "L2-above-below")
                         + _table([0.5, 0.6, 0.55, 0.5], [0.7, 0.8, 0.75, 0.72], "L1-20")
                         + _table([0.9, 0.8, 0.85, 0.95], [0.3, math.nan, 0.2, 0.3], "L3-above-below")
                         + _table([0.5, 0.7], [0.5, 0.6], "L0"))
    records = {r["holdout"]: r for r in tr.transfer_claim(table)}
    assert records["L2-above-below"]["verdict"] == "replicated"
    assert records["L2-above-below"]["estimate"] == pytest.approx(np.mean([0.6, 0.45, 0.65, 0.65]))
    assert records["L2-above-below"]["p"] >= records["L2-above-below"]["p_unadjusted"]
    assert records["L2-above-below"]["target"] == "ood-heldout" and records["L0"]["target"] == "ood"
    assert records["L1-20"]["verdict"] == "contradicted"
    l3 = records["L3-above-below"]
    assert l3["verdict"] == "inconclusive" and l3["undefined_seeds"] == [1]
    assert l3["seeds"] == 3 and "no transfer ratio" in l3["why"] and l3["p"] == 1
    assert records["L0"]["verdict"] == "inconclusive"  # 2 seeds
    json.dumps(list(records.values()))


def test_control_verdict_says_whether_overfitting_is_visible():
    base = {"id": 0.30, "id-heldout": 0.20, "ood": 0.25, "ood-heldout": 0.10}
    overfit = tr.control_verdict(_rows({("grpo", 0): {"id": 0.45, "ood-heldout": 0.11}}, base, control="overfit"))
    assert overfit["verdict"] == "sees over-fitting" and overfit["target"] == "ood-heldout"
    assert overfit["id_gain"] == pytest.approx(0.15) and overfit["ratio"] == pytest.approx(0.01 / 0.15)
    blind = tr.control_verdict(_rows({("grpo", 0): {"id": 0.45, "ood-heldout": 0.24}}, base, control="overfit"))
    assert blind["verdict"] == "blind"
    flat = tr.control_verdict(_rows({("grpo", 0): {"id": 0.31, "ood-heldout": 0.10}}, base, control="overfit"))
    assert flat["verdict"] == "no in-domain gain" and math.isnan(flat["ratio"])
    # the control is left out of the transfer table
    mixed = _rows({("grpo", 0): {"id": 0.5, "ood-heldout": 0.2}}, base) + [
        r for r in _rows({("grpo", 0): {"id": 0.45, "ood-heldout": 0.11}}, base, control="overfit")
        if r["algorithm"] != "base"]
    assert tr.transfer_table(mixed)["gain"].tolist() == pytest.approx([0.1, 0.1])


def _with_skill(rows, skills: dict, n=40, se=0.05):
    """`_rows` with a skill score per (algorithm, seed, role): skills {(arm or "base", seed or None): {role: skill}}."""
    out = []
    for r in rows:
        skill = skills.get((r["algorithm"], r["seed"]), {}).get(r["role"], math.nan)
        out.append({**r, "skill": skill, "skill_n": float(n if math.isfinite(skill) else 0),
                    "skill_se": se if math.isfinite(skill) else math.nan})
    return out


def test_control_verdicts_judge_the_skill_score_beside_the_others():
    base = {"id": 0.30, "id-heldout": 0.20, "ood": 0.25, "ood-heldout": 0.10}
    rows = _rows({("grpo", 0): {"id": 0.45, "ood-heldout": 0.40}}, base, control="overfit")  # blind on value
    # The held-out skill did not move (0.32 -> 0.33: chance for above/below) while the in-domain one did.
    skills = {("base", None): {"id": 0.40, "ood-heldout": 0.32}, ("grpo", 0): {"id": 0.70, "ood-heldout": 0.33}}
    checks = tr.control_verdicts(_with_skill(rows, skills)).set_index("metric")
    assert list(checks.index) == ["value", "accuracy", "skill"]
    assert checks.loc["value", "verdict"] == "blind" and checks.loc["accuracy", "verdict"] == "blind"
    skill = checks.loc["skill"]
    assert skill["verdict"] == "sees over-fitting"
    assert skill["id_gain"] == pytest.approx(0.30) and skill["gain"] == pytest.approx(0.01)
    assert skill["se"] == pytest.approx(math.sqrt(0.05 ** 2 + 0.05 ** 2))  # the skill score's own SEs
    assert (skill["n"], skill["base_n"], skill["id_n"]) == (40, 40, 40)
    assert (skill["base"], skill["trained"]) == pytest.approx((0.32, 0.33))
    # Blind on the skill too, when the held-out skill rose with the in-domain one.
    rose = {**skills, ("grpo", 0): {"id": 0.70, "ood-heldout": 0.62}}
    assert tr.control_verdict(_with_skill(rows, rose), "skill")["verdict"] == "blind"
    # No image conditioned on in the held-out part: not measured, never a verdict on NaN.
    empty = {**skills, ("grpo", 0): {"id": 0.70}}
    assert tr.control_verdict(_with_skill(rows, empty), "skill")["verdict"] == "not measured"
    # Rows without the skill score: the verdicts of the two metrics, as before.
    assert list(tr.control_verdicts(rows)["metric"]) == ["value", "accuracy"]
    with pytest.raises(ValueError, match="no 'skill' column"):
        tr.control_verdict(rows, "skill")
    # The chapter's table: every policy and part, the control marked, the skill score beside the others.
    table = tr.skill_table(_with_skill(rows, skills))
    assert table.loc[("L2-above-below", "ood-heldout", "grpo (control)", 0), "skill"] == pytest.approx(0.33)
    assert table.loc[("L2-above-below", "id", "base", ""), "skill_n"] == 40
    assert list(table.index.get_level_values("role")[:2]) == ["id", "id"]


def test_the_findings_carry_the_controls_skill_verdict_beside_each_transfer_record():
    from cotlab.experiments.findings import transfer_claims

    base = {"id": 0.30, "ood-heldout": 0.10}
    runs = {(arm, seed): {"id": 0.5, "ood-heldout": 0.3} for arm in ("grpo", "dpo") for seed in range(3)}
    control = [r for r in _rows({("grpo", 0): {"id": 0.45, "ood-heldout": 0.40}}, base, control="overfit")
               if r["algorithm"] != "base"]
    skills = {("base", None): {"id": 0.4, "ood-heldout": 0.32}, ("grpo", 0): {"id": 0.7, "ood-heldout": 0.33}}
    results = pd.DataFrame(_with_skill(_rows(runs, base) + control, skills))
    records = transfer_claims(results)
    assert records and all(r["control"] == "blind" and r["control_skill"] == "sees over-fitting" for r in records)
    assert "control_skill" not in transfer_claims(pd.DataFrame(_rows(runs, base) + control))[0]


def test_transfer_table_gives_the_skill_gain_with_the_images_it_conditions_on():
    base = {"id": 0.30, "ood": 0.25, "ood-heldout": 0.10}
    runs = {("grpo", 0): {"id": 0.50, "ood": 0.35, "ood-heldout": 0.15}}
    skills = {("base", None): {"id": 0.40, "ood": 0.5, "ood-heldout": 0.30},
              ("grpo", 0): {"id": 0.60, "ood": 0.6, "ood-heldout": 0.35}}
    table = tr.transfer_table(_with_skill(_rows(runs, base), skills, n=25))
    assert set(table["metric"]) == {"value", "accuracy", "skill"}
    row = table[(table["metric"] == "skill") & (table["target"] == "ood-heldout")].iloc[0]
    assert row["gain"] == pytest.approx(0.05) and row["id_gain"] == pytest.approx(0.20)
    assert row["ratio"] == pytest.approx(0.25) and (row["n"], row["base_n"]) == (25, 25)
    assert table.loc[table["metric"] == "value", "n"].isna().all()
    # Without a skill column, the two metrics as before.
    assert set(tr.transfer_table(_rows(runs, base))["metric"]) == {"value", "accuracy"}


def test_transfer_results_evaluate_each_base_once_under_its_holdout(monkeypatch, tmp_path):
    evaluated = []

    def fake_scores(policy_dir, name, *, suites, store=None, progress=True, **options):
        evaluated.append((name, options.get("holdout", "L0")))
        score = 0.3 if name.startswith("base") else 0.5
        return [{"suite": s, "category": "overall", "value": score, "continuous": score, "accuracy": score,
                 "se": 0.01} for s, _ in suites]

    def fake_run(cfg, store=None, progress=True):
        path = tmp_path / f"{arm_of(cfg)}-{cfg.holdout}-{cfg.seed}"
        path.mkdir()
        (path / "metrics.jsonl").write_text(json.dumps({"reward_mean": 0.5}) + "\n")
        return path

    monkeypatch.setattr(rl, "evaluation_scores", fake_scores)
    monkeypatch.setattr(rl, "rl_run", fake_run)
    monkeypatch.setattr(rl, "base_dir", lambda policy, store=None: tmp_path / policy)
    monkeypatch.setattr("cotlab.training.health.run_health", lambda rows: "ok")
    configs, tags = tr.transfer_runs("smoke", [0], METRIC, ["L0", "L2-count-four"], arms=("grpo", "dpo"))
    results = tr.transfer_results(configs, tags, store=object(), images_per_prompt=1)
    bases = [e for e in evaluated if e[0].startswith("base")]
    assert bases == [("base smoke", "L0"), ("base smoke", "L2-count-four"), ("base smoke", "L2-count-four")]
    assert set(results[results["algorithm"] == "base"]["holdout"]) == {"L0", "L2-count-four"}
    table = tr.transfer_table(results)
    assert set(table["algorithm"]) == {"grpo", "dpo"} and table["gain"].tolist() == pytest.approx([0.2] * len(table))
    assert table[table["holdout"] == "L0"]["target"].tolist() == ["ood"] * 4  # 2 arms x 2 metrics


# -- meaning twins -----------------------------------------------------------------------------------------------------

def test_twin_free_prompts_have_no_meaning_twin_among_the_holdouts_training_prompts():
    for holdout, split in (("L0", "test"), ("L2-above-below", "test-seen")):
        free = tr.twin_free_prompts(holdout)
        assert free and not any(meaning_twins(free, load_suite("compbench", "train", holdout=holdout)))
        assert len(free) < len(load_suite("geneval", split, holdout=holdout))
    table = tr.overlap_table(["L0", "L2-above-below"])
    overall = table[(table["task"] == "overall")].set_index(["holdout", "role"])
    assert overall.loc[("L0", "ood"), "twin-free"] == len(tr.twin_free_prompts("L0"))
    assert overall.loc[("L2-above-below", "ood-heldout"), "twin share"] == 0  # held out: nothing like it trained
    assert set(overall.loc["L0"].index) == {"id", "ood"}
