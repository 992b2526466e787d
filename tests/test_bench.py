"""The sampler benchmark runs end to end on a tiny policy and returns a JSON-able report; the CLI knows the verb.
No timing assertions: wall-clock times depend on the machine and its load."""
import json
import math

from cotlab import cli
from cotlab.bench import bench_sampler, format_sampler


def test_bench_sampler_reports_both_throughputs():
    result = bench_sampler(size="tiny", batch_prompts=2, num_samples=2, repeats=1, warmup=0)
    for key in ("model", "size", "batch_prompts", "num_samples", "rows", "guidance_scale", "repeats", "warmup",
                "image_tokens", "torch_threads", "device", "ours", "generate", "ratio"):
        assert key in result, key
    assert result["rows"] == 4 and result["image_tokens"] == 64 and result["device"] == "cpu"
    for name in ("ours", "generate"):
        assert len(result[name]["seconds"]) == 1
        assert math.isfinite(result[name]["tokens_per_s"]) and result[name]["tokens_per_s"] > 0
    for key in ("ratio", "ratio_min", "ratio_paired"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert json.loads(json.dumps(result)) == result
    assert "ratio ours/generate:" in format_sampler(result)


def test_cli_accepts_bench_sampler():
    args = cli.build_parser().parse_args(["bench", "sampler", "--size", "tiny"])
    assert args.what == "sampler" and args.size == "tiny" and callable(args.handler)
    assert not args.janus_pro_shaped and args.json is None
    args = cli.build_parser().parse_args(["bench", "sampler", "--janus-pro-shaped", "--batch-prompts", "2",
                                          "--num-samples", "1", "--cfg", "3", "--repeats", "2", "--json", "b.json"])
    assert args.janus_pro_shaped and (args.batch_prompts, args.num_samples, args.cfg, args.repeats) == (2, 1, 3.0, 2)


def test_bench_step_splits_grpo_and_dpo_steps_into_phases():
    from cotlab.bench import STEP_PHASES, bench_rl_step, format_rl_step

    result = bench_rl_step(tier="smoke", steps=1, compare_plain=True)
    assert result["ratio_update_lean_over_plain_grpo"] > 0 and "full logits" in format_rl_step(result)
    for algorithm in ("grpo", "dpo", "grpo_plain", "dpo_plain"):
        r = result[algorithm]
        assert r["images_per_step"] == 32  # the smoke preset: 8 prompts x 4 images, equal for both
        assert all(r[p] >= 0 for p in STEP_PHASES) and r["sampling"] > 0 and r["update"] > 0
        assert sum(r[p] for p in STEP_PHASES) <= r["total"]
    assert result["grpo"]["reference"] == 0.0 < result["dpo"]["reference"]  # smoke GRPO has beta 0: no reference
    assert json.loads(json.dumps(result)) == result
    assert "ratio DPO/GRPO" in format_rl_step(result)
    args = cli.build_parser().parse_args(["bench", "step", "--tier", "smoke", "--steps", "2"])
    assert (args.what, args.tier, args.steps) == ("step", "smoke", 2)
