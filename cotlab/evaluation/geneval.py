"""GenEval scored through transformers alone, for users who cannot install the official harness (mmdetection 2.x,
open_clip). Official numbers come from the official harness run on `write_generations`' folders; this scorer follows
it rule for rule, and each docstring says where it differs. The rule logic is pure functions over detections (boxes,
scores, labels, masks); the model wrappers are separate classes, each built from a checkpoint with `from_pretrained`
or around a loaded model.

GenEval (github.com/djghosh13/geneval, evaluation/evaluate_images.py), per image:
    detector   `Mask2FormerDetector` (`cotlab.evaluation.vision`): mmdetection's Mask2Former Swin-S on COCO.
    objects    per class, score > 0.3 (> 0.9 for the counting task), most confident first, at most 16, no NMS.
    include    each clause {class, count, color?, position?} (AND): at least `count` objects of `class`; its `count`
               most confident ones must have `color` (at least `count` of them classified so) and, for `position`
               [relation, i], each must stand in `relation` to each object matched by include clause i.
    exclude    each clause {class, count} (OR) fails with `count` or more objects of `class` (counting: exactly N is
               include N plus exclude N + 1).
    position   relation(A, B) from box centres: offset = c_A - c_B, shrunk per axis by 0.1 x (w_A + w_B) (resp. heights)
               towards 0; no relation if both are ~0; else with (dx, dy) = shrunk offset / |offset|: left of dx < -0.5,
               right of dx > 0.5, above dy < -0.5, below dy > 0.5. (The 0.1 margin is of the two objects' sizes, not
               of the image's; `cotlab.world.scoring.box_relations`, the exact scorer's rule too.)
    colour     CLIP ViT-L/14 (official: open_clip's "openai" weights; here transformers' openai/clip-vit-large-patch14,
               the same weights) zero-shot over GENEVAL_COLORS, class weights = the normalised mean of the normalised
               text embeddings of "a photo of a {c} {class}", "a photo of a {c}-colored {class}", "a photo of a {c}
               object", on the object's pixels composited over grey #999 by its mask and cropped to its box.
    scores     an image is correct or not; task score = fraction of correct images of the task (summary_scores.py);
               overall = mean of the six task scores.

Checkpoints load with `from_pretrained` from a local directory or a hub id, never falling back to random weights
(`cotlab.checkpoints`): a missing checkpoint is a FileNotFoundError naming it, how to download it, and how to point
cotlab at it.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from cotlab.checkpoints import load_clip
from cotlab.evaluation.benchmarks import read_geneval_folder
from cotlab.evaluation.vision import MASK2FORMER_CHECKPOINT, Detections, Mask2FormerDetector, clip_embeddings
from cotlab.prompt_files import GENEVAL_CLASSES, GENEVAL_COLORS, GENEVAL_TAGS, GenEvalPrompt
from cotlab.world.scoring import POSITION_THRESHOLD, box_relations

GENEVAL_CLIP_CHECKPOINT = "openai/clip-vit-large-patch14"
GENEVAL_THRESHOLD = 0.3
GENEVAL_COUNTING_THRESHOLD = 0.9
GENEVAL_MAX_OBJECTS = 16
GENEVAL_NMS_THRESHOLD = 1.0  # 1 = no non-maximum suppression
GENEVAL_POSITION_THRESHOLD = POSITION_THRESHOLD  # 0.1, the exact scorer's margin too
GENEVAL_COLOR_TEMPLATES = ("a photo of a {c} {classname}", "a photo of a {c}-colored {classname}",
                           "a photo of a {c} object")


# ---------------------------------------------------------------------------------------------------------------------
# Rules over detections


@dataclass
class DetectedObject:
    """A detection kept by GenEval: box (x1, y1, x2, y2), score, and mask (H, W) or None."""

    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray | None = field(default=None, repr=False)


def geneval_iou(box_a, box_b) -> float:
    """IoU with GenEval's inclusive pixel convention (width = x2 - x1 + 1), as its optional NMS computes it."""
    def area(b):
        return max(b[2] - b[0] + 1, 0) * max(b[3] - b[1] + 1, 0)

    inter = area([max(box_a[0], box_b[0]), max(box_a[1], box_b[1]), min(box_a[2], box_b[2]), min(box_a[3], box_b[3])])
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0.0


