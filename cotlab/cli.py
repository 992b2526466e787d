"""The `cotlab` command line: one subcommand per verb.

A verb is a function ``add_<verb>(subparsers)`` that adds its parser and sets ``handler`` (called with the parsed
arguments, returning an exit code); list it in ``VERBS``. Heavy imports happen inside handlers, so ``--help`` is fast.

Errors. A user error prints one line, ``cotlab <verb>: <message>``, on stderr and exits 2 (as argparse does for a bad
option), before anything loads where it can: configs are checked on creation. The global ``--debug`` (also accepted
after the verb) prints the traceback too. The rule, applied in `main`: an exception is a user error when it is a
``ValueError`` (cotlab's config checks raise `cotlab.checks.ConfigError` and `ConfigTypeError`, both ValueErrors),
``FileNotFoundError``, ``FileExistsError``, ``NotADirectoryError`` or ``IsADirectoryError`` *raised by cotlab's own
code*, i.e. the innermost frame of its traceback is in cotlab's source: a deliberate check (a config field, `--set`,
`--config`, an unknown reward, a non-empty output directory). A ``SystemExit`` with a message is one too. The same
exception raised inside torch, transformers or any other library, and every other exception (a plain ``TypeError``
included: in cotlab's code it is more often a bug than a user's mistake), is a crash and propagates with its
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from cotlab import __version__
from cotlab.experiments.tiers import TIERS

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)
PACKAGE_DIR = Path(__file__).resolve().parent


class UsageError(ValueError):
    """A mistake in the command line itself (a malformed --set, --resume with --overwrite)."""


def _preflight(args: argparse.Namespace) -> bool:
    """The paper tier's preflight (`cotlab.experiments.preflight`): print the report; whether the run may start."""
    from cotlab.experiments.preflight import format_preflight, paper_preflight
    from cotlab.experiments.reproduce import CHAPTERS, check_root

    root = check_root(Path(args.root).resolve())
    report = paper_preflight(root, args.chapter or CHAPTERS)
    print(format_preflight(report), flush=True)
    return report.ok


