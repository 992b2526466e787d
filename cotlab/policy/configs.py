"""Janus configurations: ShapeWorld's small Janus (one per tier) and tiny random ones for tests.

All are transformers `JanusConfig`s, so `JanusForConditionalGeneration` builds them and `from_pretrained` loads them.
For ShapeWorld the generation head predicts the designed patch codebook (751 codes, 64 tokens per image); the Janus
VQ inside the model (`vqmodel`) is required by the architecture but is *not* ShapeWorld's decoder: the policy's
checkpoint records which image tokenizer decodes its tokens (see `cotlab.policy.janus`).
"""
from __future__ import annotations

from dataclasses import dataclass

from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig


@dataclass(frozen=True)
class JanusSize:
    """The sizes that matter on a CPU: the language model and the image-token embedding/head."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    image_embed_dim: int  # Janus's `generation_embeddings` width (8 in Janus-Pro), mapped to hidden by an MLP
    max_positions: int = 128


SHAPEWORLD_SIZES = {
    "smoke": JanusSize(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128, image_embed_dim=32),
    "default": JanusSize(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=352, image_embed_dim=64),
    "tiny": JanusSize(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, image_embed_dim=8),
}
# Janus-Pro-1B's image side (16384 codes, 576 tokens on a 24x24 grid at 384 px, hidden 2048, 16 heads) with a shallow,
# narrow language model (the real one has 24 layers, MLP width 5632): the speed benchmarks' stand-in for Janus-Pro.
JANUS_PRO_SHAPED = JanusSize(hidden_size=2048, num_layers=2, num_heads=16, intermediate_size=1024, image_embed_dim=8,
                             max_positions=640)
JANUS_PRO_CODEBOOK, JANUS_PRO_GRID, JANUS_PRO_IMAGE_SIZE = 16384, 24, 384


def janus_config(vocab_size: int, special_ids: dict[str, int], size: JanusSize, *, codebook_size: int,
                 grid: int, image_size: int) -> JanusConfig:
    """A Janus config whose language model is a Llama of `size` and whose image side has `codebook_size` codes on a
    `grid` x `grid` token grid. Vision tower and VQ are the smallest the architecture allows (ShapeWorld does not use
    them); VQ channel counts are multiples of 32 and its projections equal the text hidden size."""
    h = size.hidden_size
    text = LlamaConfig(
        vocab_size=vocab_size, hidden_size=h, intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_layers, num_attention_heads=size.num_heads, num_key_value_heads=size.num_heads,
        max_position_embeddings=size.max_positions, bos_token_id=special_ids["bos"], eos_token_id=special_ids["eos"],
        pad_token_id=special_ids["pad"], tie_word_embeddings=False,
    )
    vision = JanusVisionConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=image_size,
        patch_size=image_size // grid, projection_dim=h, num_image_tokens=grid * grid, depth=1,
    )
    vq = JanusVQVAEConfig(
        embed_dim=size.image_embed_dim, num_embeddings=codebook_size, base_channels=32, latent_channels=32,
        channel_multiplier=[1] * (1 + (image_size // grid).bit_length() - 1), num_res_blocks=1,
        projection_dim=h, image_token_embed_dim=h,
    )
    return JanusConfig(text_config=text, vision_config=vision, vq_config=vq, image_token_id=special_ids["image"])
