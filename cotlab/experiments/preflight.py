"""Preflight of the paper tier: before any GPU-hour is spent, what is missing, what this machine has, and whether the
runs fit.

`cotlab reproduce --tier paper --check` prints the report and exits (0 only when everything is present and fits); a
real `cotlab reproduce --tier paper` prints it first and refuses to start, writing nothing, when the verdict is no.
The report lists:

* every checkpoint and prompt file the paper scale loads, where the code looks for it and the command that puts it
  there (`paper_needs`): the hub checkpoints (the policies, the UnifiedReward judge, the benchmark scorers' models)
  in the Hugging Face cache, where their hub ids resolve offline; HPS v2.1 and ImageReward, whose files come from two
  repositories each, in one directory each under ``<root>/checkpoints``; the official prompt files in the
  directories named by ``$COTLAB_T2I_COMPBENCH`` and ``$COTLAB_GENEVAL``;
* the CUDA GPUs found and the setup (number of GPUs, strategy, accelerate config) the cost model says fits;
* per chapter, the planned runs (`cotlab.experiments.graph.plan` of the tier: the chapters' own parameters), the
  cost model's peak memory per GPU (`cotlab.experiments.plan.estimate`) and GPU-hours: each Janus-Pro run's steps,
  each Janus-Pro evaluation's images at the benchmarks' protocol. Runs of ShapeWorld policies are CPU work and cost
  no GPU-hours.

`assess` is a pure function of the needs, the facts (`Facts`: GPUs, files found) and the planned runs, so the
verdict is testable without a GPU; `survey` gathers the facts of this machine and `paper_preflight` wires the two.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cotlab.evaluation.benchmarks import COMPBENCH_IMAGES_PER_PROMPT, GENEVAL_IMAGES_PER_PROMPT
from cotlab.evaluation.geneval import GENEVAL_CLIP_CHECKPOINT
from cotlab.evaluation.t2i_compbench import BLIP_VQA_CHECKPOINT, COMPBENCH_CLIP_CHECKPOINT, COMPBENCH_METRICS
from cotlab.evaluation.vision import MASK2FORMER_CHECKPOINT
from cotlab.experiments.plan import GPUS, MODELS, GPUSpec, estimate, policy_model, suggest
from cotlab.prompt_files import COMPBENCH_CATEGORIES, COMPBENCH_SPLITS, GENEVAL_FILE, GENEVAL_PROMPTS
from cotlab.rewards.paper_models import (HPS_FILE, HPS_REPO, HPS_TOKENIZER_REPOS, IMAGEREWARD_CONFIG_FILE,
                                         IMAGEREWARD_FILE, IMAGEREWARD_REPO, IMAGEREWARD_TOKENIZER_REPO)
from cotlab.rewards.real import JUDGE_CHECKPOINT
from cotlab.training import PRESETS, RLConfig, preset

HUB_WEIGHTS = ("config.json", "*.safetensors | *.bin")  # what `cotlab.checkpoints.load_checkpoint` insists on
ENV_COMPBENCH, ENV_GENEVAL = "COTLAB_T2I_COMPBENCH", "COTLAB_GENEVAL"
# Where a machine without GPUs is sized: the README's launch (8 x H100 with an accelerate config).
REFERENCE_GPUS, REFERENCE_GPU = 8, "h100-80gb"
STRATEGY_ORDER = ("ddp", "zero2", "zero3")  # least sharding first: the first that fits is the fastest
ACCELERATE_CONFIGS = {"ddp": "single_gpu.yaml", "zero2": "zero2_8gpu.yaml", "zero3": "zero3_8gpu.yaml"}
# One evaluation of a trained policy at the paper's protocol: GenEval's 553 prompts x 4 images, and T2I-CompBench's
# val prompts x 10 images in every category that cotlab's transformers scorers cover.
EVAL_IMAGES = (GENEVAL_PROMPTS * GENEVAL_IMAGES_PER_PROMPT
               + len(COMPBENCH_METRICS) * COMPBENCH_SPLITS["val"] * COMPBENCH_IMAGES_PER_PROMPT)


@dataclass(frozen=True)
class Need:
    """One thing the paper scale loads: `files` must all be found at `location` (each entry a set of alternatives,
    "a | b + c": a, or b and c; shell patterns allowed). `variable`: the environment variable the code reads the
    location from (None: a fixed place); `variable_set`, whether it was set when the needs were listed."""

    name: str
    role: str
    location: str
    files: tuple[str, ...]
    commands: tuple[str, ...]
    optional: bool = False
    variable: str | None = None
    variable_set: bool = True


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_location(repo: str, cache: Path | None = None) -> Path:
    """The Hugging Face cache's folder of `repo`, where `hf download <repo>` puts it and `from_pretrained(<repo>)`
    finds it offline."""
    return (cache or _hub_cache()) / f"models--{repo.replace('/', '--')}"


def paper_needs(root: Path, environ: Mapping[str, str] | None = None, cache: Path | None = None) -> list[Need]:
    """Every checkpoint and prompt-file set the paper tier loads, with where it goes and how to get it."""
    environ = os.environ if environ is None else environ
    checkpoints = Path(root) / "checkpoints"

    def hub(name, role, repo, optional=False):
        return Need(name, role, str(hub_location(repo, cache)), HUB_WEIGHTS, (f"hf download {repo}",), optional)

    hps, imagereward = checkpoints / "HPSv2.1", checkpoints / "ImageReward"
    compbench_default = Path(root) / "benchmarks" / "T2I-CompBench" / "examples" / "dataset"
    geneval_default = Path(root) / "benchmarks" / "geneval" / "prompts"
    compbench = environ.get(ENV_COMPBENCH) or str(compbench_default)
    geneval = environ.get(ENV_GENEVAL) or str(geneval_default)
    compbench_files = tuple(f"{c}_{s}.txt" for c in COMPBENCH_CATEGORIES for s in COMPBENCH_SPLITS)
    return [
        hub("Janus-Pro-7B", "policy (the paper preset)", PRESETS["janus-pro-7b"]["shared"]["policy"]),
        hub("Janus-Pro-1B", "policy (the 1B variant)", PRESETS["janus-pro-1b"]["shared"]["policy"], optional=True),
        Need("HPS v2.1", "reward model (hps)", str(hps), (HPS_FILE, "tokenizer.json | vocab.json + merges.txt"),
             (f"hf download {HPS_REPO} {HPS_FILE} --local-dir {hps}",
              f"hf download {HPS_TOKENIZER_REPOS[0]} vocab.json merges.txt tokenizer_config.json "
              f"special_tokens_map.json --local-dir {hps}")),
        Need("ImageReward", "reward model (imagereward)", str(imagereward),
             (IMAGEREWARD_FILE, IMAGEREWARD_CONFIG_FILE, "tokenizer.json | vocab.txt"),
             (f"hf download {IMAGEREWARD_REPO} {IMAGEREWARD_FILE} {IMAGEREWARD_CONFIG_FILE} --local-dir {imagereward}",
              f"hf download {IMAGEREWARD_TOKENIZER_REPO} vocab.txt tokenizer_config.json --local-dir {imagereward}")),
        hub("UnifiedReward", "reward model (vlm_judge)", JUDGE_CHECKPOINT),
        hub("Mask2Former Swin-S", "GenEval detector, T2I-CompBench spatial", MASK2FORMER_CHECKPOINT),
        hub("CLIP ViT-L/14", "GenEval colour classifier", GENEVAL_CLIP_CHECKPOINT),
        hub("BLIP-VQA", "T2I-CompBench attribute binding", BLIP_VQA_CHECKPOINT),
        hub("CLIP ViT-B/32", "T2I-CompBench non-spatial, clipscore", COMPBENCH_CLIP_CHECKPOINT),
        Need("T2I-CompBench prompts", "training prompts, in-domain evaluation", compbench,
             compbench_files + ("complex_val_spatial.txt", "complex_val_action.txt"),
             (f"git clone --depth 1 https://github.com/Karine-Huang/T2I-CompBench {compbench_default.parents[1]}",
              f"export {ENV_COMPBENCH}={compbench}"), variable=ENV_COMPBENCH, variable_set=ENV_COMPBENCH in environ),
        Need("GenEval prompts", "out-of-domain evaluation", geneval, (GENEVAL_FILE,),
             (f"git clone --depth 1 https://github.com/djghosh13/geneval {geneval_default.parent}",
              f"export {ENV_GENEVAL}={geneval}"), variable=ENV_GENEVAL, variable_set=ENV_GENEVAL in environ),
    ]


def missing_files(need: Need, present: Collection[str]) -> list[str]:
    """The entries of `need.files` that no file in `present` (names found at its location) satisfies."""
    def found(pattern: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for name in present)

    return [entry for entry in need.files
            if not any(all(found(p.strip()) for p in option.split("+")) for option in entry.split("|"))]


@dataclass(frozen=True)
class Facts:
    """What this machine has: its CUDA GPUs, the file names found at each need's location (by need name; absent: the
    location does not exist), the Python packages a launch may need, and why no GPU was found (if none was)."""

    gpus: tuple[GPUSpec, ...] = ()
    files: Mapping[str, Collection[str]] = field(default_factory=dict)
    packages: Collection[str] = ()
    gpu_note: str = ""


@dataclass(frozen=True)
class PlannedRun:
    """An RL run a chapter plans, with the cost model's name for its policy (None: not a Janus-Pro policy)."""

    chapter: str
    model: str | None
    config: RLConfig


