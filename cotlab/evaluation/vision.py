"""The vision models behind the GenEval and T2I-CompBench scorers (`cotlab.evaluation.geneval`,
`cotlab.evaluation.t2i_compbench`), through transformers alone: a COCO instance detector and CLIP's embeddings.

    detector   Mask2Former Swin-S, COCO instance segmentation (GenEval's detector; T2I-CompBench's spatial score uses it
               in place of UniDet). Official: mmdetection 2.x's `mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco`; here
               transformers' `Mask2FormerForUniversalSegmentation` (facebook/mask2former-swin-small-coco-instance: the
               same architecture, but the Mask2Former authors' weights, not mmdetection's own training of it), run at
               mmdetection's test scale (shorter side 800, longer <= 1333, padded to 32) with mmdetection's instance
               post-processing (`MaskFormerFusionHead.instance_postprocess`): the top 100 (query, class) pairs by class
               probability, score = p(class) x mean sigmoid over the binary mask, box = the mask's tight box
               (`mask2bbox`). Images are resized with PIL rather than cv2.
    CLIP       `clip_embeddings`: projected, L2-normalised text or image embeddings of a transformers `CLIPModel`.

Checkpoints load with `from_pretrained` from a local directory or a hub id, never falling back to random weights
(`cotlab.checkpoints`): a missing checkpoint is a FileNotFoundError naming it, how to download it, and how to point
cotlab at it.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cotlab.checkpoints import load_pretrained
from cotlab.prompt_files import GENEVAL_RENAMED

MASK2FORMER_CHECKPOINT = "facebook/mask2former-swin-small-coco-instance"
MMDET_TEST_SCALE = (1333, 800)  # mmdetection's Mask2Former test pipeline: Resize(img_scale=(1333, 800), keep_ratio)


@dataclass
class Detections:
    """One image's detections: (N, 4) boxes x1, y1, x2, y2 in pixels of the original image, (N,) scores, N class
    names, and optionally (N, H, W) boolean masks."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str]
    masks: np.ndarray | None = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.labels = list(self.labels)
        n = len(self.boxes)
        if len(self.scores) != n or len(self.labels) != n or (self.masks is not None and len(self.masks) != n):
            masks = "" if self.masks is None else f", {len(self.masks)} masks"
            raise ValueError(f"detections disagree in number: {n} boxes, {len(self.scores)} scores, "
                             f"{len(self.labels)} labels{masks}")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)


_LABEL_ALIASES = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "pottedplant": "potted plant",
                  "diningtable": "dining table", "tvmonitor": "tv", "tv monitor": "tv", "hair dryer": "hair drier",
                  "doughnut": "donut", "cellphone": "cell phone", "mobile phone": "cell phone"}


def geneval_label(name: str) -> str:
    """A detector's class name in GenEval's naming (COCO's, with mouse, remote and keyboard renamed "computer mouse",
    "tv remote", "computer keyboard"); names outside COCO come back normalised (lower case, single spaces)."""
    text = re.sub(r"[\s_-]+", " ", str(name).strip().lower())
    text = _LABEL_ALIASES.get(text, text)
    return GENEVAL_RENAMED.get(text, text)


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes (x1, y1, x2 + 1, y2 + 1) of (N, H, W) boolean masks, zeros for an empty mask (mmdetection's
    `mask2bbox`)."""
    boxes = torch.zeros((masks.shape[0], 4), dtype=torch.float32)
    cols, rows = masks.any(1), masks.any(2)
    for i in range(masks.shape[0]):
        x, y = torch.where(cols[i])[0], torch.where(rows[i])[0]
        if len(x) and len(y):
            boxes[i] = torch.tensor([x[0], y[0], x[-1] + 1, y[-1] + 1], dtype=torch.float32)
    return boxes


def instance_detections(class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: Sequence[str], *,
                        max_per_image: int = 100) -> Detections:
    """mmdetection's Mask2Former instance post-processing for one image: `class_logits` (Q, C + 1, the last "no
    object"), `mask_logits` (Q, H, W) at the original image's size. The top `max_per_image` (query, class) pairs by
    softmax probability; score = probability x mean sigmoid over the binary mask (logit > 0); box = `mask_boxes`."""
    class_logits, mask_logits = class_logits.float(), mask_logits.float()
    num_classes = class_logits.shape[1] - 1
    if len(labels) != num_classes:
        raise ValueError(f"{len(labels)} label names for a detector with {num_classes} classes")
    probs = class_logits.softmax(-1)[:, :-1].flatten()
    top, index = probs.topk(min(max_per_image, probs.numel()))
    query, label = index // num_classes, index % num_classes
    masks = mask_logits[query]
    binary = masks > 0
    mask_score = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return Detections(mask_boxes(binary).numpy(), (top * mask_score).numpy(), [labels[i] for i in label.tolist()],
                      binary.numpy())


def mmdet_resize(width: int, height: int, scale=MMDET_TEST_SCALE) -> tuple[int, int]:
    """(width, height) after mmcv's keep-ratio rescale to `scale` (longer edge <= max(scale), shorter <= min(scale))."""
    factor = min(max(scale) / max(width, height), min(scale) / min(width, height))
    return int(width * factor + 0.5), int(height * factor + 0.5)


