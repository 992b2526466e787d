"""Stand-ins for what paper scale downloads, so that its whole path runs anywhere (chapter 8 and the tests): a
Janus-Pro-format checkpoint decoding through its own VQ, a CLIP checkpoint for CLIPScore, and T2I-CompBench-format
prompt files. All are tiny, random and built in code; they check the plumbing, not the science.
"""
from __future__ import annotations

import string
from pathlib import Path

import torch

from cotlab.policy import JanusSize, build_janus_pro_shaped_policy

TINY_JANUS = JanusSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, image_embed_dim=8)


def tiny_janus_pro(path, *, seed: int = 0, codebook_size: int = 64, grid: int = 4, image_size: int = 32) -> Path:
    """A random Janus saved like a Janus-Pro checkpoint: its images decode through the model's own VQ (`janus_vq`),
    with ShapeWorld's word-level text tokenizer."""
    path = Path(path)
    build_janus_pro_shaped_policy(seed, TINY_JANUS, codebook_size=codebook_size, grid=grid,
                                  image_size=image_size).save_pretrained(path)
    return path


def tiny_clip(path, *, seed: int = 5, characters: str = string.ascii_lowercase) -> Path:
    """A random CLIP (hidden 32, 2 layers, 32 px images in 8 px patches) with a tokenizer of single `characters`,
    saved where `cotlab.rewards.get("clipscore", path=...)` loads it."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        vocab.update({c + suffix: len(vocab) + i for i, c in enumerate(characters)})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(seed)
    path = Path(path)
    CLIPModel(config).save_pretrained(path)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def tiny_compbench(path, categories=("color",), split: str = "train", count: int = 700) -> Path:
    """T2I-CompBench's file layout (`<category>_<split>.txt`, the official count of lines) in ShapeWorld's words."""
    colours = ("red", "blue", "green", "yellow", "white", "black", "pink")
    shapes = ("circle", "square", "triangle", "diamond", "cross")
    lines = [f"a {c} {s} and a {d} {t}" for c in colours for s in shapes for d in colours for t in shapes][:count]
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for category in categories:
        (path / f"{category}_{split}.txt").write_text("\n".join(lines) + "\n")
    return path


__all__ = ["TINY_JANUS", "tiny_clip", "tiny_compbench", "tiny_janus_pro"]