@dataclass
class Preflight:
    ok: bool
    needs: list[tuple[Need, list[str]]]  # each need with what is missing of it
    gpus: tuple[GPUSpec, ...]
    gpu_note: str
    setup: dict  # num_gpus, gpu, strategy, fits, accelerate config, sized (what was sized), reference (no GPU)
    chapters: list[dict]
    problems: list[str]
    suggestions: list[str]


def _settings(cfg: RLConfig) -> dict:
    """The cost model's settings of a run config (RLConfig's names)."""
    settings = dict(prompts_per_step=cfg.prompts_per_step, num_generations=cfg.num_generations,
                    tiled_logprobs=cfg.tiled_logprobs, gradient_checkpointing=cfg.gradient_checkpointing,
                    gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                    sample_batch_images=cfg.sample_batch_images)
    return {**settings, "beta": cfg.beta} if cfg.algorithm == "grpo" else settings


def _estimate(run: PlannedRun, num_gpus: int, strategy: str, gpu: GPUSpec, model: str | None = None) -> dict:
    """The cost model's row for a run on a setup; a setup the run cannot use (its prompts per step not divisible by
    the GPUs) is a row that does not fit, with the reason."""
    try:
        return estimate(model or run.model, run.config.algorithm, num_gpus=num_gpus, strategy=strategy, gpu=gpu,
                        **_settings(run.config))
    except ValueError as error:
        return {"fits": False, "total_gib": float("nan"), "step_s": float("nan"), "error": str(error)}