def _reproduce(args: argparse.Namespace) -> int:
    from cotlab.experiments.reproduce import ReproduceError, reproduce

    if args.check and args.tier != "paper":
        raise UsageError(f"--check is the paper tier's preflight (checkpoints, GPUs, memory); tier {args.tier!r} "
                         f"needs none: drop --check, or give --tier paper")
    try:
        if args.tier == "paper":  # nothing runs, and nothing is written, before the preflight says yes
            ready = _preflight(args)
            if args.check or not ready:
                return 0 if ready else 1
        reproduce(args.tier, root=args.root, build_dir=args.build_dir, chapters=args.chapter, workers=args.workers,
                  executor=args.executor, address=args.address)
    except ReproduceError as err:
        print(f"cotlab reproduce: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1  # a wrong --root is the user's; a failed chapter is not
    return 0


def add_reproduce(subparsers: argparse._SubParsersAction) -> None:
    from cotlab.experiments.reproduce import CHAPTERS

    parser = subparsers.add_parser(
        "reproduce",
        help="execute every chapter notebook with a tier's parameters, then build the book",
        description="Execute the notebooks (papermill) with the tier's parameters and build the Jupyter Book "
        "into <build-dir>/html.",
    )
    parser.add_argument(
        "--tier",
        choices=TIERS,
        default="default",
        help="smoke: minutes, CI; default: the book on a 2-core CPU; full: every claim powered (hours, many cores or Ray); paper: the paper on GPUs (Janus-Pro, its reward models and benchmarks; check with --check first); paper-tiny: the paper tier's path on tiny random stand-ins on the CPU, no book (default: %(default)s)",
    )
    parser.add_argument("--root", default=".", help="repository root (default: %(default)s)")
    parser.add_argument(
        "--build-dir", default="_build", help="build directory, relative to the root (default: %(default)s)"
    )
    parser.add_argument(
        "--chapter",
        action="append",
        choices=CHAPTERS,
        help="execute only this chapter (repeatable); the others must have been executed before",
    )
    parser.add_argument(
        "--workers", type=int, default=None,
        help="processes that build the chapters' runs first, one torch thread each (default: this machine's cores)",
    )
    parser.add_argument(
        "--executor", choices=("local", "ray"), default="local",
        help="local: worker processes on this machine; ray: tasks on a Ray cluster (pip install cotlab[cluster]) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--address", default=None,
        help="ray: the cluster's address (host:port of `ray start --head`); default: a local Ray instance",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="paper tier: print the preflight (missing checkpoints and prompt files with the commands that fetch "
        "them, the GPUs found, the cost model's memory and GPU-hours per chapter) and exit: 0 only when everything "
        "is present and fits. A paper run without --check prints it too and refuses to start on a no",
    )
    parser.set_defaults(handler=_reproduce)


def _pretrain(args: argparse.Namespace) -> int:
    if args.what == "vq":
        from cotlab.policy.vq import train_vq_cached

        path = train_vq_cached(args.tier)
    else:
        from cotlab.policy.pretrain import base_policy

        _, path = base_policy(args.tier)
    print(f"[cotlab] {args.what} ({args.tier} tier): {path}")
    return 0


def add_pretrain(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="train ShapeWorld's base policy (or, optionally, a learned VQ tokenizer), cached in the run store",
        description="Train ShapeWorld's base Janus policy from nothing (or `vq`: a JanusVQVAE on ShapeWorld renders). "
        "Results are cached in the run store (runs/, or $COTLAB_RUNS) by config and code version; an interrupted "
        "run resumes from its last checkpoint.",
    )
    parser.add_argument("what", nargs="?", choices=("policy", "vq"), default="policy",
                        help="what to train (default: %(default)s)")
    parser.add_argument("--tier", choices=("tiny", "smoke", "default"), default="default",
                        help="size and budget: smoke trains in a minute or two, default in about 15 minutes")
    parser.set_defaults(handler=_pretrain)


def _bench(args: argparse.Namespace) -> int:
    from cotlab.bench import (
        bench_logprobs,
        bench_rl_step,
        bench_sampler,
        bench_scaling,
        format_logprobs,
        format_rl_step,
        format_sampler,
        format_scaling,
        write_json,
    )

    if args.what == "throughput":
        from cotlab.experiments.executor import available_cores
        from cotlab.experiments.throughput import bench_throughput, format_throughput

        result = bench_throughput(tier=args.tier, seeds=tuple(range(args.seeds)), workers=args.workers,
                                  max_steps=args.max_steps,
                                  worker_counts={min(2 ** k, available_cores()) for k in range(8)})
        print(format_throughput(result))
    elif args.what == "step":
        result = bench_rl_step(tier=args.tier, steps=args.steps, repeats=3 if args.repeats is None else args.repeats,
                               seed=args.seed, threads=args.threads, compare_plain=args.compare_plain)
        print(format_rl_step(result))
    elif args.what == "scaling":
        result = bench_scaling(tier=args.tier, steps=args.steps, seed=args.seed, threads=args.threads)
        print(format_scaling(result))
    elif args.what == "logprobs":
        result = bench_logprobs(sequences=args.sequences, hidden_size=args.hidden_size, temperature=args.temperature,
                                token_chunk=args.token_chunk, vocab_chunk=args.vocab_chunk,
                                trained_head=args.trained_head, repeats=5 if args.repeats is None else args.repeats,
                                warmup=args.warmup, seed=args.seed, device=args.device, threads=args.threads,
                                verbose=args.verbose)
        print(format_logprobs(result))
    else:
        result = bench_sampler(size=args.size, batch_prompts=args.batch_prompts, num_samples=args.num_samples,
                               guidance_scale=args.cfg, repeats=args.repeats, warmup=args.warmup, seed=args.seed,
                               janus_pro_shaped=args.janus_pro_shaped, threads=args.threads, verbose=args.verbose)
        print(format_sampler(result))
    if args.json:
        print(f"[cotlab] wrote {write_json(result, args.json)}")
    return 0


def add_bench(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="speed benchmarks: the CFG sampler against transformers' generate; GRPO and DPO steps; step scaling; "
        "log-probs",
        description="`sampler`: image tokens per second of JanusPolicy.sample and of transformers' "
        "generate(generation_mode='image') on the same batch, same CFG, sampling at temperature 1, timed "
        "interleaved (median of repeats). Random weights; no image decode. `step`: seconds per GRPO and per DPO "
        "step of a ShapeWorld preset, split into sampling / scoring / reference / update, with the share of time "
        "in matrix products against the machine's measured matmul throughput. `scaling`: GRPO step seconds against "
        "group size, prompts per step and image tokens. `throughput`: runs per hour of a batch of GRPO and DPO runs "
        "with their evaluations, one after another in this process against the graph executor's workers. `logprobs`: time and peak "
        "memory of per-token log-probs from hidden states at Janus-Pro's shapes (16384 codes, 576 tokens), forward "
        "and backward: plain log_softmax + gather, TRL's selective_log_softmax, and cotlab.kernels' tiled one.",
    )
    parser.add_argument("what", choices=("sampler", "step", "logprobs", "scaling", "throughput"),
                        help="what to benchmark")
    parser.add_argument("--tier", choices=("smoke", "default"), default="default",
                        help="step, scaling: the training preset (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=3,
                        help="step: optimizer steps per algorithm; scaling: steps per setting (default: 3)")
    parser.add_argument("--workers", type=int, default=None,
                        help="throughput: executor worker processes (default: this machine's cores)")
    parser.add_argument("--seeds", type=int, default=2,
                        help="throughput: training seeds per algorithm in the batch (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="throughput: optimizer steps per run (default: the preset's)")
    parser.add_argument("--compare-plain", action="store_true",
                        help="step: also run with full-logit log-probs (tiled_logprobs=False), side by side")
    parser.add_argument("--size", choices=("tiny", "smoke", "default"), default="default",
                        help="ShapeWorld policy size (default: %(default)s)")
    parser.add_argument("--batch-prompts", type=int, default=None,
                        help="prompts per batch (default: 16; 2 with --janus-pro-shaped)")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="images per prompt (default: 4; 1 with --janus-pro-shaped)")
    parser.add_argument("--cfg", type=float, default=5.0, help="classifier-free guidance weight (default: %(default)s)")
    parser.add_argument("--sequences", type=int, default=1,
                        help="logprobs: images of 576 tokens per batch (default: %(default)s)")
    parser.add_argument("--hidden-size", type=int, default=64,
                        help="logprobs: hidden size D of the states and the head (Janus-Pro-1B: 2048; default: "
                        "%(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="logprobs: softmax temperature (default: %(default)s)")
    parser.add_argument("--token-chunk", type=int, default=None,
                        help="logprobs: tokens per tile of the tiled path (default: cotlab.kernels.TOKEN_CHUNK)")
    parser.add_argument("--vocab-chunk", type=int, default=None,
                        help="logprobs: codes per tile of the tiled path (default: cotlab.kernels.VOCAB_CHUNK)")
    parser.add_argument("--trained-head", action="store_true",
                        help="logprobs: the head's weight and bias get gradients too (default: frozen, as the trainers "
                        "leave it)")
    parser.add_argument("--device", default=None,
                        help="logprobs: torch device (default: cuda when available, else cpu)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats, median reported (default: 5; 3 for step; 1 with --janus-pro-shaped)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed warmup rounds (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="weights and prompts seed (default: %(default)s)")
    parser.add_argument("--janus-pro-shaped", action="store_true",
                        help="a random Janus with Janus-Pro-1B's image side (16384 codes, 576 tokens, hidden 2048) "
                        "and 2 layers, instead of a ShapeWorld policy")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own; 1 is steadier on a busy machine)")
    parser.add_argument("--verbose", action="store_true", help="print each timed call as it finishes")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the result as JSON to PATH")
    parser.set_defaults(handler=_bench)


def _parse_sets(items: list[str]) -> dict:
    """--set key=value items as a dict, values read as YAML 1.2 (numbers such as 1e-5, true/false, [lists]); an
    error names the --set."""
    import yaml

    from cotlab.checks import load_yaml

    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item}: expected key=value (e.g. --set learning_rate=1e-5)")
        try:
            values[key.strip()] = load_yaml(raw)
        except yaml.YAMLError as e:
            raise UsageError(f"--set {item}: the value is not valid YAML ({' '.join(str(e).split())})") from None
    return values


def _check_memory(cfg) -> None:
    """Before launching on CUDA: warn (once, on the main process) when the cost model says the run does not fit in
    this launch's GPUs with its strategy (`cotlab.experiments.plan.check_config`)."""
    from accelerate import PartialState

    from cotlab.experiments.plan import check_config, local_gpu

    gpu = local_gpu()
    if gpu is None:
        return
    state = PartialState()
    stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    strategy = {"DEEPSPEED": {"2": "zero2", "3": "zero3"}.get(stage, "ddp"), "FSDP": "fsdp"}.get(
        state.distributed_type.name, "ddp")
    if state.is_main_process:
        check_config(cfg, num_gpus=state.num_processes, strategy=strategy, gpu=gpu)


def _overrides_line(cfg, preset_name: str | None, values: dict) -> str:
    """What this run changes from its starting point (the preset, else the config class's defaults), echoed at start."""
    from cotlab.training import CONFIGS, preset

    start = preset(preset_name, cfg.algorithm) if preset_name else CONFIGS[cfg.algorithm]()
    changed = [f"{k}={getattr(cfg, k)!r} (was {getattr(start, k)!r})" for k in values
               if k != "output_dir" and getattr(cfg, k) != getattr(start, k)]
    origin = f"preset {preset_name!r}" if preset_name else "the defaults"
    return f"[cotlab] {cfg.algorithm} from {origin}; " + (f"overrides: {', '.join(changed)}" if changed else "no overrides")


def _train(args: argparse.Namespace) -> int:
    from cotlab.training import CONFIGS, preset, train
    from cotlab.training.config import describe_fields

    if args.resume and args.overwrite:
        raise UsageError("give --resume (continue the run) or --overwrite (start it over), not both")
    values = CONFIGS[args.algorithm].read(args.config) if args.config else {}  # only the fields the file sets
    values.update(_parse_sets(args.set))
    if args.output_dir:
        values["output_dir"] = args.output_dir
    cfg = preset(args.preset, args.algorithm, **values) if args.preset else CONFIGS[args.algorithm].from_dict(values)
    if args.help_config:
        print(describe_fields(cfg))
        return 0
    if cfg.output_dir is None:
        raise UsageError("give --output-dir (or output_dir in the config): where metrics and checkpoints go")
    if os.environ.get("RANK", "0") == "0":  # once per launch, not once per process
        print(_overrides_line(cfg, args.preset, values), flush=True)
    _check_memory(cfg)
    train(cfg, resume_from="latest" if args.resume else None, overwrite=args.overwrite)
    print(f"[cotlab] {cfg.algorithm}: {cfg.output_dir}")
    return 0


def add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a policy with GRPO or DPO (runs under `accelerate launch` too)",
        description="Train with GRPO or DPO. Fields come from --preset, then --config (JSON or YAML), then --set "
        "key=value (YAML values). Writes metrics.jsonl, TensorBoard events and checkpoints to the output directory. "
        "Multi-process: `accelerate launch [--cpu] --num_processes N -m cotlab train grpo ...`.",
    )
    parser.add_argument("algorithm", choices=("grpo", "dpo"))
    parser.add_argument("--preset", default=None, help="smoke, default (ShapeWorld) or paper (Janus-Pro)")
    parser.add_argument("--config", default=None, help="a JSON or YAML file of config fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one field")
    parser.add_argument("--output-dir", default=None, help="where metrics and checkpoints go")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output dir")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in a non-empty output directory (deletes its metrics, checkpoints and "
                        "TensorBoard logs)")
    parser.add_argument("--help-config", action="store_true",
                        help="print every config field with its value (after --preset, --config, --set) and its help, "
                        "then exit")
    parser.set_defaults(handler=_train)


