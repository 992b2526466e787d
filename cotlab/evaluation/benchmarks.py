"""The paper's two benchmarks at full scale: their official prompt files, the generation protocol, and the folder
layouts that their official scorers read.

GenEval (Ghosh et al. 2023, github.com/djghosh13/geneval), the paper's out-of-domain benchmark:
    prompts   `prompts/evaluation_metadata.jsonl`, 553 lines, one JSON object each:
              {"tag": task, "include": [clause, ...], "exclude": [clause, ...] (optional), "prompt": text}
              clause = {"class": COCO name, "count": n, "color": colour (optional), "position": [relation, i] (optional,
              relative to include clause i)}; tasks single_object 80, two_object 99, counting 80, colors 94,
              position 100, color_attr 100.
    images    4 per prompt (`generation/diffusers_generate.py`, `--n_samples 4`), in
              <outdir>/<index:05>/metadata.jsonl   the prompt's line, as `json.dump` writes it
              <outdir>/<index:05>/samples/<j:04>.png   (README; the script itself writes <j:05>; `evaluate_images.py`
                                                        reads every `\\d+\\.png`)
T2I-CompBench(++) (Huang et al. 2023/2025, github.com/Karine-Huang/T2I-CompBench), the paper's in-domain benchmark:
    prompts   `examples/dataset/<category>_{train,val}.txt`, one prompt per line, 700 train / 300 val per category, for
              the 8 categories color, shape, texture, spatial, non_spatial, complex, numeracy, 3d_spatial. The paper's
              5.6k training prompts are the 8 train files (8 x 700). The files are read as the official
              `inference_eval.py` reads them (`splitlines()`, the text before a tab); some end without a final newline,
              some use CRLF, and some train files repeat a prompt (kept: they are the official data).
    images    10 per val prompt (`GORS_finetune/inference_eval.py`, `--n_iter 10`), in
              <outdir>/<category>/samples/<prompt>_<k:06>.png
              with k a running number over the category (prompt i's images are k = 10 i ... 10 i + 9): the scorers take
              the prompt from the name before the first "_" and order images by k (the "question_id").

`load_geneval` and `load_compbench` read and validate the files a user supplies (cotlab ships none of them): a wrong
count, an empty line, malformed JSON or a missing field is a `BenchmarkFileError` naming the file, the line and what was
expected. `write_generations` writes any sampler's images in the official layouts, atomically per prompt and resumably.
Official numbers come from the official harnesses run on these folders; `cotlab.evaluation.benchmark_scorers` scores
the same folders through transformers, with the differences it documents.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

GENEVAL_FILE = "evaluation_metadata.jsonl"
GENEVAL_PROMPTS = 553
GENEVAL_TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
GENEVAL_TAG_COUNTS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                      "color_attr": 100}
GENEVAL_IMAGES_PER_PROMPT = 4
# The colours GenEval's CLIP classifier chooses among (`COLORS` in evaluation/evaluate_images.py).
GENEVAL_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
GENEVAL_RELATIONS = ("left of", "right of", "above", "below")
# The 80 COCO object classes in the detector's (mmdetection's CocoDataset) order.
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")
# GenEval names the same classes, index for index, with three renamed (`object_names.txt`).
GENEVAL_RENAMED = {"mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard"}
GENEVAL_CLASSES = tuple(GENEVAL_RENAMED.get(name, name) for name in COCO_CLASSES)

COMPBENCH_CATEGORIES = ("color", "shape", "texture", "spatial", "non_spatial", "complex", "numeracy", "3d_spatial")
COMPBENCH_SPLITS = {"train": 700, "val": 300}
COMPBENCH_IMAGES_PER_PROMPT = 10
OFFICIAL = "official"  # `expected=OFFICIAL`: the official number of prompts


class BenchmarkFileError(ValueError):
    """A benchmark file that is not what the official one looks like; the message names the file and the line."""


@dataclass
class GenEvalPrompt:
    """One line of GenEval's `evaluation_metadata.jsonl`."""

    index: int  # 0-based line number: the image folder is <outdir>/<index:05>
    prompt: str
    tag: str  # the task: one of GENEVAL_TAGS
    include: list[dict]  # clauses that must hold (AND)
    exclude: list[dict]  # clauses that must not hold (OR): {"class", "count"} fails with count or more such objects
    metadata: dict = field(repr=False)  # the line's JSON object, verbatim (what <index:05>/metadata.jsonl holds)