def geneval_objects(detections: Detections, threshold: float, *, max_objects: int = GENEVAL_MAX_OBJECTS,
                    nms_threshold: float = GENEVAL_NMS_THRESHOLD) -> dict[str, list[DetectedObject]]:
    """GenEval's kept objects per class: score > `threshold`, most confident first, at most `max_objects`, then greedy
    NMS at IoU `nms_threshold` (none at the default 1.0). Classes with nothing kept are absent."""
    kept: dict[str, list[DetectedObject]] = {}
    for name in dict.fromkeys(detections.labels):
        index = np.array([i for i, label in enumerate(detections.labels) if label == name])
        order = index[np.argsort(-detections.scores[index], kind="stable")]
        order = [int(i) for i in order if detections.scores[i] > threshold][:max_objects]
        objects = []
        while order:
            best = order.pop(0)
            objects.append(DetectedObject(tuple(float(v) for v in detections.boxes[best]),
                                          float(detections.scores[best]),
                                          None if detections.masks is None else detections.masks[best]))
            if nms_threshold < 1:
                order = [i for i in order if geneval_iou(detections.boxes[best], detections.boxes[i]) < nms_threshold]
        if objects:
            kept[name] = objects
    return kept


ColorFn = Callable[[str, list[DetectedObject]], list[str]]