def _train_reward(args: argparse.Namespace) -> int:
    from cotlab.rewards.learned import config_from_options, learned_reward, train_reward_model

    options = {"seed": args.seed, **({"breadth": args.breadth} if args.breadth else {}), **_parse_sets(args.set)}
    cfg = config_from_options(args.family, options)  # checked before anything trains
    if args.output_dir:
        from cotlab.state_files import make_directory

        make_directory(args.output_dir)
        _, summary = train_reward_model(cfg, args.output_dir)
        print(f"[cotlab] {args.family} reward model: {args.output_dir} ({summary['seconds']:.0f} s)")
    else:
        model = learned_reward(args.family, **options)
        print(f"[cotlab] {model.name} reward model trained and cached in the run store")
    return 0


def add_train_reward(subparsers: argparse._SubParsersAction) -> None:
    from cotlab.rewards.learned import BREADTHS, FAMILIES

    parser = subparsers.add_parser(
        "train-reward",
        help="train a learned ShapeWorld reward model (preference or judge), cached in the run store",
        description="Train one of ShapeWorld's learned reward models (see cotlab.rewards.learned): `preference` "
        "(Bradley-Terry, the HPS/ImageReward analog) or `judge` (yes/no questions, the UnifiedReward/VQA analog). "
        "Deterministic by seed. Cached in the run store unless --output-dir is given.",
    )
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("--breadth", choices=BREADTHS, default=None,
                        help="the prompts its training images are made for (default: id for preference, "
                        "id+captions for judge)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one LearnedRewardConfig field (steps, num_prompts, label_noise, ...)")
    parser.add_argument("--output-dir", default=None, help="save here instead of the run store")
    parser.set_defaults(handler=_train_reward)


