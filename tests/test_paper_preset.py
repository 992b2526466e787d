"""The paper-scale path end to end on a tiny random Janus: the `janus-pro-7b` preset (bf16, gradient checkpointing,
tiled log-probs, offline DPO, only the language model training) under `accelerate launch --cpu --num_processes 2`,
on official-format T2I-CompBench prompt files and a CLIPScore reward, with everything it would download replaced by
tiny files built here."""
import json
import os
import subprocess
import sys

import pytest
import torch

from cotlab.experiments.paper_scale import tiny_compbench, tiny_janus_pro
from cotlab.policy import JanusPolicy
from cotlab.training import preset
from cotlab.training.trainer import load_policy, training_prompts

@pytest.fixture(scope="module")
def janus_pro_like(tmp_path_factory):
    return tiny_janus_pro(tmp_path_factory.mktemp("janus_pro_like"))


@pytest.fixture(scope="module")
def compbench_dir(tmp_path_factory):
    return tiny_compbench(tmp_path_factory.mktemp("t2i_compbench"))


def test_the_presets_follow_the_paper_and_t2i_r1():
    for name, checkpoint in (("janus-pro-1b", "deepseek-community/Janus-Pro-1B"),
                             ("janus-pro-7b", "deepseek-community/Janus-Pro-7B")):
        grpo, dpo = preset(name, "grpo"), preset(name, "dpo")
        assert grpo.policy == dpo.policy == checkpoint
        assert (grpo.num_generations, grpo.num_iterations, grpo.learning_rate, grpo.beta) == (4, 1, 1e-6, 0.01)
        assert (grpo.guidance_scale, grpo.temperature, grpo.mixed_precision) == (5.0, 1.0, "bf16")
        assert grpo.gradient_checkpointing and grpo.tiled_logprobs and grpo.trainable == ("model.language_model",)
        assert (dpo.beta, dpo.learning_rate) == (0.1, 1e-5)


def test_missing_checkpoints_and_prompt_files_say_what_to_get(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="hf download deepseek-community/Janus-Pro-7B"):
        load_policy("deepseek-community/Janus-Pro-7B")
    monkeypatch.delenv("COTLAB_T2I_COMPBENCH", raising=False)
    with pytest.raises(FileNotFoundError, match="Karine-Huang/T2I-CompBench"):
        training_prompts(preset("janus-pro-7b", "grpo"))


def test_official_prompt_files_are_the_training_prompts(compbench_dir, monkeypatch):
    monkeypatch.setenv("COTLAB_T2I_COMPBENCH", str(compbench_dir))
    prompts = training_prompts(preset("janus-pro-7b", "grpo", num_prompts=5))
    assert len(prompts) == 5 and all(p.startswith("a ") for p in prompts)
    (compbench_dir / "shape_train.txt").write_text("a red circle\n")  # 1 line, not the official 700
    try:
        with pytest.raises(ValueError, match="shape_train.txt"):
            training_prompts(preset("janus-pro-7b", "grpo"))
    finally:
        (compbench_dir / "shape_train.txt").unlink()


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "dpo"])
def test_the_paper_preset_trains_under_accelerate_on_two_cpu_processes(janus_pro_like, compbench_dir, clip_dir,
                                                                       tmp_path, algorithm):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no",
               "-m", "cotlab", "train", algorithm, "--preset", "janus-pro-7b", "--output-dir", str(out),
               "--set", f"policy={janus_pro_like}", "--set", f"prompts={compbench_dir}",
               "--set", "reward=clipscore", "--set", f"reward_options={{path: {clip_dir}}}",
               "--set", "max_steps=2", "--set", "prompts_per_step=2", "--set", "sample_batch_images=8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["budget/images_sampled"] >= 0 and torch.isfinite(torch.tensor(r["loss/total"])) for r in rows)
    assert sum(r["budget/images_sampled"] for r in rows) == 2 * 2 * 4  # prompts x steps x G, over both processes
    saved = json.loads((out / "checkpoint-000002" / "config.json").read_text())
    assert saved["mixed_precision"] == "bf16" and saved["gradient_checkpointing"] and saved["tiled_logprobs"]
    trained = JanusPolicy.from_pretrained(out / "checkpoint-000002" / "policy")
    assert trained.spec.image_tokenizer == "janus_vq"
