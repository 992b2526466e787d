"""The cost model of cotlab.experiments.plan (its parameter counts against transformers, hand-computed totals,
monotonic invariants, the fit warning, bad input), the accelerate configs under cotlab/training/accelerate, and the
study graph's plan of the domain-gap chapter (cotlab.experiments.graph)."""
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env, prepare_simple_launcher_cmd_env
from transformers import JanusConfig, JanusForConditionalGeneration

from cotlab import cli
from cotlab.experiments import plan
from cotlab.experiments.plan import (GIB, GPUS, MODELS, STRATEGIES, GPUSpec, MemoryPlanWarning, check_config,
                                     check_fits, estimate, fit_summary, format_plan, model_spec, plan_table,
                                     policy_model)
from cotlab.training.config import RLConfig, preset

ACCELERATE = Path(__file__).resolve().parents[1] / "cotlab" / "training" / "accelerate"


@pytest.fixture(scope="module", params=sorted(MODELS))
def meta_model(request):
    """The transformers model of a spec, built on the meta device (no memory, no download)."""
    spec = MODELS[request.param]
    h = spec.hidden_size
    config = JanusConfig(
        text_config=dict(model_type="llama", hidden_size=h, num_hidden_layers=spec.num_layers,
                         num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_heads,
                         intermediate_size=spec.intermediate_size, vocab_size=spec.vocab_size),
        vision_config=dict(projection_dim=h), vq_config=dict(projection_dim=h, image_token_embed_dim=h),
        tie_word_embeddings=False)
    with torch.device("meta"):
        return spec, JanusForConditionalGeneration(config)


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_transformers(meta_model):
    spec, model = meta_model
    inner = model.model
    assert spec.total_params == count(model)
    assert spec.language_model_params == count(inner.language_model)
    assert spec.layer_params == count(inner.language_model.layers[0])
    assert spec.generation_head_params == count(inner.generation_head)
    assert spec.generation_aligner_params == count(inner.generation_aligner)
    assert spec.vision_params == count(inner.vision_model) and spec.vq_params == count(inner.vqmodel)
    # the FSDP config wraps the decoder layers by class name
    fsdp = load_config_from_file(str(ACCELERATE / "fsdp_8gpu.yaml")).fsdp_config
    assert type(inner.language_model.layers[0]).__name__ == fsdp["fsdp_transformer_layer_cls_to_wrap"]


def test_a_small_run_by_hand():
    """1B GRPO on one H100, 2 prompts x 2 images, 100-token prompts: every term from the raw numbers."""
    row = estimate("janus-pro-1b", "grpo", num_gpus=1, strategy="ddp", prompts_per_step=2, num_generations=2,
                   prompt_tokens=100, tiled_logprobs=False, gradient_checkpointing=True, beta=0.01)
    p_all, p_lm = 2_076_636_811, 1_442_940_928
    h, layers, inter, seq = 2048, 24, 5632, 100 + 576
    rows = 4  # 2 prompts x 2 images, one micro-batch
    static = 2 * p_all + 2 * p_all + 12 * p_lm + 2 * p_lm  # weights, reference, master + Adam, gradients
    activations = rows * seq * (2 * h * layers + 20 * h + 8 * inter)
    logits = rows * 576 * 16384 * 12
    kv_cache = 2 * rows * 2 * layers * (seq + 100) * h * 2  # two rows per image (CFG); the prefill's cache too
    assert row["activations_gib"] * GIB == pytest.approx(activations, rel=1e-12)
    assert row["kv_cache_gib"] * GIB == pytest.approx(kv_cache, rel=1e-12)
    assert row["total_gib"] * GIB == pytest.approx(static + max(activations + logits, kv_cache), rel=1e-12)
    assert kv_cache > activations + logits and row["peak_phase"] == "sampling" and row["fits"]
    layer, aligner, head = 4 * h * h + 3 * h * inter + 2 * h, 8 * h + h + h * h + h, h * h + h + h * 16384 + 16384
    flop_params = layers * layer + aligner + head
    flops_rate = 0.4 * 989e12
    assert row["update_s"] == pytest.approx(6 * flop_params * rows * seq * 4 / 3 / flops_rate, rel=1e-12)
    assert row["reference_s"] == pytest.approx(2 * flop_params * rows * seq / flops_rate, rel=1e-12)
    assert row["scoring_s"] == pytest.approx(0.02 * rows)
    assert row["step_s"] == pytest.approx(row["sampling_s"] + row["scoring_s"] + row["reference_s"] + row["update_s"])