def _plan(args: argparse.Namespace) -> int:
    from cotlab.experiments.plan import GPUS, MODELS, format_plan, plan_table

    models = args.model or list(MODELS)
    unknown = [m for m in models if m not in MODELS]
    problems = [f"unknown model {', '.join(map(repr, unknown))}; known: {', '.join(MODELS)}"] if unknown else []
    problems += [f"unknown gpu {args.gpu!r}; known: {', '.join(GPUS)}"] if args.gpu not in GPUS else []
    if problems:
        raise UsageError("; ".join(problems))
    table = plan_table(models, gpu=args.gpu, prompts_per_step=args.prompts_per_step,
                       num_generations=args.num_generations, tiled_logprobs=args.tiled_logprobs)
    print(format_plan(table))
    return 0


def add_plan(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan", help="estimated memory per GPU and seconds per step for Janus-Pro runs (a cost model, not a measurement)",
        description="Size a paper-scale run before launching it: GRPO and DPO on Janus-Pro-1B/7B, on 1 GPU (DDP) and "
        "8 GPUs (ZeRO-2, ZeRO-3, FSDP). Formulas and sources: cotlab/experiments/plan.py.")
    parser.add_argument("--model", action="append", default=None, help="janus-pro-1b or janus-pro-7b (repeatable)")
    parser.add_argument("--gpu", default="h100-80gb", help="h100-80gb or a100-80gb (default: %(default)s)")
    parser.add_argument("--prompts-per-step", type=int, default=8)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--tiled-logprobs", action="store_true", help="the tiled log-prob path (cotlab.kernels)")
    parser.set_defaults(handler=_plan)