def _paper_presets() -> list[PlannedRun]:
    return [PlannedRun("paper preset", "janus-pro-7b", preset("paper", a)) for a in ("grpo", "dpo")]


def choose_setup(gpus: Sequence[GPUSpec], runs: Sequence[PlannedRun]) -> tuple[str, list[dict]]:
    """The least sharded strategy (`STRATEGY_ORDER`) under which every run fits on `gpus` (sized by the one with the
    least memory), with the runs' estimates; when none fits, the most sharded one tried and its estimates."""
    gpu = min(gpus, key=lambda g: g.memory_gib)
    tried = STRATEGY_ORDER if len(gpus) > 1 else ("ddp",)
    for strategy in tried:
        rows = [_estimate(run, len(gpus), strategy, gpu) for run in runs]
        if all(row["fits"] for row in rows):
            return strategy, rows
    return strategy, rows


def _what_fits(gpus: Sequence[GPUSpec], runs: Sequence[PlannedRun]) -> list[str]:
    """Changes estimated to fit, for every model the runs use and the 1B variant: the same setup with the smaller
    model, then `plan.suggest`'s (more GPUs, ZeRO-2/3, tiled log-probs, smaller batches)."""
    gpu, n = min(gpus, key=lambda g: g.memory_gib), len(gpus)
    out = []
    for model in dict.fromkeys([*(r.model for r in runs), "janus-pro-1b"]):
        smaller = model != runs[0].model
        strategy, rows = choose_setup(gpus, [PlannedRun(r.chapter, model, r.config) for r in runs])
        if smaller and all(row["fits"] for row in rows):
            out.append(f"{model} (preset {model}) fits on {n} x {gpu.name} with {strategy}: peak "
                       f"{max(row['total_gib'] for row in rows):.1f} GiB per GPU")
            continue
        for algorithm in dict.fromkeys(r.config.algorithm for r in runs):
            cfg = next(r.config for r in runs if r.config.algorithm == algorithm)
            settings = {**_settings(cfg), "num_gpus": n, "strategy": strategy, "gpu": gpu}
            try:
                found = suggest(model, algorithm, most=2, **settings)
            except ValueError:
                found = []
            changes = ["; ".join(f"{k}={v!r}" for k, v in change.items()) + f" ({row['total_gib']:.1f} GiB)"
                       for change, row in found]
            out.append(f"{model} {algorithm}: " + (" or ".join(changes) if changes else
                       f"nothing tried fits on {gpu.name} (up to 8 GPUs with ZeRO-2/3, tiled log-probs, smaller "
                       f"batches): GPUs with more memory"))
    return out