@dataclass(frozen=True)
class CompBenchPrompt:
    """One line of a T2I-CompBench category file."""

    index: int  # 0-based line number in its file: its images are numbered index * n ... index * n + n - 1
    prompt: str
    category: str  # one of COMPBENCH_CATEGORIES
    split: str  # "train" or "val"


def _read_lines(path: Path, what: str, source: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {str(path)!r}. cotlab ships no benchmark prompts; get it from "
                                f"{source} and pass its path")
    try:
        return path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise BenchmarkFileError(f"{path}: not UTF-8 text ({error}); expected the official file from "
                                 f"{source}") from None


def _check_count(path: Path, found: int, expected: int | None, what: str) -> None:
    if expected is not None and found != expected:
        raise BenchmarkFileError(f"{path}: {found} prompts, expected {expected} ({what}); pass expected=None (or the "
                                 f"number your file holds) to load a subset or another version")


GENEVAL_SOURCE = "github.com/djghosh13/geneval (prompts/evaluation_metadata.jsonl)"


def _geneval_clause(path: Path, line: int, clause, where: str, position: int | None) -> dict:
    """Check one include (position = its index) or exclude (position None) clause."""
    def bad(problem: str):
        return BenchmarkFileError(f"{path}, line {line}: {where}: {problem}")

    if not isinstance(clause, dict):
        raise bad(f"is a {type(clause).__name__}; expected an object with \"class\" and \"count\"")
    allowed = {"class", "count", "color", "position"} if position is not None else {"class", "count"}
    unknown = sorted(set(clause) - allowed)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}; expected only {', '.join(sorted(allowed))}")
    for key in ("class", "count"):
        if key not in clause:
            raise bad(f"missing field {key!r}")
    if clause["class"] not in GENEVAL_CLASSES:
        raise bad(f"class {clause['class']!r} is not one of GenEval's 80 COCO classes (GENEVAL_CLASSES)")
    count = clause["count"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise bad(f"count {count!r}; expected an integer >= 1")
    if "color" in clause and clause["color"] not in GENEVAL_COLORS:
        raise bad(f"color {clause['color']!r}; expected one of {', '.join(GENEVAL_COLORS)}")
    if "position" in clause:
        rel = clause["position"]
        if (not isinstance(rel, list) or len(rel) != 2 or rel[0] not in GENEVAL_RELATIONS
                or not isinstance(rel[1], int) or isinstance(rel[1], bool) or not 0 <= rel[1] < position):
            raise bad(f"position {rel!r}; expected [relation, i] with relation one of {', '.join(GENEVAL_RELATIONS)} "
                      f"and i the index of an earlier include clause")
    return clause


def load_geneval(path, *, expected: int | None = GENEVAL_PROMPTS) -> list[GenEvalPrompt]:
    """GenEval's prompts from `path` (`evaluation_metadata.jsonl`, or a directory holding it), validated line by line.

    `expected` is the number of prompts the file must hold (the official 553); None accepts any number, for a subset
    or a regenerated prompt set (`prompts/create_prompts.py`). Extra top-level keys are kept in `metadata`; extra keys
    inside a clause are refused, since GenEval's scorer would silently ignore them."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / GENEVAL_FILE
    prompts = []
    for number, text in enumerate(_read_lines(path, "GenEval", GENEVAL_SOURCE), start=1):
        def bad(problem: str, number=number):
            return BenchmarkFileError(f"{path}, line {number}: {problem}")

        if not text.strip():
            raise bad("empty line; expected one JSON object per line")
        try:
            item = json.loads(text)
        except json.JSONDecodeError as error:
            raise bad(f"malformed JSON ({error.msg} at column {error.colno}); expected one JSON object per line") \
                from None
        if not isinstance(item, dict):
            raise bad(f"a JSON {type(item).__name__}; expected an object with \"tag\", \"include\", \"prompt\"")
        for key in ("tag", "include", "prompt"):
            if key not in item:
                raise bad(f"missing field {key!r}; expected \"tag\", \"include\", \"prompt\" (and optionally "
                          f"\"exclude\")")
        if item["tag"] not in GENEVAL_TAGS:
            raise bad(f"tag {item['tag']!r}; expected one of {', '.join(GENEVAL_TAGS)}")
        if not isinstance(item["prompt"], str) or not item["prompt"].strip():
            raise bad("\"prompt\" is not a non-empty string")
        if not isinstance(item["include"], list) or not item["include"]:
            raise bad("\"include\" is not a non-empty list of clauses")
        exclude = item.get("exclude", [])
        if not isinstance(exclude, list):
            raise bad("\"exclude\" is not a list of clauses")
        include = [_geneval_clause(path, number, c, f"include[{i}]", i) for i, c in enumerate(item["include"])]
        exclude = [_geneval_clause(path, number, c, f"exclude[{i}]", None) for i, c in enumerate(exclude)]
        prompts.append(GenEvalPrompt(number - 1, item["prompt"], item["tag"], include, exclude, item))
    _check_count(path, len(prompts), expected, "GenEval's evaluation_metadata.jsonl has 553")
    return prompts


COMPBENCH_SOURCE = "github.com/Karine-Huang/T2I-CompBench (examples/dataset/)"


def load_compbench(directory, category: str, split: str = "val", *,
                   expected: int | None | str = OFFICIAL) -> list[CompBenchPrompt]:
    """One T2I-CompBench category file, `<directory>/<category>_<split>.txt`, validated line by line.

    `expected` is the number of prompts it must hold: OFFICIAL (700 for train, 300 for val), a number, or None for any.
    A line is read as the official `inference_eval.py` reads it (the text before a tab), stripped; an empty line is an
    error."""
    if category not in COMPBENCH_CATEGORIES:
        raise ValueError(f"unknown T2I-CompBench category {category!r}; known: {', '.join(COMPBENCH_CATEGORIES)}")
    if split not in COMPBENCH_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(COMPBENCH_SPLITS)}")
    path = Path(directory).expanduser() / f"{category}_{split}.txt"
    prompts = []
    for number, text in enumerate(_read_lines(path, "T2I-CompBench", COMPBENCH_SOURCE), start=1):
        prompt = text.split("\t")[0].strip()
        if not prompt:
            raise BenchmarkFileError(f"{path}, line {number}: empty line; expected one prompt per line")
        prompts.append(CompBenchPrompt(number - 1, prompt, category, split))
    want = COMPBENCH_SPLITS[split] if expected == OFFICIAL else expected
    _check_count(path, len(prompts), want, f"each official {split} file has {COMPBENCH_SPLITS[split]}")
    return prompts


def load_compbench_train(directory, categories: Sequence[str] = COMPBENCH_CATEGORIES, *,
                         expected: int | None | str = OFFICIAL) -> list[CompBenchPrompt]:
    """The training prompts of `categories` (all 8 by default: the paper's 5.6k = 8 x 700), category by category."""
    return [p for c in categories for p in load_compbench(directory, c, "train", expected=expected)]


COMPLEX_KINDS = ("spatial", "action", "spatial_action")


def load_complex_kinds(directory, prompts: Sequence[CompBenchPrompt]) -> list[str]:
    """Which relations each complex prompt holds, as the official `3_in_1_eval/3_in_1.py` decides it from
    `complex_val_spatial.txt` and `complex_val_action.txt`: "spatial" if the prompt (lower-cased, up to its first ".")
    is in the spatial file, else "action" if it is in the action file, else "spatial_action". 3-in-1 averages the
    attribute score with the spatial score, the action (CLIP) score, or both."""
    directory = Path(directory).expanduser()
    sets = {}
    for kind in ("spatial", "action"):
        lines = _read_lines(directory / f"complex_val_{kind}.txt", "T2I-CompBench 3-in-1", COMPBENCH_SOURCE)
        sets[kind] = {line.strip("\n").split(".")[0].lower() for line in lines}
    kinds = []
    for p in prompts:
        key = p.prompt.split(".")[0].lower()
        kinds.append("spatial" if key in sets["spatial"] else "action" if key in sets["action"] else "spatial_action")
    return kinds


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


__all__ = ["BenchmarkFileError", "COCO_CLASSES", "COMPBENCH_CATEGORIES", "COMPBENCH_IMAGES_PER_PROMPT",
           "COMPBENCH_SPLITS", "COMPLEX_KINDS", "CompBenchPrompt", "GENEVAL_CLASSES", "GENEVAL_COLORS",
           "GENEVAL_IMAGES_PER_PROMPT", "GENEVAL_PROMPTS", "GENEVAL_RELATIONS", "GENEVAL_RENAMED", "GENEVAL_TAGS",
           "GENEVAL_TAG_COUNTS", "GenEvalPrompt", "GenerationReport", "OFFICIAL", "Sampler", "compbench_filename",
           "load_compbench", "load_compbench_train", "load_complex_kinds", "load_geneval", "policy_sampler",
           "read_compbench_folder", "read_geneval_folder", "row_seed", "write_generations"]