def test_zero3_gathers_what_it_shards():
    row = estimate("janus-pro-7b", "dpo", num_gpus=8, strategy="zero3")
    spec = MODELS["janus-pro-7b"]
    assert row["weights_gib"] * GIB == pytest.approx(2 * spec.total_params / 8)
    assert row["optimizer_gib"] * GIB == pytest.approx(12 * spec.language_model_params / 8)
    outside_layers = spec.total_params - (spec.num_layers - 2) * spec.layer_params
    assert row["update_gather_gib"] * GIB == pytest.approx(7 / 8 * 2 * outside_layers)
    assert row["sampling_gather_gib"] * GIB == pytest.approx(7 / 8 * 2 * spec.total_params)
    assert row == estimate("janus-pro-7b", "dpo", num_gpus=8, strategy="fsdp") | {"strategy": "zero3"}


def test_monotonic_invariants():
    table = plan_table()
    assert len(table) == 2 * 2 * 4
    by = table.set_index(["model", "algorithm", "num_gpus", "strategy"])
    for algorithm in ("grpo", "dpo"):
        for n, strategy in ((1, "ddp"), (8, "zero2"), (8, "zero3"), (8, "fsdp")):
            small = by.loc[("janus-pro-1b", algorithm, n, strategy)]
            large = by.loc[("janus-pro-7b", algorithm, n, strategy)]
            assert large["total_gib"] > small["total_gib"] and large["step_s"] > small["step_s"]
        for model in MODELS:
            ddp, zero2, zero3 = (estimate(model, algorithm, num_gpus=8, strategy=s)["total_gib"]
                                 for s in ("ddp", "zero2", "zero3"))
            assert zero3 < zero2 < ddp
    # GRPO without a KL term keeps no reference
    assert estimate("janus-pro-1b", "grpo", beta=0.0)["reference_gib"] == 0
    assert estimate("janus-pro-1b", "grpo", beta=0.0)["total_gib"] < estimate("janus-pro-1b", "grpo")["total_gib"]


def test_tiled_logprobs_lower_the_peak():
    # small sampling calls, so that the update (where the logits live) sets the peak
    settings = dict(num_gpus=1, strategy="ddp", sample_batch_images=4)
    full = estimate("janus-pro-1b", "grpo", tiled_logprobs=False, **settings)
    tiled = estimate("janus-pro-1b", "grpo", tiled_logprobs=True, **settings)
    assert full["peak_phase"] == "update"
    assert tiled["logits_gib"] < 0.01 < full["logits_gib"]
    assert tiled["total_gib"] < full["total_gib"]
    # and never raise it
    assert (plan_table(tiled_logprobs=True)["total_gib"] <= plan_table()["total_gib"]).all()


def test_time_scales_with_prompts_per_step():
    one = estimate("janus-pro-7b", "grpo", num_gpus=8, strategy="zero2", prompts_per_step=8, sample_batch_images=2)
    two = estimate("janus-pro-7b", "grpo", num_gpus=8, strategy="zero2", prompts_per_step=16, sample_batch_images=2)
    for phase in ("sampling_s", "scoring_s", "reference_s"):  # full sampling calls: twice as many of them
        assert two[phase] == pytest.approx(2 * one[phase])
    assert 1.9 < two["update_s"] / one["update_s"] <= 2  # the gradient all-reduce does not grow with the batch
    assert two["step_s"] / one["step_s"] == pytest.approx(2, rel=0.05)
    # one call per step: decoding reads the weights once per token whatever the batch, so sampling grows slower
    small = estimate("janus-pro-7b", "grpo", prompts_per_step=8)
    large = estimate("janus-pro-7b", "grpo", prompts_per_step=16)
    assert small["sampling_s"] < large["sampling_s"] < 2 * small["sampling_s"]


def test_warns_when_a_run_does_not_fit():
    with pytest.warns(MemoryPlanWarning) as caught:
        row = check_fits("janus-pro-7b", "grpo", num_gpus=1, strategy="ddp")
    assert not row["fits"]
    message = str(caught[0].message)
    assert f"{row['total_gib']:.1f} GiB per GPU" in message
    assert f"{row['total_gib'] - row['usable_gib']:.1f} GiB more than the {row['usable_gib']:.1f} GiB usable" in message
    assert "num_gpus=8, strategy='zero2'" in message and "num_gpus=8, strategy='zero3'" in message
    # each suggestion is estimated to fit
    assert estimate("janus-pro-7b", "grpo", num_gpus=8, strategy="zero2")["fits"]
    # on 8 GPUs with DDP, the suggestion is a sharded strategy on the same GPUs
    with pytest.warns(MemoryPlanWarning, match=r"strategy='zero2' \("):
        check_fits("janus-pro-7b", "dpo", num_gpus=8, strategy="ddp")


