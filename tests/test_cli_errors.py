"""The command line's errors: a user's mistake is one line on stderr and exit code 2, before anything loads; a crash
keeps its traceback. In process (`cli.main`), nothing trains: `cotlab.training.train` is replaced where a run would
start."""
import json

import pytest

import cotlab.training
from cotlab import cli


@pytest.fixture
def calls(monkeypatch):
    """Replace `cotlab.training.train` with a recorder: a test that got this far passed every check."""
    seen = []
    monkeypatch.setattr(cotlab.training, "train", lambda cfg, **kwargs: seen.append((cfg, kwargs)))
    monkeypatch.setattr(cli, "_check_memory", lambda cfg: None)
    return seen


def user_error(capsys, argv, *expected):
    """Run `cotlab argv`; assert exit code 2 and one line on stderr naming each of `expected`, no traceback."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"cotlab {argv[0]}: "), err
    for text in expected:
        assert text in err, err
    return err


def train(out, *sets, algorithm="grpo", preset="smoke"):
    return ["train", algorithm, "--output-dir", str(out), *(["--preset", preset] if preset else []),
            *(a for s in sets for a in ("--set", s))]


@pytest.mark.parametrize("algorithm, item, expected", [
    ("dpo", "beta=.nan", "beta must be a finite number (> 0) for DPO, got nan"),
    ("grpo", "learning_rate=.inf", "learning_rate must be a finite number (>= 0), got inf"),
    ("grpo", "learning_rate=inf", "learning_rate must be a finite number (>= 0), got 'inf'"),
    ("grpo", "max_grad_norm=.nan", "max_grad_norm must be a finite number (> 0)"),
    ("grpo", "beta=.nan", "beta must be a finite number (>= 0), got nan"),
    ("grpo", "epsilon=.nan", "epsilon must be a finite number"),
    ("grpo", "guidance_scale=.inf", "guidance_scale must be a finite number"),
    ("grpo", "max_steps=1.5", "max_steps must be an integer (at least 1), got 1.5"),
    ("grpo", "top_k=2.5", "top_k must be an integer (at least 0), got 2.5"),
    ("grpo", "prompts_per_step=true", "prompts_per_step must be an integer (at least 1), got True"),
    ("grpo", "num_prompts=-3", "num_prompts must be at least 1 (None: all of them), got -3"),
    ("grpo", "learning_rate=abc", "learning_rate must be a finite number (>= 0), got 'abc'"),
    ("grpo", "reward_options=abc", "reward_options must be a mapping with string keys, got 'abc'"),
    ("grpo", "mixed_precision=fp8", "unknown mixed_precision 'fp8'"),
    ("grpo", "learning_rat=1e-5", "no field 'learning_rat'; did you mean 'learning_rate'"),
])
def test_bad_fields_are_user_errors(capsys, calls, tmp_path, algorithm, item, expected):
    user_error(capsys, train(tmp_path, item, algorithm=algorithm), expected)
    user_error(capsys, train(tmp_path, item, algorithm=algorithm, preset=None), expected)
    assert not calls


@pytest.mark.parametrize("item, expected", [
    ("learning_rate", "--set learning_rate: expected key=value"),
    ("=3", "--set =3: expected key=value"),
    ("report_to=[jsonl", "--set report_to=[jsonl: the value is not valid YAML"),
])
def test_bad_sets_name_the_set(capsys, calls, tmp_path, item, expected):
    user_error(capsys, train(tmp_path, item), expected)


@pytest.mark.parametrize("name, text, expected", [
    ("missing.yaml", None, "cannot read"),
    ("bad.yaml", "max_steps: [", "not valid YAML"),
    ("bad.json", "{max_steps: 3}", "not valid JSON"),
    ("list.yaml", "- max_steps\n- 3\n", "expected a mapping of config fields, got a list"),
    ("typo.json", '{"max_step": 3}', "no field 'max_step'"),
    ("other.json", '{"algorithm": "dpo"}', "for 'dpo', not 'grpo'"),
])
def test_bad_config_files_name_the_file(capsys, calls, tmp_path, name, text, expected):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    user_error(capsys, [*train(tmp_path / "out"), "--config", str(path)], f"config file {path}: ", expected)


def test_a_bad_value_in_a_config_file_names_the_field(capsys, calls, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: .nan\n")
    user_error(capsys, [*train(tmp_path / "out"), "--config", str(path)], "learning_rate", "nan")


def test_good_input_reaches_train_with_overwrite(calls, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("max_steps: 3\nlearning_rate: 1e-5\nmixed_precision: no\n")
    assert cli.main([*train(tmp_path / "out", "num_prompts=5"), "--config", str(path), "--overwrite"]) == 0
    (cfg, kwargs), = calls
    assert kwargs == {"resume_from": None, "overwrite": True}
    assert (cfg.max_steps, cfg.learning_rate, cfg.mixed_precision, cfg.num_prompts) == (3, 1e-5, "no", 5)
    assert cfg.policy == "smoke"  # the preset's, not overwritten by the file's defaults
    assert cli.main([*train(tmp_path / "out"), "--resume"]) == 0
    assert calls[-1][1] == {"resume_from": "latest", "overwrite": False}


def test_resume_and_overwrite_together_are_refused(capsys, calls, tmp_path):
    user_error(capsys, [*train(tmp_path), "--resume", "--overwrite"], "--resume", "--overwrite", "not both")
    assert not calls


def test_no_output_dir_is_a_user_error(capsys, calls):
    user_error(capsys, ["train", "grpo", "--preset", "smoke"], "give --output-dir")


def test_unknown_preset_is_a_user_error(capsys, calls, tmp_path):
    user_error(capsys, train(tmp_path, preset="huge"), "unknown preset 'huge'")


@pytest.mark.parametrize("argv", [["--debug", "train"], ["train"]])
def test_debug_shows_the_traceback(capsys, calls, tmp_path, argv):
    args = [*argv, "grpo", "--preset", "smoke", "--output-dir", str(tmp_path), "--set", "max_steps=0"]
    if argv == ["train"]:
        args.append("--debug")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == "cotlab train: max_steps must be at least 1, got 0"


# -- train-reward and plan ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("item, expected", [
    ("steps=-5", "steps must be at least 1, got -5"),
    ("num_prompts=0", "num_prompts must be at least 1, got 0"),
    ("label_noise=.nan", "label_noise must be a finite number"),
    ("step=3", "unknown option(s) step (did you mean steps?)"),
])
@pytest.mark.parametrize("out", [False, True])
def test_train_reward_refuses_bad_fields_before_training(capsys, monkeypatch, tmp_path, item, expected, out):
    import cotlab.rewards.learned as learned

    def refuse(*args, **kwargs):
        raise AssertionError("trained despite a bad config")

    monkeypatch.setattr(learned, "train_reward_model", refuse)
    monkeypatch.setattr(learned, "learned_reward", refuse)
    user_error(capsys, ["train-reward", "preference", "--set", item, *(["--output-dir", str(tmp_path)] if out else [])],
               expected)


def test_plan_names_only_what_is_unknown(capsys):
    err = user_error(capsys, ["plan", "--model", "janus-pro-9b"], "unknown model 'janus-pro-9b'", "janus-pro-1b")
    assert "gpu" not in err
    err = user_error(capsys, ["plan", "--gpu", "h200"], "unknown gpu 'h200'", "h100-80gb")
    assert "model" not in err
    user_error(capsys, ["plan", "--model", "x", "--gpu", "y"], "unknown model 'x'", "unknown gpu 'y'")
    user_error(capsys, ["plan", "--prompts-per-step", "0"], "prompts_per_step must be at least 1, got 0")


# -- what counts as a user error --------------------------------------------------------------------------------------

def test_a_message_exit_is_a_user_error(capsys, monkeypatch):
    def handler(args):
        raise SystemExit("cotlab plan: nothing to plan")

    monkeypatch.setattr(cli, "_plan", handler)
    assert user_error(capsys, ["plan"]) == "cotlab plan: nothing to plan\n"


def outside_cotlab(error):
    raise error


@pytest.mark.parametrize("crash, error", [
    (lambda: 1 / 0, ZeroDivisionError),
    (lambda: json.loads("{"), json.JSONDecodeError),  # a ValueError, but raised inside a library: a crash
    (lambda: outside_cotlab(ValueError("raised outside cotlab's source")), ValueError),
    (lambda: open("/nonexistent/cotlab/file"), FileNotFoundError),  # not a deliberate check of cotlab's
    (lambda: None + 1, TypeError),
])
def test_crashes_keep_their_traceback(capsys, monkeypatch, crash, error):
    def handler(args):
        crash()

    monkeypatch.setattr(cli, "_plan", handler)
    with pytest.raises(error):
        cli.main(["plan"])


def test_a_crash_inside_training_propagates(monkeypatch, calls, tmp_path):
    def train_crashes(cfg, **kwargs):
        import torch

        torch.zeros(2) @ torch.zeros(3)  # RuntimeError from torch

    monkeypatch.setattr(cotlab.training, "train", train_crashes)
    with pytest.raises(RuntimeError):
        cli.main(train(tmp_path))


def test_a_deliberate_cotlab_error_deep_in_a_verb_is_a_user_error(capsys, monkeypatch, tmp_path):
    def train_refuses(cfg, **kwargs):
        from cotlab.rewards import get

        get("no-such-reward")  # cotlab's own check, raised in cotlab's source

    monkeypatch.setattr(cotlab.training, "train", train_refuses)
    monkeypatch.setattr(cli, "_check_memory", lambda cfg: None)
    user_error(capsys, train(tmp_path), "unknown reward model 'no-such-reward'")
