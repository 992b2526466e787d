"""Tokenizers of a Janus policy: the text side (a WordLevel tokenizer for ShapeWorld) and the image side (one
`ImageTokenizer` protocol that ShapeWorld's designed patch codebook and Janus-Pro's own VQ both implement)."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

SPECIAL_TOKENS = {
    "unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>",
}
IMAGE_SPECIAL_TOKENS = {
    "image_token": "<image_placeholder>", "boi_token": "<begin_of_image>", "eoi_token": "<end_of_image>",
}


@runtime_checkable
class ImageTokenizer(Protocol):
    """Images <-> discrete codes: `encode(images) -> (N, num_tokens)` long tensor, `decode(codes) -> [PIL]`."""

    codebook_size: int
    num_tokens: int

    def encode(self, images) -> torch.Tensor: ...

    def decode(self, codes) -> list[Image.Image]: ...


def build_text_tokenizer(words):
    """A WordLevel tokenizer over `words` plus Janus's special tokens, wrapped for transformers.

    Lower-cases, splits on whitespace and isolates commas and full stops (ShapeWorld's own tokenisation), prepends
    `<bos>`, pads on the left (as Janus's processor does). Unknown words map to `<unk>`; `JanusPolicy` refuses them.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = [*SPECIAL_TOKENS.values(), *IMAGE_SPECIAL_TOKENS.values()]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(words) - set(specials)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[,.]"), behavior="isolated"),
    ])
    core.post_processor = processors.TemplateProcessing(
        single=f"{SPECIAL_TOKENS['bos_token']} $A", special_tokens=[(SPECIAL_TOKENS["bos_token"], vocab["<bos>"])],
    )
    return PreTrainedTokenizerFast(tokenizer_object=core, padding_side="left", extra_special_tokens=IMAGE_SPECIAL_TOKENS,
                                   **SPECIAL_TOKENS)


class JanusVQTokenizer:
    """Janus-Pro's learned VQ (`model.model.vqmodel`) behind the `ImageTokenizer` protocol.

    `decode` runs the VQ decoder on the codes' embeddings and maps [-1, 1] to 8-bit RGB; `encode` normalises images
    with the processor's mean/std (0.5 for Janus) at the VQ's resolution and returns the nearest-code indices.
    """

    def __init__(self, vqmodel, image_size: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        self.vqmodel = vqmodel
        self.image_size = image_size
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.codebook_size = vqmodel.config.num_embeddings
        self.num_tokens = vqmodel.config.num_patches ** 2

    def _device(self):
        return next(self.vqmodel.parameters()).device

    @torch.no_grad()
    def encode(self, images) -> torch.Tensor:
        arrays = []
        for im in images:
            if not isinstance(im, Image.Image):
                raise TypeError(f"JanusVQTokenizer.encode takes PIL images, got {type(im).__name__}")
            im = im.convert("RGB").resize((self.image_size, self.image_size), Image.BICUBIC)
            arrays.append(np.asarray(im, dtype=np.float32) / 255.0)
        if not arrays:
            raise ValueError("encode needs at least one image")
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        pixels = ((pixels - self.mean) / self.std).to(self._device(), next(self.vqmodel.parameters()).dtype)
        return self.vqmodel.encode(pixels).image_tokens.view(len(arrays), -1).long()

    @torch.no_grad()
    def decode(self, codes) -> list[Image.Image]:
        codes = torch.as_tensor(codes, device=self._device()).long()
        if codes.ndim != 2 or codes.shape[1] != self.num_tokens:
            raise ValueError(f"expected codes of shape (N, {self.num_tokens}), got {tuple(codes.shape)}")
        pixels = self.vqmodel.decode(codes).float().cpu()  # (N, 3, H, W) in about [-1, 1]
        pixels = (pixels * self.std + self.mean).clamp(0, 1)
        arrays = (pixels.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        return [Image.fromarray(a, mode="RGB") for a in arrays]