def _gpu_check(args: argparse.Namespace) -> int:
    from cotlab.experiments.gpu_check import CheckError, check_device, format_gpu_check, gpu_check, write_report

    try:
        check_device(args.device, args.size)  # before anything is built
    except CheckError as err:
        print(f"cotlab gpu-check: {err}", file=sys.stderr)
        return 1
    report = gpu_check(args.device, args.size, steps=args.steps, seed=args.seed)
    print(format_gpu_check(report))
    print(f"[cotlab] wrote {write_report(report, args.json)}")
    return 0 if report["passed"] else 1


def add_gpu_check(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gpu-check", help="on a CUDA GPU, in a few minutes: sampler parity, the Triton log-prob kernel, GRPO and DPO "
        "steps of a Janus-Pro-1B-shaped model in bf16 against the cost model",
        description="Random weights, on one CUDA GPU: our sampler against transformers' generate in fp32 and bf16; "
        "the tiled log-prob kernel's Triton and torch paths against plain log_softmax; a few GRPO and DPO steps of "
        "the janus-pro-1b preset on a random model with Janus-Pro-1B's language model and image side (bf16 under "
        "accelerate); peak memory, seconds per step and images per second per GPU against the cost model "
        "(cotlab.experiments.plan). Writes a JSON report and prints a table; exits 1 when a check fails, and "
        "refuses without a CUDA GPU. Details: cotlab/experiments/gpu_check.py.")
    parser.add_argument("--json", default="_build/gpu-check.json", help="the JSON report (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per algorithm (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="weights and prompts seed (default: %(default)s)")
    parser.add_argument("--device", default="cuda", help="torch device (default: %(default)s)")
    parser.add_argument("--size", choices=("janus-pro-1b", "tiny"), default="janus-pro-1b",
                        help="the model checked; tiny, with --device cpu, is the tests' dry run (default: %(default)s)")
    parser.set_defaults(handler=_gpu_check)


def _screenshots(args: argparse.Namespace) -> int:
    from cotlab.experiments.screenshots import screenshot_book

    try:
        shots = screenshot_book(args.html, args.out)
    except (FileNotFoundError, RuntimeError) as e:  # no built book; no Chromium
        raise UsageError(str(e)) from e
    print("\n".join(str(s) for s in shots))
    return 0


def add_screenshots(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "screenshots", help="full-page PNGs of every built book page, in headless Chromium",
        description="Render every chapter of the built book (after `cotlab reproduce`) in headless Chromium and "
        "save one PNG per page, to check the book as a reader sees it.")
    parser.add_argument("--html", default="_build/html", help="the built book (default: %(default)s)")
    parser.add_argument("--out", default="_build/screenshots", help="where the PNGs go (default: %(default)s)")
    parser.set_defaults(handler=_screenshots)


VERBS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_reproduce,
    add_pretrain,
    add_train,
    add_train_reward,
    add_screenshots,
    add_plan,
    add_bench,
    add_gpu_check,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotlab", description="DPO vs GRPO for autoregressive image generation, reproduced."
    )
    parser.add_argument("--version", action="version", version=f"cotlab {__version__}")
    debug = "show the traceback of a user error too (a crash always shows its own)"
    parser.add_argument("--debug", action="store_true", help=debug)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_verb in VERBS:
        add_verb(subparsers)
    for verb in subparsers.choices.values():  # `cotlab train --debug ...` too; SUPPRESS keeps a global --debug
        verb.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug)
    return parser


def _raised_by_cotlab(err: BaseException) -> bool:
    """Whether the innermost frame of `err`'s traceback is in cotlab's source: a deliberate raise, not a library's."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)


def _user_error(args: argparse.Namespace, message: str) -> int:
    if args.debug:
        traceback.print_exc()
    print(f"cotlab {args.command}: {' '.join(message.splitlines())}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the verb; a user error prints one line and returns 2, a crash raises (see the module's docstring)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except USER_ERRORS as err:
        if not _raised_by_cotlab(err):
            raise
        return _user_error(args, str(err))
    except SystemExit as err:
        if not isinstance(err.code, str):
            raise
        return _user_error(args, err.code.removeprefix(f"cotlab {args.command}: "))


if __name__ == "__main__":
    raise SystemExit(main())