def test_no_warning_when_it_fits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_fits("janus-pro-1b", "grpo", num_gpus=1, strategy="ddp")["fits"]
        assert check_fits("janus-pro-7b", "dpo", num_gpus=8, strategy="zero3")["fits"]


def test_a_trainer_config_is_checked_as_its_model_and_settings(tmp_path):
    cfg = preset("janus-pro-7b", "grpo")
    with pytest.warns(MemoryPlanWarning, match="janus-pro-7b grpo on 1 x h100-80gb with ddp"):
        row = check_config(cfg)
    assert row == estimate("janus-pro-7b", "grpo", prompts_per_step=cfg.prompts_per_step, tiled_logprobs=True,
                           gradient_checkpointing=True, beta=cfg.beta, sample_batch_images=cfg.sample_batch_images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_config(cfg, num_gpus=8, strategy="zero3")["fits"]
        assert check_config(preset("janus-pro-1b", "dpo"))["fits"]
        assert check_config(preset("default", "grpo")) is None  # a ShapeWorld tier: nothing to plan
    # a local checkpoint is recognised by its language model's width and depth; a smaller GPU changes the verdict
    (tmp_path / "config.json").write_text('{"model_type": "janus", "text_config": {"hidden_size": 2048, '
                                          '"num_hidden_layers": 24}}')
    assert policy_model(str(tmp_path)) == "janus-pro-1b" and policy_model(str(tmp_path / "absent")) is None
    small = GPUSpec("RTX 4090", 23.6, *(getattr(GPUS["h100-80gb"], f) for f in ("bf16_tflops", "hbm_tbps",
                                                                               "nvlink_gbps")))
    with pytest.warns(MemoryPlanWarning, match="on 1 x RTX 4090"):
        assert not check_config(preset("janus-pro-1b", "grpo", policy=str(tmp_path)), gpu=small)["fits"]


def test_cotlab_train_warns_before_launching_on_a_gpu_too_small(monkeypatch, tmp_path):
    import cotlab.training

    small = GPUSpec("RTX 4090", 23.6, 165.0, 1.0, 32.0)
    monkeypatch.setattr(plan, "local_gpu", lambda index=0: small)
    launched = []
    monkeypatch.setattr(cotlab.training, "train", lambda cfg, resume_from=None, overwrite=False: launched.append(cfg))
    with pytest.warns(MemoryPlanWarning, match="on 1 x RTX 4090") as caught:
        cli.main(["train", "grpo", "--preset", "janus-pro-7b", "--output-dir", str(tmp_path / "run")])
    assert len(caught) == 1 and len(launched) == 1 and launched[0].policy == "deepseek-community/Janus-Pro-7B"
    monkeypatch.setattr(plan, "local_gpu", lambda index=0: None)  # no CUDA: nothing to check against
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cli.main(["train", "grpo", "--preset", "janus-pro-7b", "--output-dir", str(tmp_path / "run")])


def test_a100_is_slower_than_h100():
    h100 = estimate("janus-pro-7b", "grpo", num_gpus=8, strategy="zero2", gpu="h100-80gb")
    a100 = estimate("janus-pro-7b", "grpo", num_gpus=8, strategy="zero2", gpu="a100-80gb")
    assert a100["step_s"] > h100["step_s"] and a100["total_gib"] == h100["total_gib"]


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown model 'janus-8b'.*janus-pro-1b, janus-pro-7b"):
        estimate("janus-8b")
    with pytest.raises(ValueError, match=f"unknown strategy 'zero1'.*{', '.join(STRATEGIES)}"):
        estimate(strategy="zero1")
    with pytest.raises(ValueError, match=f"unknown gpu 'v100'.*{', '.join(GPUS)}"):
        estimate(gpu="v100")
    with pytest.raises(ValueError, match="unknown algorithm 'ppo'.*grpo, dpo"):
        estimate(algorithm="ppo")
    with pytest.raises(ValueError, match="num_gpus must be at least 1"):
        estimate(num_gpus=0)
    with pytest.raises(ValueError, match="divisible by num_gpus"):
        estimate(num_gpus=3)
    with pytest.raises(ValueError, match="efficiency"):
        estimate(efficiency=0)
    assert model_spec("deepseek-community/Janus-Pro-7B") is MODELS["janus-pro-7b"]


def test_fit_summary_says_per_model_where_each_algorithm_fits():
    def row(model, algorithm, n, strategy, peak):
        return {"model": model, "algorithm": algorithm, "num_gpus": n, "strategy": strategy, "gpu": "h100-80gb",
                "total_gib": peak, "usable_gib": 70.0, "fits": peak <= 70.0}
    table = pd.DataFrame([row("big", "grpo", 1, "ddp", 140.0), row("big", "dpo", 1, "ddp", 120.0),
                          row("big", "grpo", 8, "zero2", 41.0), row("big", "dpo", 8, "zero2", 40.0),
                          row("big", "grpo", 8, "fsdp", 29.0), row("big", "dpo", 8, "fsdp", 28.0),
                          row("mid", "grpo", 1, "ddp", 75.0), row("mid", "dpo", 1, "ddp", 65.0)])
    assert fit_summary(table) == [
        "* **big** (h100-80gb, 70.0 GiB usable per GPU): neither algorithm fits on 1 GPU with DDP (peak 140.0 GiB); "
        "both algorithms fit on 8 GPUs with ZeRO-2 (peak 41.0 GiB) and 8 GPUs with FSDP (peak 29.0 GiB).",
        "* **mid** (h100-80gb, 70.0 GiB usable per GPU): only DPO fits on 1 GPU with DDP (peak 75.0 GiB)."]
    one = fit_summary(table[table["algorithm"] == "grpo"].head(2))
    assert one == ["* **big** (h100-80gb, 70.0 GiB usable per GPU): GRPO does not fit on 1 GPU with DDP (peak 140.0 "
                   "GiB); GRPO fits on 8 GPUs with ZeRO-2 (peak 41.0 GiB)."]
    # On the real cost model: Janus-Pro-7B fits no single 80 GB GPU, and fits 8 with ZeRO-2.
    real = {line.split("**")[1]: line for line in fit_summary(plan_table(gpu="h100-80gb"))}
    assert "neither algorithm fits on 1 GPU with DDP" in real["janus-pro-7b"]
    assert "both algorithms fit on 8 GPUs with ZeRO-2" in real["janus-pro-7b"]


def test_format_plan():
    text = format_plan(plan_table())
    assert "cost model" in text and "not measurements" in text
    for word in ("1b", "7b", "grpo", "dpo", "ddp", "zero2", "zero3", "fsdp", "peak", "step_s", "NO", "yes"):
        assert word in text


# -- accelerate configs -------------------------------------------------------------------------------------------

CONFIGS = {"single_gpu": (DistributedType.NO, 1), "zero2_8gpu": (DistributedType.DEEPSPEED, 8),
           "zero3_8gpu": (DistributedType.DEEPSPEED, 8), "fsdp_8gpu": (DistributedType.FSDP, 8)}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_accelerate_config_loads(name):
    path = ACCELERATE / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig) and config == ClusterConfig.from_yaml_file(str(path))
    distributed, processes = CONFIGS[name]
    assert config.distributed_type == distributed and config.num_processes == processes
    assert config.mixed_precision == "bf16" and not config.use_cpu and config.num_machines == 1
    defaults = RLConfig()
    if distributed == DistributedType.DEEPSPEED:
        ds = config.deepspeed_config
        assert ds["zero_stage"] == int(name[4])
        assert ds["offload_optimizer_device"] == ds["offload_param_device"] == "none"
        assert ds["gradient_accumulation_steps"] == defaults.gradient_accumulation_steps
        assert ds["gradient_clipping"] == defaults.max_grad_norm
    if distributed == DistributedType.FSDP:
        fsdp = config.fsdp_config
        assert fsdp["fsdp_sharding_strategy"] == "FULL_SHARD"
        assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        assert fsdp["fsdp_use_orig_params"] and not fsdp["fsdp_offload_params"]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_accelerate_launch_accepts_config(name):
    """What `accelerate launch --config_file` does before starting processes: validate, then build the environment
    the processes read their plugin settings from."""
    args = launch_command_parser().parse_args(["--config_file", str(ACCELERATE / f"{name}.yaml"), "-m", "cotlab",
                                               "train", "grpo"])
    args, defaults, _ = _validate_launch_command(args)
    assert args.num_processes == CONFIGS[name][1]
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = list(defaults.deepspeed_config)  # set by launch_command
        _, env = prepare_deepspeed_cmd_env(args)
        assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == name[4]
    elif args.use_fsdp:
        env = prepare_multi_gpu_env(args)
        assert env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD"
        assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "LlamaDecoderLayer"
    else:
        _, env = prepare_simple_launcher_cmd_env(args)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_every_accelerate_config_is_tested():
    assert {path.stem for path in ACCELERATE.glob("*.yaml")} == set(CONFIGS)