def _eval_seconds(model: str, gpu: GPUSpec) -> float:
    """Seconds to sample and score one evaluation image on one GPU: a full sampling call of the paper preset."""
    batch = RLConfig.sample_batch_images
    row = estimate(model, "grpo", num_gpus=1, strategy="ddp", gpu=gpu, prompts_per_step=batch // 4,
                   num_generations=4, sample_batch_images=batch)
    return (row["sampling_s"] + row["scoring_s"]) / batch


def assess(needs: Sequence[Need], facts: Facts, runs: Sequence[PlannedRun] = (),
           evaluations: Sequence[tuple[str, str | None]] = (), chapters: Sequence[str] = ()) -> Preflight:
    """The verdict on starting the paper tier: every required need present, a CUDA GPU, every planned Janus-Pro run
    estimated to fit (the `paper` preset's GRPO and DPO when the chapters plan none), and the strategy's package
    installed. `evaluations`: (chapter, cost-model name of the evaluated policy or None) per planned evaluation;
    `chapters`: the rows of the per-chapter table, in order (chapters of runs not listed are added after them).
    Without GPUs, memory and GPU-hours are those of the reference setup (8 x H100) and the verdict is no."""
    checked = [(need, missing_files(need, facts.files[need.name]) if need.name in facts.files else list(need.files))
               for need in needs]
    problems = []
    absent = [need.name for need, missing in checked if (missing or not need.variable_set) and not need.optional]
    if absent:
        problems.append(f"missing: {', '.join(absent)} (the commands above fetch them)")
    gpus = tuple(facts.gpus)
    reference = not gpus
    if reference:
        problems.append(f"no CUDA GPU found{f' ({facts.gpu_note})' if facts.gpu_note else ''}: the paper tier "
                        f"trains Janus-Pro on GPUs")
        gpus = (GPUS[REFERENCE_GPU],) * REFERENCE_GPUS
    gpu_runs = [r for r in runs if r.model is not None]
    sized = gpu_runs or _paper_presets()
    strategy, rows = choose_setup(gpus, sized)
    fits = all(row["fits"] for row in rows)
    gpu, n = min(gpus, key=lambda g: g.memory_gib), len(gpus)
    suggestions = []
    if not fits:
        worst = max(rows, key=lambda row: row["total_gib"] if row["total_gib"] == row["total_gib"] else -1)
        problems.append(f"{sized[0].model} does not fit on {n} x {gpu.name}: "
                        + (worst["error"] if "error" in worst else
                           f"{worst['total_gib']:.1f} GiB per GPU with {strategy}, "
                           f"{worst['usable_gib']:.1f} usable"))
        suggestions = _what_fits(gpus, sized)
    elif strategy in ("zero2", "zero3") and "deepspeed" not in facts.packages and not reference:
        problems.append(f"{strategy} needs the deepspeed package: pip install deepspeed")
    table: dict[str, dict] = {}

    def chapter_row(chapter: str) -> dict:
        return table.setdefault(chapter, {"chapter": chapter, "gpu_runs": 0, "cpu_runs": 0, "gpu_evaluations": 0,
                                          "peak_gib": 0.0, "fits": True, "gpu_hours": 0.0})

    for chapter in chapters:
        chapter_row(chapter)
    eval_seconds = {m: _eval_seconds(m, gpu) for m in MODELS}
    for run in runs:
        row = chapter_row(run.chapter)
        if run.model is None:
            row["cpu_runs"] += 1
            continue
        est = _estimate(run, n, strategy, gpu)
        row["gpu_runs"] += 1
        row["peak_gib"] = max(row["peak_gib"], est["total_gib"])
        row["fits"] = row["fits"] and est["fits"]
        row["gpu_hours"] += est["step_s"] * run.config.max_steps * run.config.rounds * n / 3600
    for chapter, model in evaluations:
        row = chapter_row(chapter)
        if model is not None:
            row["gpu_evaluations"] += 1
            row["gpu_hours"] += EVAL_IMAGES * eval_seconds[model] / 3600
    presets = [{"run": f"one `paper` preset {r.config.algorithm} run ({r.config.max_steps} steps)",
                "peak_gib": row["total_gib"], "fits": row["fits"],
                "gpu_hours": row["step_s"] * r.config.max_steps * n / 3600} for r, row in
               zip(_paper_presets(), [_estimate(r, n, strategy, gpu) for r in _paper_presets()])]
    setup = {"num_gpus": n, "gpu": gpu.name, "strategy": strategy, "fits": fits, "reference": reference,
             "accelerate_config": f"cotlab/training/accelerate/{ACCELERATE_CONFIGS[strategy]}",
             "sized": "the chapters' Janus-Pro runs" if gpu_runs else "the `paper` preset (GRPO and DPO): the "
             "chapters plan no Janus-Pro run", "presets": presets, "eval_images": EVAL_IMAGES}
    return Preflight(not problems, checked, tuple(facts.gpus), facts.gpu_note, setup, list(table.values()),
                     problems, suggestions)