class Mask2FormerDetector:
    """Instance detections from a transformers `Mask2FormerForUniversalSegmentation` (default checkpoint:
    facebook/mask2former-swin-small-coco-instance), post-processed as mmdetection does it for GenEval's detector.

    Each image is resized keeping its ratio to `test_scale` (mmdetection's (1333, 800)), normalised by the image
    processor, padded with zeros to a multiple of 32; the mask logits are upsampled to the padded input, cropped to the
    image and resized to its original size (bilinear) before `instance_detections`. Labels are in GenEval's naming
    (`geneval_label` of the model's `id2label`). Images whose padded inputs have the same size share a forward pass."""

    def __init__(self, model, image_processor, *, test_scale=MMDET_TEST_SCALE, max_per_image: int = 100,
                 batch_size: int = 4, name: str = "mask2former"):
        if batch_size < 1 or max_per_image < 1:
            raise ValueError(f"batch_size and max_per_image must be at least 1, got {batch_size}, {max_per_image}")
        self.model, self.image_processor, self.name = model.eval(), image_processor, name
        self.test_scale, self.max_per_image, self.batch_size = tuple(test_scale), int(max_per_image), int(batch_size)
        id2label = model.config.id2label
        self.labels = [geneval_label(id2label[i]) for i in range(len(id2label))]

    @classmethod
    def from_pretrained(cls, path=MASK2FORMER_CHECKPOINT, *, device: str = "cpu", dtype="float32",
                        local_files_only: bool = False, **options) -> "Mask2FormerDetector":
        """The detector at `path` (a local directory or a hub id), on `device` in `dtype`; `options` are the
        constructor's (test_scale, max_per_image, batch_size, name)."""
        from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil

        model, processor = load_pretrained(
            "Mask2FormerDetector", path, MASK2FORMER_CHECKPOINT,
            "`Mask2FormerDetector.from_pretrained({dir})` (or `detector_path={dir}` of GenEvalScorer / SpatialScorer "
            "/ CompBenchScorer.from_pretrained)", Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil,
            device=device, dtype=dtype, local_files_only=local_files_only)
        return cls(model, processor, **options)

    def _inputs(self, image: Image.Image) -> torch.Tensor:
        width, height = mmdet_resize(*image.size, self.test_scale)
        pixels = self.image_processor(images=[image.convert("RGB")], size={"height": height, "width": width},
                                      size_divisor=0, return_tensors="pt")["pixel_values"][0]
        padded = (math.ceil(height / 32) * 32, math.ceil(width / 32) * 32)
        return F.pad(pixels, (0, padded[1] - width, 0, padded[0] - height))

    def __call__(self, images) -> list[Detections]:
        images = list(images)
        inputs = [self._inputs(image) for image in images]
        results: list[Detections | None] = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        for i, pixels in enumerate(inputs):
            groups.setdefault(tuple(pixels.shape), []).append(i)
        with torch.inference_mode():
            for members in groups.values():
                for start in range(0, len(members), self.batch_size):
                    batch = members[start:start + self.batch_size]
                    pixels = torch.stack([inputs[i] for i in batch]).to(self.model.device, dtype=self.model.dtype)
                    out = self.model(pixel_values=pixels)
                    for row, i in enumerate(batch):  # one image at a time: Q masks at the input size are large
                        width, height = images[i].size
                        resized_w, resized_h = mmdet_resize(width, height, self.test_scale)
                        mask = F.interpolate(out.masks_queries_logits[row:row + 1].float(), size=pixels.shape[-2:],
                                             mode="bilinear", align_corners=False)
                        mask = F.interpolate(mask[:, :, :resized_h, :resized_w], size=(height, width),
                                             mode="bilinear", align_corners=False)[0]
                        results[i] = instance_detections(out.class_queries_logits[row].cpu(), mask.cpu(), self.labels,
                                                         max_per_image=self.max_per_image)
        return results


def clip_embeddings(model, processor, *, texts=None, images=None) -> torch.Tensor:
    """CLIP's projected embeddings of `texts` or `images`, L2-normalised, float32."""
    if texts is not None:
        inputs = processor(text=list(texts), return_tensors="pt", padding=True, truncation=True,
                           max_length=model.config.text_config.max_position_embeddings).to(model.device)
        embeds = model.get_text_features(input_ids=inputs["input_ids"],
                                         attention_mask=inputs["attention_mask"]).pooler_output
    else:
        pixels = processor(images=list(images), return_tensors="pt")["pixel_values"]
        embeds = model.get_image_features(pixel_values=pixels.to(model.device, dtype=model.dtype)).pooler_output
    return F.normalize(embeds.float(), dim=-1).cpu()


__all__ = ["Detections", "MASK2FORMER_CHECKPOINT", "MMDET_TEST_SCALE", "Mask2FormerDetector", "clip_embeddings",
           "geneval_label", "instance_detections", "mask_boxes", "mmdet_resize"]
