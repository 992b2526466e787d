"""Configs are checked field by field on creation: type, finiteness, range; errors name the field, value and rule."""
import math
from dataclasses import fields

import numpy as np
import pytest

from cotlab.checks import ConfigError, ConfigTypeError, Rule, check, load_yaml
from cotlab.rewards.learned import LearnedRewardConfig, config_from_options
from cotlab.training.config import CONFIGS, PRESETS, DPOConfig, GRPOConfig, RLConfig, field_help, preset

NAN, INF = float("nan"), float("inf")
# Bad values per field of both algorithms: NaN, inf, bools, floats in integer fields, strings, out-of-range numbers.
BAD_SHARED = {
    "learning_rate": [NAN, INF, -INF, -1e-5, "abc", "1e-5", True, None],
    "weight_decay": [NAN, -0.1, False],
    "max_grad_norm": [NAN, INF, 0.0, -1.0],
    "adam_beta1": [NAN, 1.0, -0.1],
    "adam_beta2": [INF, 1.5],
    "guidance_scale": [INF, NAN, 0.5, "5"],
    "temperature": [NAN, 0.0, -1.0, INF],
    "max_steps": [1.5, 2.0, 0, -1, True, "8", NAN, None],
    "rounds": [0, 1.0],
    "prompts_per_step": [True, 0, 2.5],
    "num_generations": [1, 2.5, False],
    "gradient_accumulation_steps": [0, 1.5],
    "top_k": [2.5, -1, True],
    "sample_batch_images": [0, 8.0],
    "warmup_steps": [-1, 0.5],
    "save_steps": [-1, 1.5],
    "seed": [-1, 0.5, "0"],
    "num_prompts": [-3, 0, 1.5, True],
    "categories": [[], "color", [1], 3],
    "reward_options": ["abc", [1, 2], {1: 2}],
    "reward": [3, None],
    "prompts": [None],
    "policy": [3, None],
    "trainable": [(), "model", [1]],
    "report_to": ["jsonl", ["wandb"]],
    "reference": ["latest", 1],
    "logprob_mode": ["full"],
    "mixed_precision": [False, "fp8"],
    "tiled_logprobs": [1, "yes"],
    "holdout": ["L9", None, 3, "l0"],
    "probe_every": [-1, 2.5, True],
    "probe_prompts": [0, 1.5, None],
    "gradient_checkpointing": [0],
    "output_dir": [3],
}
BAD = {
    GRPOConfig: {**BAD_SHARED, "beta": [NAN, INF, -0.1], "epsilon": [NAN, -0.2, INF], "epsilon_high": [NAN, -1.0],
                 "num_iterations": [0, 1.5], "loss_type": ["ppo"], "scale_rewards": ["max"]},
    DPOConfig: {**BAD_SHARED, "beta": [NAN, INF, 0.0, -0.1], "label_smoothing": [NAN, 0.5, -0.1],
                "margin_threshold": [NAN, -0.1], "loss_type": ["kto"], "pair_selection": ["best"],
                "sampling": ["onlne", 1, None]},
}
CASES = [pytest.param(cls, name, value, id=f"{cls.algorithm}-{name}={value!r}")
         for cls, table in BAD.items() for name, values in table.items() for value in values]


@pytest.mark.parametrize("cls, name, value", CASES)
def test_a_bad_value_is_refused_naming_the_field_and_the_value(cls, name, value):
    with pytest.raises(ValueError) as info:
        cls(**{name: value})
    message = str(info.value)
    shown = [repr(value), str(value), *(map(repr, value) if isinstance(value, list) else ())]  # or the bad item
    assert name in message and any(s in message for s in shown), message


@pytest.mark.parametrize("cls", [GRPOConfig, DPOConfig])
def test_every_field_has_a_rule_and_the_tables_cover_them(cls):
    assert {f.name for f in fields(cls)} == set(cls.RULES)
    assert set(BAD[cls]) == {f.name for f in fields(cls)} - {"split"}  # split: any string