def format_preflight(p: Preflight) -> str:
    """The report as text: files, GPUs, the cost model per chapter, the verdict."""
    lines = ["cotlab preflight: the paper tier (Janus-Pro on GPUs)", "",
             "Checkpoints and prompt files (what is missing, where it goes, the commands that fetch it):"]
    for need, missing in p.needs:
        unset = not need.variable_set
        state = "ok" if not missing and not unset else ("optional" if need.optional else "MISSING")
        lines.append(f"  {state:<9}{need.name}: {need.role}")
        lines.append(f"  {'':<9}at {need.location}")
        if missing:
            more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
            lines.append(f"  {'':<9}lacks {', '.join(missing[:4])}{more}")
        if missing or unset:
            commands = need.commands if missing else [c for c in need.commands if c.startswith("export ")]
            lines += [f"  {'':<9}$ {command}" for command in commands]
    lines += ["", "GPUs: " + (", ".join(f"{g.name} ({g.memory_gib:.0f} GiB)" for g in p.gpus) if p.gpus else
                              f"none{f' ({p.gpu_note})' if p.gpu_note else ''}")]
    s = p.setup
    where = (f"{s['num_gpus']} x {s['gpu']}" + (" (no GPU here: the README's reference launch)" if s["reference"]
                                                 else ""))
    lines += [f"Cost model (cotlab.experiments.plan: estimates, not measurements) on {where}, sized by {s['sized']}:",
              f"  strategy {s['strategy']} ({'fits' if s['fits'] else 'does NOT fit'}); accelerate launch "
              f"--config_file {s['accelerate_config']}"
              + (f" --num_processes {s['num_gpus']}" if s["strategy"] != "ddp" and s["num_gpus"] != 8 else "")]
    for row in s["presets"]:
        lines.append(f"  {row['run']}: peak {row['peak_gib']:.1f} GiB per GPU ({'fits' if row['fits'] else 'NO'}), "
                     f"{row['gpu_hours']:.1f} GPU-hours")
    if p.chapters:
        lines += ["", f"Per chapter (GPU-hours: Janus-Pro runs' steps, plus {s['eval_images']:,} images per Janus-Pro "
                      "evaluation; ShapeWorld runs are CPU work):",
                  f"  {'chapter':<24}{'GPU runs':>9}{'CPU runs':>9}{'GPU evals':>10}{'peak GiB':>10}{'fits':>6}"
                  f"{'GPU-hours':>11}"]
        for row in p.chapters:
            peak = f"{row['peak_gib']:.1f}" if row["gpu_runs"] else "-"
            fits = ("yes" if row["fits"] else "NO") if row["gpu_runs"] else "-"
            lines.append(f"  {row['chapter']:<24}{row['gpu_runs']:>9}{row['cpu_runs']:>9}{row['gpu_evaluations']:>10}"
                         f"{peak:>10}{fits:>6}{row['gpu_hours']:>11.1f}")
        lines.append(f"  {'total':<24}{'':>44}{sum(r['gpu_hours'] for r in p.chapters):>11.1f}")
    lines += ["  (not in the cost model: the reward models' and scorers' own memory)", ""]
    if p.ok:
        lines.append("Verdict: ready. Everything is present and the runs are estimated to fit.")
    else:
        lines.append("Verdict: REFUSED. Nothing was run and nothing was written:")
        lines += [f"  - {problem}" for problem in p.problems]
        if p.suggestions:
            lines.append("  What would fit (cost model):")
            lines += [f"    {suggestion}" for suggestion in p.suggestions]
    return "\n".join(lines)


