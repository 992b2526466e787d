"""The paper's two benchmarks' official prompt files, read and validated: T2I-CompBench's train files are training
prompts at paper scale (`cotlab.training`), and both benchmarks' files are what `cotlab.evaluation.benchmarks` generates
for. cotlab ships none of them.

GenEval (Ghosh et al. 2023, github.com/djghosh13/geneval), the paper's out-of-domain benchmark:
    `prompts/evaluation_metadata.jsonl`, 553 lines, one JSON object each:
    {"tag": task, "include": [clause, ...], "exclude": [clause, ...] (optional), "prompt": text}
    clause = {"class": COCO name, "count": n, "color": colour (optional), "position": [relation, i] (optional,
    relative to include clause i)}; tasks single_object 80, two_object 99, counting 80, colors 94, position 100,
    color_attr 100.
T2I-CompBench(++) (Huang et al. 2023/2025, github.com/Karine-Huang/T2I-CompBench), the paper's in-domain benchmark:
    `examples/dataset/<category>_{train,val}.txt`, one prompt per line, 700 train / 300 val per category, for the 8
    categories color, shape, texture, spatial, non_spatial, complex, numeracy, 3d_spatial. The paper's 5.6k training
    prompts are the 8 train files (8 x 700). The files are read as the official `inference_eval.py` reads them
    (`splitlines()`, the text before a tab); some end without a final newline, some use CRLF, and some train files
    repeat a prompt (kept: they are the official data).

`load_geneval` and `load_compbench` read and validate the files a user supplies: a wrong count, an empty line,
malformed JSON or a missing field is a `BenchmarkFileError` naming the file, the line and what was expected.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

GENEVAL_FILE = "evaluation_metadata.jsonl"
GENEVAL_PROMPTS = 553
GENEVAL_TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
GENEVAL_TAG_COUNTS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                      "color_attr": 100}
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


__all__ = ["BenchmarkFileError", "COCO_CLASSES", "COMPBENCH_CATEGORIES", "COMPBENCH_SPLITS", "COMPLEX_KINDS",
           "CompBenchPrompt", "GENEVAL_CLASSES", "GENEVAL_COLORS", "GENEVAL_FILE", "GENEVAL_PROMPTS",
           "GENEVAL_RELATIONS", "GENEVAL_RENAMED", "GENEVAL_TAGS", "GENEVAL_TAG_COUNTS", "GenEvalPrompt", "OFFICIAL",
           "load_compbench", "load_compbench_train", "load_complex_kinds", "load_geneval"]