@pytest.mark.parametrize("cls, name, value, expected", [
    (GRPOConfig, "learning_rate", INF, "learning_rate must be a finite number (>= 0), got inf"),
    (GRPOConfig, "max_grad_norm", 0.0, "max_grad_norm must be > 0 (0 would zero every gradient), got 0.0"),
    (GRPOConfig, "beta", NAN, "beta must be a finite number (>= 0), got nan"),
    (DPOConfig, "beta", NAN, "beta must be a finite number (> 0) for DPO, got nan"),
    (GRPOConfig, "max_steps", 1.5, "max_steps must be an integer (at least 1), got 1.5"),
    (GRPOConfig, "top_k", 2.5, "top_k must be an integer (at least 0), got 2.5"),
    (GRPOConfig, "prompts_per_step", True, "prompts_per_step must be an integer (at least 1), got True"),
    (GRPOConfig, "num_prompts", -3, "num_prompts must be at least 1 (None: all of them), got -3"),
    (GRPOConfig, "learning_rate", "abc", "learning_rate must be a finite number (>= 0), got 'abc'"),
    (GRPOConfig, "reward_options", "abc", "reward_options must be a mapping with string keys, got 'abc'"),
    (GRPOConfig, "categories", [], "categories must be None or a non-empty list of strings, got []"),
    (GRPOConfig, "epsilon_high", -1.0, "epsilon_high must be >= 0 (None: epsilon), got -1.0"),
    (DPOConfig, "label_smoothing", 0.5, "label_smoothing must be in [0, 0.5), got 0.5"),
    (GRPOConfig, "report_to", ["wandb"], "unknown report_to 'wandb'; known: jsonl, tensorboard"),
    (GRPOConfig, "loss_type", "ppo", "unknown loss_type 'ppo' for GRPO; known: grpo, bnpo, dr_grpo, dapo"),
])
def test_messages_state_the_rule(cls, name, value, expected):
    with pytest.raises(ValueError) as info:
        cls(**{name: value})
    assert str(info.value) == expected


def test_wrong_types_are_type_errors_too():
    with pytest.raises(TypeError):
        GRPOConfig(max_steps=1.5)
    with pytest.raises(ConfigTypeError):
        GRPOConfig(learning_rate=NAN)
    with pytest.raises(ConfigError) as info:  # in range terms only: a ValueError, not a TypeError
        GRPOConfig(max_steps=0)
    assert not isinstance(info.value, TypeError)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("algorithm", ["grpo", "dpo"])
def test_every_preset_still_constructs(name, algorithm):
    cfg = preset(name, algorithm)
    assert type(cfg) is CONFIGS[algorithm]
    assert CONFIGS[algorithm].from_dict(cfg.to_dict()) == cfg


def test_good_values_construct_and_are_normalised(tmp_path):
    cfg = GRPOConfig(max_steps=np.int64(3), learning_rate=1, guidance_scale=np.float32(2.5), categories=["color"],
                     trainable=["model"], report_to=[], output_dir=tmp_path, num_prompts=None, epsilon_high=0.3,
                     reward_options={"w": 1}, logprob_mode=None, top_k=0, beta=0.0)
    assert type(cfg.max_steps) is int and cfg.max_steps == 3
    assert cfg.learning_rate == 1 and type(cfg.guidance_scale) is float
    assert cfg.categories == ("color",) and cfg.trainable == ("model",) and cfg.report_to == ()
    assert cfg.output_dir == str(tmp_path)
    assert DPOConfig(beta=1e-3, label_smoothing=0.0, margin_threshold=0).beta == 1e-3


def test_cross_field_rule_still_applies():
    with pytest.raises(ValueError, match="prompts_per_step=6 must be divisible by gradient_accumulation_steps=4"):
        GRPOConfig(prompts_per_step=6, gradient_accumulation_steps=4)


def test_from_dict_refuses_a_non_mapping():
    with pytest.raises(ValueError, match="built from a mapping"):
        GRPOConfig.from_dict(["max_steps", 3])