# -- this machine ---------------------------------------------------------------------------------------------------

def _listing(need: Need, cache_root: Path) -> list[str] | None:
    """The file names at a need's location (a hub cache folder: its current snapshot's), or None if it is absent."""
    location = Path(need.location)
    if location.parent == cache_root:  # a hub cache folder: the files of the snapshot that refs/main names
        ref = location / "refs" / "main"
        if not ref.is_file():
            return None
        location = location / "snapshots" / ref.read_text().strip()
    return sorted(p.name for p in location.iterdir() if p.is_file()) if location.is_dir() else None


def survey(needs: Sequence[Need], cache: Path | None = None) -> Facts:
    """This machine's facts, read only: CUDA GPUs (`plan.local_gpu`), the files at each need's location, whether
    deepspeed is installed."""
    import torch

    from cotlab.experiments.plan import local_gpu

    cache_root = cache or _hub_cache()
    files = {need.name: found for need in needs if (found := _listing(need, cache_root)) is not None}
    cuda = torch.cuda.is_available()
    gpus = tuple(local_gpu(i) for i in range(torch.cuda.device_count())) if cuda else ()
    note = "" if cuda else (f"torch {torch.__version__} is a CPU build" if torch.version.cuda is None
                            else "torch.cuda.is_available() is False")
    packages = [name for name in ("deepspeed",) if importlib.util.find_spec(name) is not None]
    return Facts(gpus, files, packages, note)


def planned(tier: str, chapters: Sequence[str]) -> tuple[list[PlannedRun], list[tuple[str, str | None]]]:
    """The RL runs and evaluations `chapters` plan in `tier` (`graph.plan`), each under the first chapter that plans
    it (chapter 4 reads chapter 3's runs)."""
    from cotlab.experiments.graph import plan
    from cotlab.training import CONFIGS

    seen, runs, evaluations = set(), [], []
    for chapter in chapters:
        for node in plan(tier, [chapter]).nodes.values():
            if node.id in seen or node.kind not in ("rl", "evaluation"):
                continue
            seen.add(node.id)
            config = node.kwargs.get("config")
            policy = config["policy"] if config else node.kwargs["policy"]
            model = policy_model(policy)
            if node.kind == "rl":
                runs.append(PlannedRun(chapter, model, CONFIGS[config["algorithm"]].from_dict(config)))
            else:
                evaluations.append((chapter, model))
    return runs, evaluations


def paper_preflight(root, chapters: Sequence[str], tier: str = "paper") -> Preflight:
    """`assess` on this machine for `chapters` of `tier` under the repository `root`."""
    needs = paper_needs(Path(root))
    runs, evaluations = planned(tier, chapters)
    return assess(needs, survey(needs), runs, evaluations, chapters)


__all__ = ["ENV_COMPBENCH", "ENV_GENEVAL", "EVAL_IMAGES", "Facts", "Need", "PlannedRun", "Preflight", "assess",
           "choose_setup", "format_preflight", "hub_location", "missing_files", "paper_needs", "paper_preflight",
           "planned", "survey"]