def evaluate_geneval(metadata: Mapping, objects: Mapping[str, list[DetectedObject]], classify_colors: ColorFn, *,
                     position_threshold: float = GENEVAL_POSITION_THRESHOLD) -> tuple[bool, str]:
    """Whether an image's kept `objects` satisfy a GenEval prompt's `metadata`, and why not (GenEval's `evaluate`).

    Include clauses AND, exclude clauses OR. An include clause takes the `count` most confident objects of its class;
    `classify_colors(class, those objects)` names their colours; its position is checked against the objects matched
    by the clause it points to (none if that clause failed). An exclude clause fails with `count` or more objects."""
    correct, reasons, matched_groups = True, [], []
    for req in metadata.get("include", []):
        classname, count = req["class"], req["count"]
        matched = True
        found = list(objects.get(classname, []))[:count]
        if len(found) < count:
            correct = matched = False
            reasons.append(f"expected {classname}>={count}, found {len(found)}")
        else:
            if "color" in req:
                colors = classify_colors(classname, found)
                if colors.count(req["color"]) < count:
                    correct = matched = False
                    reasons.append(f"expected {req['color']} {classname}>={count}, found "
                                   f"{colors.count(req['color'])} {req['color']}; and "
                                   + ", ".join(f"{colors.count(c)} {c}" for c in GENEVAL_COLORS if c in colors))
            if "position" in req and matched:
                expected_rel, target = req["position"]
                if matched_groups[target] is None:
                    correct = matched = False
                    reasons.append(f"no target for {classname} to be {expected_rel}")
                else:
                    for obj in found:
                        for target_obj in matched_groups[target]:
                            true_rels = box_relations(obj.box, target_obj.box, position_threshold)
                            if expected_rel not in true_rels:
                                correct = matched = False
                                reasons.append(f"expected {classname} {expected_rel} target, found "
                                               f"{' and '.join(sorted(true_rels))} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        classname = req["class"]
        if len(objects.get(classname, [])) >= req["count"]:
            correct = False
            reasons.append(f"expected {classname}<{req['count']}, found {len(objects[classname])}")
    return correct, "\n".join(reasons)


# ---------------------------------------------------------------------------------------------------------------------
# The colour classifier and the scorer


class CLIPColorClassifier:
    """GenEval's colour classifier (`color_classification`): CLIP zero-shot over `colors`, one classifier per object
    class, its weights the normalised mean of the normalised text embeddings of `templates` (clip_benchmark's
    `zero_shot_classifier`); each object is its image composited over `background` by its mask (when it has one) and
    cropped to its box (PIL rounds the box), and gets the colour of largest cosine. Default checkpoint:
    openai/clip-vit-large-patch14 (GenEval: open_clip ViT-L-14 "openai", the same weights)."""

    def __init__(self, model, processor, *, colors: Sequence[str] = GENEVAL_COLORS,
                 templates: Sequence[str] = GENEVAL_COLOR_TEMPLATES, background: str = "#999", crop: bool = True,
                 batch_size: int = 16):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model, self.processor = model.eval(), processor
        self.colors, self.templates = tuple(colors), tuple(templates)
        self.background, self.crop, self.batch_size = background, bool(crop), int(batch_size)
        self._weights: dict[str, torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls, path=GENEVAL_CLIP_CHECKPOINT, *, device: str = "cpu", dtype="float32",
                        local_files_only: bool = False, **options) -> "CLIPColorClassifier":
        """The classifier with the CLIP at `path`; `options` are the constructor's."""
        model, processor = load_clip(
            "CLIPColorClassifier", path, GENEVAL_CLIP_CHECKPOINT,
            "`CLIPColorClassifier.from_pretrained({dir})` (or `clip_path={dir}` of GenEvalScorer.from_pretrained)",
            device=device, dtype=dtype, local_files_only=local_files_only)
        return cls(model, processor, **options)

    def class_weights(self, classname: str) -> torch.Tensor:
        """(D, len(colors)) zero-shot weights for objects of `classname`."""
        if classname not in self._weights:
            columns = []
            with torch.inference_mode():
                for color in self.colors:
                    texts = [t.replace("{classname}", classname).replace("{c}", color) for t in self.templates]
                    mean = clip_embeddings(self.model, self.processor, texts=texts).mean(0)
                    columns.append(mean / mean.norm())
            self._weights[classname] = torch.stack(columns, dim=1)
        return self._weights[classname]

    def crops(self, image: Image.Image, objects: Sequence[DetectedObject]) -> list[Image.Image]:
        """What the classifier sees of each object."""
        image = image.convert("RGB")
        blank = Image.new("RGB", image.size, color=self.background)
        out = []
        for obj in objects:
            view = image
            if obj.mask is not None:
                if tuple(obj.mask.shape) != (image.height, image.width):
                    raise ValueError(f"an object's mask is {tuple(obj.mask.shape)}, its image {image.height}x"
                                     f"{image.width}; masks must be at the image's size")
                view = Image.composite(image, blank, Image.fromarray(np.asarray(obj.mask, dtype=bool)))
            out.append(view.crop(tuple(obj.box[:4])) if self.crop else view)
        return out

    def __call__(self, image: Image.Image, objects: Sequence[DetectedObject], classname: str) -> list[str]:
        if not objects:
            return []
        weights = self.class_weights(classname)
        crops = self.crops(image, objects)
        best = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                embeds = clip_embeddings(self.model, self.processor, images=crops[start:start + self.batch_size])
                best += (100.0 * embeds @ weights).argmax(1).tolist()
        return [self.colors[i] for i in best]


@dataclass
class GenEvalResult:
    """One image's GenEval verdict, as a line of the official results.jsonl."""

    tag: str
    prompt: str
    correct: bool
    reason: str
    details: dict  # class -> kept boxes [x1, y1, x2, y2, score]
    metadata: dict = field(repr=False)


def _metadata(prompt) -> dict:
    if isinstance(prompt, GenEvalPrompt):
        return prompt.metadata
    if isinstance(prompt, Mapping) and {"tag", "include", "prompt"} <= set(prompt):
        return dict(prompt)
    raise TypeError(f"a GenEval prompt must be a GenEvalPrompt or its metadata dict, got {type(prompt).__name__}")


class GenEvalScorer:
    """GenEval's verdicts through transformers: `detector(images) -> list[Detections]` (default `Mask2FormerDetector`)
    and `color_classifier(image, objects, class) -> colours` (default `CLIPColorClassifier`), with GenEval's rules
    (`geneval_objects`, `evaluate_geneval`) and its defaults: threshold 0.3, counting threshold 0.9, at most 16
    objects per class, no NMS, position margin 0.1. Official GenEval numbers come from the official harness; see the
    module docstring for where this one differs (the detector's framework and resizing)."""

    def __init__(self, detector, color_classifier: Callable, *, threshold: float = GENEVAL_THRESHOLD,
                 counting_threshold: float = GENEVAL_COUNTING_THRESHOLD, max_objects: int = GENEVAL_MAX_OBJECTS,
                 nms_threshold: float = GENEVAL_NMS_THRESHOLD, position_threshold: float = GENEVAL_POSITION_THRESHOLD,
                 batch_size: int = 8):
        labels = getattr(detector, "labels", None)
        if labels is not None:
            missing = [c for c in GENEVAL_CLASSES if c not in set(labels)]
            if missing:
                shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
                raise ValueError(f"the detector cannot find {len(missing)} of GenEval's 80 classes ({shown}); GenEval "
                                 f"needs a COCO detector")
        self.detector, self.color_classifier = detector, color_classifier
        self.threshold, self.counting_threshold = float(threshold), float(counting_threshold)
        self.max_objects, self.nms_threshold = int(max_objects), float(nms_threshold)
        self.position_threshold, self.batch_size = float(position_threshold), int(batch_size)

    @classmethod
    def from_pretrained(cls, detector_path=MASK2FORMER_CHECKPOINT, clip_path=GENEVAL_CLIP_CHECKPOINT, *,
                        device: str = "cpu", dtype="float32", local_files_only: bool = False,
                        **options) -> "GenEvalScorer":
        """The scorer with the detector at `detector_path` and the colour CLIP at `clip_path`; `options` are the
        constructor's (threshold, counting_threshold, max_objects, nms_threshold, position_threshold, batch_size)."""
        common = dict(device=device, dtype=dtype, local_files_only=local_files_only)
        return cls(Mask2FormerDetector.from_pretrained(detector_path, **common),
                   CLIPColorClassifier.from_pretrained(clip_path, **common), **options)

    def __call__(self, prompts, images) -> list[GenEvalResult]:
        """One verdict per (prompt, image); a prompt is a GenEvalPrompt or its metadata dict."""
        metadata = [_metadata(p) for p in prompts]
        images = list(images)
        if len(metadata) != len(images):
            raise ValueError(f"GenEval scorer got {len(metadata)} prompts and {len(images)} images")
        results = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            for meta, image, found in zip(metadata[start:start + self.batch_size], batch, self.detector(batch)):
                threshold = self.counting_threshold if meta["tag"] == "counting" else self.threshold
                objects = geneval_objects(found, threshold, max_objects=self.max_objects,
                                          nms_threshold=self.nms_threshold)
                correct, reason = evaluate_geneval(
                    meta, objects, lambda name, objs, image=image: self.color_classifier(image, objs, name),
                    position_threshold=self.position_threshold)
                details = {name: [[*o.box, o.score] for o in objs] for name, objs in objects.items()}
                results.append(GenEvalResult(meta["tag"], meta["prompt"], correct, reason, details, meta))
        return results

    def score_folder(self, outdir, *, progress: bool = True) -> pd.DataFrame:
        """Every image of a GenEval folder (`read_geneval_folder`), one row per image with the official results.jsonl
        columns: filename, tag, prompt, correct, reason, metadata (JSON), details (JSON)."""
        rows = read_geneval_folder(outdir)
        records = []
        for start in tqdm(range(0, len(rows), self.batch_size), desc="GenEval", disable=not progress, leave=False):
            chunk = rows[start:start + self.batch_size]
            images = [ImageOps.exif_transpose(Image.open(path)).convert("RGB") for _, path in chunk]
            for (meta, path), result in zip(chunk, self([m for m, _ in chunk], images)):
                records.append({"filename": str(path), "tag": result.tag, "prompt": result.prompt,
                                "correct": result.correct, "reason": result.reason, "metadata": json.dumps(meta),
                                "details": json.dumps(result.details)})
        return pd.DataFrame(records, columns=["filename", "tag", "prompt", "correct", "reason", "metadata", "details"])


def geneval_summary(results) -> pd.Series:
    """GenEval's scores (summary_scores.py) from verdicts (GenEvalResults or a frame with "tag" and "correct"): per task
    the fraction of correct images, "overall" the mean of the task scores, "correct_prompts" the fraction of prompts
    with at least one correct image."""
    if isinstance(results, pd.DataFrame):
        frame = results
    else:
        frame = pd.DataFrame([{"tag": r.tag, "correct": r.correct, "prompt": r.prompt} for r in results])
    if frame.empty:
        raise ValueError("no GenEval verdicts to summarise")
    key = "metadata" if "metadata" in frame else "prompt"
    tasks = [t for t in GENEVAL_TAGS if t in set(frame["tag"])] + sorted(set(frame["tag"]) - set(GENEVAL_TAGS))
    scores = {t: float(frame.loc[frame["tag"] == t, "correct"].mean()) for t in tasks}
    scores["overall"] = float(np.mean([scores[t] for t in tasks]))
    scores["correct_prompts"] = float(frame.groupby(key)["correct"].any().mean())
    return pd.Series(scores)


__all__ = ["CLIPColorClassifier", "DetectedObject", "GENEVAL_CLIP_CHECKPOINT", "GENEVAL_COLOR_TEMPLATES",
           "GENEVAL_COUNTING_THRESHOLD", "GENEVAL_MAX_OBJECTS", "GENEVAL_NMS_THRESHOLD", "GENEVAL_POSITION_THRESHOLD",
           "GENEVAL_THRESHOLD", "GenEvalResult", "GenEvalScorer", "evaluate_geneval", "geneval_iou",
           "geneval_objects", "geneval_summary"]
