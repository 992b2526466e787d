"""The paper's two benchmarks at full scale: the generation protocol and the folder layouts that their official
scorers read (their prompt files: `cotlab.prompt_files`).

GenEval (Ghosh et al. 2023, github.com/djghosh13/geneval), the paper's out-of-domain benchmark:
    images    4 per prompt (`generation/diffusers_generate.py`, `--n_samples 4`), in
              <outdir>/<index:05>/metadata.jsonl   the prompt's line, as `json.dump` writes it
              <outdir>/<index:05>/samples/<j:04>.png   (README; the script itself writes <j:05>; `evaluate_images.py`
                                                        reads every `\\d+\\.png`)
T2I-CompBench(++) (Huang et al. 2023/2025, github.com/Karine-Huang/T2I-CompBench), the paper's in-domain benchmark:
    images    10 per val prompt (`GORS_finetune/inference_eval.py`, `--n_iter 10`), in
              <outdir>/<category>/samples/<prompt>_<k:06>.png
              with k a running number over the category (prompt i's images are k = 10 i ... 10 i + 9): the scorers take
              the prompt from the name before the first "_" and order images by k (the "question_id").

`write_generations` writes any sampler's images in the official layouts, atomically per prompt and resumably.
Official numbers come from the official harnesses run on these folders; `cotlab.evaluation.geneval` and
`cotlab.evaluation.t2i_compbench` score the same folders through transformers, with the differences they document.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from cotlab.prompt_files import BenchmarkFileError, CompBenchPrompt, GenEvalPrompt

GENEVAL_IMAGES_PER_PROMPT = 4
COMPBENCH_IMAGES_PER_PROMPT = 10


# ---------------------------------------------------------------------------------------------------------------------
# Generation

Sampler = Callable[[list[str], int], list[Image.Image]]


@dataclass
class GenerationReport:
    """What `write_generations` did."""

    written: int  # prompts generated in this call
    skipped: int  # prompts already complete on disk
    images: int  # images written in this call
    folders: list[Path]  # the official-layout folders (GenEval: outdir; T2I-CompBench: outdir/<category>)


def policy_sampler(policy, *, guidance_scale: float = 5.0, temperature: float = 1.0, top_k: int = 0,
                   seed: int = 0) -> Sampler:
    """A `sample(prompts, n) -> images` for `write_generations` from a cotlab policy (`JanusPolicy.sample`).

    Image j of a prompt is drawn from its own stream, seeded by (seed, prompt, j), so an image does not depend on the
    batch it was drawn in, and a resumed run draws the images an uninterrupted one would have (the official scripts fix
    the seed per prompt: GenEval 42 per prompt, T2I-CompBench 42 + j)."""

    def sample(prompts: list[str], n: int) -> list[Image.Image]:
        seeds = [row_seed(seed, p, j) for p in prompts for j in range(n)]
        return policy.sample(list(prompts), n, guidance_scale=guidance_scale, temperature=temperature, top_k=top_k,
                             row_seeds=seeds).images

    return sample


def row_seed(seed: int, prompt: str, j: int) -> int:
    """A 63-bit seed for image j of `prompt`, stable across processes and Python versions."""
    digest = hashlib.blake2b(f"{int(seed)}\x00{prompt}\x00{int(j)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _sampled(sample: Sampler, texts: list[str], n: int) -> list[Image.Image]:
    images = list(sample(texts, n))
    if len(images) != len(texts) * n:
        raise ValueError(f"the sampler returned {len(images)} images for {len(texts)} prompts x {n}; it must return "
                         f"n images per prompt, prompt-major")
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(f"the sampler's image {i} is a {type(image).__name__}, not a PIL image")
    return images


def _save_png(image: Image.Image, path: Path) -> None:
    image.convert("RGB").save(path, format="PNG")


def _geneval_complete(folder: Path, prompt: GenEvalPrompt, n: int) -> bool:
    """Whether `folder` already holds `prompt` with its n images; an error if it holds something else."""
    meta = folder / "metadata.jsonl"
    try:
        held = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        held = None
    if held != prompt.metadata:
        raise FileExistsError(f"{folder} exists and does not hold GenEval prompt {prompt.index} ({prompt.prompt!r}): "
                              f"its metadata.jsonl differs. Write to a fresh directory, or delete the folder")
    missing = [j for j in range(n) if not (folder / "samples" / f"{j:04d}.png").is_file()]
    if missing:
        raise FileExistsError(f"{folder} holds prompt {prompt.index} but lacks samples {missing} of the {n} asked "
                              f"for; delete the folder to regenerate it")
    return True


def _write_geneval(sample: Sampler, prompts: list[GenEvalPrompt], outdir: Path, n: int, batch_prompts: int,
                   progress: bool) -> GenerationReport:
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob(".cotlab-tmp-*"):  # an interrupted run's unfinished prompt folders
        shutil.rmtree(stale, ignore_errors=True)
    todo = [p for p in prompts if not (outdir / f"{p.index:05d}").exists()
            or not _geneval_complete(outdir / f"{p.index:05d}", p, n)]
    images = 0
    for start in tqdm(range(0, len(todo), batch_prompts), desc="GenEval", disable=not progress, leave=False):
        chunk = todo[start:start + batch_prompts]
        drawn = _sampled(sample, [p.prompt for p in chunk], n)
        for k, p in enumerate(chunk):
            tmp = outdir / f".cotlab-tmp-{p.index:05d}-{uuid.uuid4().hex[:8]}"
            (tmp / "samples").mkdir(parents=True)
            with open(tmp / "metadata.jsonl", "w") as fp:
                json.dump(p.metadata, fp)  # as the official generation script writes it
            for j in range(n):
                _save_png(drawn[k * n + j], tmp / "samples" / f"{j:04d}.png")
            os.rename(tmp, outdir / f"{p.index:05d}")  # the prompt appears whole or not at all
            images += n
    return GenerationReport(len(todo), len(prompts) - len(todo), images, [outdir])


_COMPBENCH_NAME = re.compile(r"(?P<prompt>[^_]*)_.*?(?P<k>\d+)\.png")


def compbench_filename(prompt: str, k: int) -> str:
    """The official name of image k (a running number over the category) of `prompt`: `<prompt>_<k:06>.png`."""
    if "_" in prompt or "/" in prompt or "\x00" in prompt:
        raise ValueError(f"T2I-CompBench prompt {prompt!r} cannot be a file name in the official layout (the scorers "
                         f"take the prompt from the name before the first '_'; '/' and NUL are not allowed)")
    name = f"{prompt}_{k:06d}.png"
    if len(name.encode()) > 255:
        raise ValueError(f"T2I-CompBench prompt {prompt[:40]!r}... is too long for a file name ({len(name.encode())} "
                         f"bytes > 255)")
    return name


def _write_compbench(sample: Sampler, prompts: list[CompBenchPrompt], outdir: Path, n: int, batch_prompts: int,
                     progress: bool) -> GenerationReport:
    written = skipped = images = 0
    folders = []
    for category in dict.fromkeys(p.category for p in prompts):
        group = [p for p in prompts if p.category == category]
        folder = outdir / category
        samples, staging = folder / "samples", folder / ".cotlab-partial"
        samples.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)  # an interrupted run's unfinished images
        staging.mkdir()
        held = {}
        for name in os.listdir(samples):
            match = _COMPBENCH_NAME.fullmatch(name)
            if match:
                held[int(match["k"])] = name
        todo = []
        for p in group:
            names = [compbench_filename(p.prompt, p.index * n + j) for j in range(n)]
            foreign = [held[p.index * n + j] for j in range(n)
                       if p.index * n + j in held and held[p.index * n + j] != names[j]]
            if foreign:
                raise FileExistsError(f"{samples} holds {foreign[0]!r} where prompt {p.index} ({p.prompt!r}) goes with "
                                      f"{n} images per prompt; write to a fresh directory")
            if all((samples / name).is_file() for name in names):
                skipped += 1
            else:
                todo.append((p, names))  # missing, or left incomplete by an interrupted run: (re)draw all n
        for start in tqdm(range(0, len(todo), batch_prompts), desc=f"T2I-CompBench {category}",
                          disable=not progress, leave=False):
            chunk = todo[start:start + batch_prompts]
            drawn = _sampled(sample, [p.prompt for p, _ in chunk], n)
            for k, (_, names) in enumerate(chunk):
                for j, name in enumerate(names):
                    _save_png(drawn[k * n + j], staging / name)
                    os.replace(staging / name, samples / name)  # each image appears whole or not at all
                images += n
                written += 1
        staging.rmdir()
        folders.append(folder)
    return GenerationReport(written, skipped, images, folders)


def write_generations(sample: Sampler, prompts: Sequence[GenEvalPrompt] | Sequence[CompBenchPrompt], outdir, *,
                      images_per_prompt: int | None = None, batch_prompts: int = 8,
                      progress: bool = True) -> GenerationReport:
    """Draw `images_per_prompt` images per prompt with `sample(prompts, n) -> list of PIL images` (n per prompt,
    prompt-major; `policy_sampler` makes one from a policy) and write them in the benchmark's official layout:

        GenEval prompts        <outdir>/<index:05>/metadata.jsonl, <outdir>/<index:05>/samples/<j:04>.png  (n = 4)
        T2I-CompBench prompts  <outdir>/<category>/samples/<prompt>_<index * n + j:06>.png                 (n = 10)

    A prompt's folder (GenEval) or each image (T2I-CompBench) is written under a temporary name and renamed into place,
    so an interrupted run leaves no half-written file. Calling again resumes: prompts already complete on disk are
    skipped, a T2I-CompBench prompt with only some of its images is drawn again, and a folder that holds other prompts
    (another prompt set, another n) is an error rather than a silent mix."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts to generate")
    if batch_prompts < 1:
        raise ValueError(f"batch_prompts must be at least 1, got {batch_prompts}")
    kinds = {type(p) for p in prompts}
    if kinds == {GenEvalPrompt}:
        n = GENEVAL_IMAGES_PER_PROMPT if images_per_prompt is None else images_per_prompt
        keys = [p.index for p in prompts]
        writer = _write_geneval
    elif kinds == {CompBenchPrompt}:
        n = COMPBENCH_IMAGES_PER_PROMPT if images_per_prompt is None else images_per_prompt
        keys = [(p.category, p.index) for p in prompts]
        writer = _write_compbench
        for p in prompts:
            compbench_filename(p.prompt, 0)  # refuse an unnameable prompt before drawing anything
    else:
        raise TypeError(f"prompts must be all GenEvalPrompt (from load_geneval) or all CompBenchPrompt (from "
                        f"load_compbench); got {', '.join(sorted(k.__name__ for k in kinds))}")
    if len(set(keys)) != len(keys):
        raise ValueError("two prompts share an index (and category); their images would share a file name")
    if n < 1:
        raise ValueError(f"images_per_prompt must be at least 1, got {n}")
    return writer(sample, prompts, Path(outdir).expanduser(), n, batch_prompts, progress)