@pytest.mark.parametrize("text, expected", [
    ("", "cannot read"), ("max_steps: [", "not valid YAML"), ("- 1\n- 2", "expected a mapping"),
    ("learning_rat: 1", "no field 'learning_rat'; did you mean 'learning_rate'"),
    ("algorithm: dpo", "for 'dpo', not 'grpo'"),
])
def test_config_files_errors_name_the_file(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    if text:
        path.write_text(text)
    with pytest.raises(ValueError) as info:
        GRPOConfig.read(path)
    assert str(path) in str(info.value) and expected in str(info.value)
    assert "\n" not in str(info.value)


def test_config_files_bad_json_names_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{max_steps: 3}")
    with pytest.raises(ValueError, match=f"config file {path}: not valid JSON"):
        GRPOConfig.load(path)


def test_config_files_read_only_what_they_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("algorithm: grpo\nlearning_rate: 1e-5\nmixed_precision: no\nmax_steps: 3\n")
    assert GRPOConfig.read(path) == {"learning_rate": 1e-5, "mixed_precision": "no", "max_steps": 3}
    assert GRPOConfig.load(path).learning_rate == 1e-5
    (tmp_path / "empty.yaml").write_text("# nothing set\n")
    assert GRPOConfig.read(tmp_path / "empty.yaml") == {}


def test_yaml_reads_scientific_numbers_and_only_true_false_as_booleans():
    assert load_yaml("1e-5") == 1e-5 and load_yaml("-2E3") == -2000.0 and load_yaml("1.5") == 1.5
    assert load_yaml("no") == "no" and load_yaml("on") == "on" and load_yaml("true") is True
    assert load_yaml("[jsonl]") == ["jsonl"] and load_yaml("3") == 3 and math.isinf(load_yaml(".inf"))
    assert load_yaml("abc") == "abc" and load_yaml("") is None


def test_the_checker_alone():
    assert check("x", None, Rule("int", low=1, optional=True)) is None
    assert check("x", 0.25, Rule("float", low=0, high=1)) == 0.25
    with pytest.raises(ConfigError, match=r"x must be in \(0, 1\], got 0"):
        check("x", 0, Rule("float", low=0, high=1, low_open=True))
    with pytest.raises(KeyError):
        check("x", 1, Rule("complex"))


# -- the learned reward models' config ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("steps", -5), ("steps", 0), ("steps", 1.5), ("num_prompts", 0), ("num_prompts", True), ("variants", 1),
    ("label_noise", NAN), ("label_noise", 1.5), ("artifact_prob", -0.1), ("lr", 0.0), ("lr", INF),
    ("batch_size", 0), ("width", 0), ("heads", 2.0), ("seed", -1), ("quality_weight", NAN), ("breadth", "ood"),
])
def test_learned_reward_config_refuses_bad_values(name, value):
    with pytest.raises(ValueError) as info:
        LearnedRewardConfig(**{name: value})
    assert name in str(info.value) and str(value) in str(info.value), str(info.value)


def test_learned_reward_config_cross_rule_and_options():
    with pytest.raises(ValueError, match="width=10 must be divisible by heads=4"):
        LearnedRewardConfig(width=10)
    with pytest.raises(TypeError, match="did you mean steps"):
        config_from_options("preference", {"step": 3})
    assert config_from_options("judge", {"steps": 5}).breadth == "id+captions"
    assert {f.name for f in fields(LearnedRewardConfig)} == set(LearnedRewardConfig.RULES)


def test_rl_config_defaults_construct():
    assert RLConfig().max_steps == 100 and GRPOConfig() and DPOConfig()


def test_a_pretraining_hold_out_needs_the_base_pretrained_without_it():
    from cotlab.training import GRPOConfig

    with pytest.raises(ConfigError, match="use policy='default-L3-above-below'"):
        GRPOConfig(holdout="L3-above-below", policy="default")
    assert GRPOConfig(holdout="L3-above-below", policy="default-L3-above-below").policy == "default-L3-above-below"
    assert GRPOConfig(holdout="L2-above-below", policy="default").holdout == "L2-above-below"


@pytest.mark.parametrize("cls", [GRPOConfig, DPOConfig])
def test_every_field_has_one_line_of_help(cls):
    helps = field_help(cls)
    assert list(helps) == [f.name for f in fields(cls)]
    assert [name for name, text in helps.items() if not text] == []
    assert helps["beta"] != field_help(RLConfig)["beta"] if cls is DPOConfig else helps["beta"] == field_help(RLConfig)["beta"]


def test_help_config_prints_every_field_with_its_value_and_exits(capsys):
    from cotlab import cli

    assert cli.main(["train", "dpo", "--preset", "smoke", "--set", "learning_rate=3e-4", "--help-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [f.name for f in fields(DPOConfig)]
    (lr,) = [line for line in lines if line.startswith("learning_rate ")]
    assert "0.0003" in lr and "AdamW step size" in lr


def test_overrides_are_echoed_against_the_preset():
    from cotlab.cli import _overrides_line

    cfg = preset("smoke", "grpo", learning_rate=1e-4, seed=0)
    line = _overrides_line(cfg, "smoke", {"learning_rate": 1e-4, "seed": 0, "output_dir": "x"})
    assert line == "[cotlab] grpo from preset 'smoke'; overrides: learning_rate=0.0001 (was 0.001)"
    assert _overrides_line(preset("smoke", "dpo"), "smoke", {}).endswith("no overrides")