# -- the study's graph: the domain-gap chapter's runs and evaluations ------------------------------------------------

def _notebook_until(name: str, marker: str) -> list[str]:
    """The code cells of notebooks/<name>.ipynb up to the first that contains `marker`, without the parameters cell."""
    import json

    cells = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    out = []
    for cell in cells:
        if cell["cell_type"] != "code" or "parameters" in cell["metadata"].get("tags", []):
            continue
        out.append("".join(cell["source"]))
        if marker in out[-1]:
            return out
    raise AssertionError(f"no cell of {name} contains {marker!r}")


@pytest.mark.parametrize("tier", ["smoke", "default"])
def test_the_plan_holds_the_domain_gap_runs_and_the_evaluations_its_notebook_reads(tier, monkeypatch, tmp_path):
    """The planner's nodes for chapter 11 are the runs its notebook makes and, evaluation by evaluation, the
    (policy, suites, options) its notebook's `transfer_results` asks `rl.evaluation_scores` for: the run store's key
    (`evaluation_scores` keys by exactly these), so the notebook only reads what the graph built."""
    import json

    from cotlab.experiments import rl
    from cotlab.experiments import transfer as tr
    from cotlab.experiments.graph import plan
    from cotlab.experiments.reproduce import CHAPTERS, DEPENDS
    from cotlab.experiments.tiers import notebook_parameters
    from cotlab.store import canonical_json

    assert CHAPTERS.index(tr.CHAPTER) < CHAPTERS.index("09_findings") and tr.CHAPTER in DEPENDS["09_findings"]
    graph = plan(tier, [tr.CHAPTER])
    nodes = list(graph.nodes.values())

    def key(cfg) -> str:
        return canonical_json(cfg.replace(output_dir=None, save_steps=0).to_dict())

    runs, asked = {}, set()

    def fake_run(cfg, store=None, progress=True):
        path = tmp_path / f"run-{len(runs)}"
        path.mkdir()
        (path / "metrics.jsonl").write_text('{"reward_mean": 0.5}\n')
        runs[str(path / "policy")] = key(cfg)
        return path

    def fake_scores(policy_dir, name, *, suites, store=None, progress=True, **options):
        who = runs.get(str(policy_dir), Path(policy_dir).name)
        asked.add((who, canonical_json([list(s) for s in suites]), canonical_json(options)))
        return [{"suite": s, "category": "overall", "value": 0.5, "continuous": 0.5, "accuracy": 0.5, "se": 0.01}
                for s, _ in suites]

    monkeypatch.setattr(rl, "rl_run", fake_run)
    monkeypatch.setattr(rl, "evaluation_scores", fake_scores)
    monkeypatch.setattr(rl, "base_dir", lambda policy, store=None: tmp_path / "bases" / policy)
    monkeypatch.setattr("cotlab.training.health.run_health", lambda rows: "ok")
    namespace = notebook_parameters(tr.CHAPTER, tier)
    for source in _notebook_until(tr.CHAPTER, "tr.transfer_results("):  # the notebook's own cells, this tier
        exec(source, namespace)
    configs = namespace["configs"]
    assert {canonical_json(n.kwargs["config"]) for n in nodes if n.kind == "rl"} == {key(c) for c in configs}
    assert set(runs.values()) == {key(c) for c in configs}
    assert {n.kwargs["tier"] for n in nodes if n.kind == "base_policy"} == {c.policy for c in configs}
    planned = {(n.kwargs.get("policy") or canonical_json(n.kwargs["config"]), canonical_json(n.kwargs["suites"]),
                canonical_json(n.kwargs["eval_options"])) for n in nodes if n.kind == "evaluation"}
    assert asked == planned
    assert any(json.loads(options).get("twin_free") for _, _, options in planned)  # the twin-free part too
    if tier == "smoke":  # an L3 run starts from its own base, and evaluating it waits for that base
        l3 = [n for n in nodes if n.kind == "rl" and n.kwargs["config"]["holdout"] == "L3-above-below"]
        assert l3 and all(graph.nodes[n.deps[0]].kwargs["tier"] == "smoke-L3-above-below" for n in l3)