# ---------------------------------------------------------------------------------------------------------------------
# Reading the official layouts back


def read_geneval_folder(outdir) -> list[tuple[dict, Path]]:
    """(metadata, image path) for every image in a GenEval folder, as `evaluation/evaluate_images.py` finds them:
    sub-folders whose name is all digits, their `metadata.jsonl`, and their `samples/<digits>.png`; sorted."""
    outdir = Path(outdir).expanduser()
    if not outdir.is_dir():
        raise FileNotFoundError(f"no GenEval image folder {str(outdir)!r}")
    rows = []
    for folder in sorted(p for p in outdir.iterdir() if p.is_dir() and p.name.isdigit()):
        metadata = json.loads((folder / "metadata.jsonl").read_text())
        for image in sorted((folder / "samples").iterdir()):
            if image.is_file() and re.fullmatch(r"\d+\.png", image.name):
                rows.append((metadata, image))
    return rows


def read_compbench_folder(folder) -> list[tuple[str, int, Path]]:
    """(prompt, question id, image path) for every image in `<folder>/samples`, as the official scorers read them:
    the prompt is the name before the first "_", the question id the number after the last "_"; sorted by it."""
    samples = Path(folder).expanduser() / "samples"
    if not samples.is_dir():
        raise FileNotFoundError(f"no T2I-CompBench samples folder {str(samples)!r}")
    rows = []
    for path in samples.iterdir():
        stem = path.name.rsplit(".", 1)[0]
        if not path.is_file() or "_" not in stem or not stem.rsplit("_", 1)[1].isdigit():
            raise BenchmarkFileError(f"{path}: not an official T2I-CompBench image name <prompt>_<number>.png")
        rows.append((path.name.split("_")[0], int(stem.rsplit("_", 1)[1]), path))
    return sorted(rows, key=lambda row: row[1])


__all__ = ["COMPBENCH_IMAGES_PER_PROMPT", "GENEVAL_IMAGES_PER_PROMPT", "GenerationReport", "Sampler",
           "compbench_filename", "policy_sampler", "read_compbench_folder", "read_geneval_folder", "row_seed",
           "write_generations"]
