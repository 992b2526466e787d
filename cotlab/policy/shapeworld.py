"""ShapeWorld's Janus: a small `JanusForConditionalGeneration` whose text tokenizer is ShapeWorld's vocabulary and
whose image tokens are the designed patch codebook of `cotlab.world`; and a random Janus with Janus-Pro's image side
(its own VQ) and the same text tokenizer, for the speed benchmarks and paper scale's stand-ins."""
from __future__ import annotations

import torch
from transformers import GenerationConfig, JanusForConditionalGeneration, JanusProcessor
from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

from cotlab.world import CANVAS, CODEBOOK_SIZE, GRID, PatchTokenizer, code_table, vocabulary
from cotlab.world import language as lang

from .configs import (JANUS_PRO_CODEBOOK, JANUS_PRO_GRID, JANUS_PRO_IMAGE_SIZE, JANUS_PRO_SHAPED, SHAPEWORLD_SIZES,
                      JanusSize, janus_config)
from .janus import JanusPolicy, PolicySpec
from .tokenizers import build_text_tokenizer


def shapeworld_processor() -> JanusProcessor:
    """Text tokenizer over ShapeWorld's vocabulary and a PIL image processor (mean/std 0.5; no torchvision)."""
    tokenizer = build_text_tokenizer(vocabulary())
    image_processor = JanusImageProcessorPil(size={"height": CANVAS, "width": CANVAS}, image_mean=[0.5] * 3,
                                             image_std=[0.5] * 3)
    return JanusProcessor(image_processor=image_processor, tokenizer=tokenizer, num_image_tokens=GRID * GRID)


def set_generation_config(model, tokenizer) -> None:
    """What `model.generate(generation_mode="image")` needs, so that transformers' own path works on our checkpoints."""
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        generation_kwargs={"boi_token_id": tokenizer.convert_tokens_to_ids(tokenizer.boi_token)},
    )


def factorized_code_vectors(dim: int, std: float) -> torch.Tensor:
    """(CODEBOOK_SIZE, dim) initial vectors for the image codes: each code's vector is the sum of random vectors of
    its shape, colour, texture and part (background: one vector of its own), with entries of std `std`.

    Janus-Pro initialises its image-token embedding from its VQ codebook, so visually related codes start close.
    The designed codebook has no learned vectors; this gives the same head start. Without it every one of the 751
    codes, each of them rare in a batch, must be learned apart, and a default-size model was slow to learn even to
    continue a large object from its first quadrant."""
    table = code_table()
    factors = [sorted({entry[k] for entry in table if entry is not None}) for k in range(4)]
    vectors = [torch.randn(len(values), dim) * std / 2 for values in factors]  # four summed terms: std `std`
    out = torch.empty(len(table), dim)
    out[0] = torch.randn(dim) * std
    for code, entry in enumerate(table):
        if entry is not None:
            out[code] = sum(vectors[k][factors[k].index(entry[k])] for k in range(4))
    return out


def word_vectors(tokenizer, dim: int, std: float) -> torch.Tensor:
    """(vocabulary, dim) initial text embeddings: an attribute word's vector is the sum of a random vector of its role
    (shape, colour, texture, size, number) and one of the attribute value it names, shared by its synonyms and forms
    ("big" and "large", "circle", "circles" and "round"); every other token gets a random vector of its own.

    Janus-Pro's language model comes pretrained, so its prompt words arrive with meaning. Ours starts from nothing;
    this gives it what a pretrained embedding knows of ShapeWorld's words, and no more: which words name which kind of
    fact, and which words are the same fact. Without it a default-size model, trained for as long as the default
    tier's pretraining, put no colour information (a linear probe stayed at chance) into the state that predicts an
    object's first token."""
    roles = {"shape": {**lang.SHAPE_NOUNS, **lang.SHAPE_PLURALS, **lang.SHAPE_ADJECTIVES},
             "colour": lang.COLOR_WORDS, "texture": lang.TEXTURE_WORDS, "size": lang.SIZE_WORDS,
             "number": {w: n for w, (n, exact) in lang.DETERMINERS.items() if exact}}
    # Draws in a fixed order: the tokenizer's vocabulary dict comes back in a different order on every call.
    role_vectors = {role: torch.randn(dim) for role in roles}
    value_vectors = {key: torch.randn(dim) for key in sorted({(r, v) for r, words in roles.items() for v in words.values()})}
    out = torch.randn(len(tokenizer), dim) * std
    for word, index in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):
        for role, words in roles.items():
            if word in words:
                out[index] = (role_vectors[role] + value_vectors[(role, words[word])]) * std / 2 ** 0.5
    return out


def _random_janus(size: JanusSize, seed: int, codebook_size: int, grid: int, image_size: int,
                  vocab_size: int | None = None, device=None):
    """(model, processor): a randomly initialised Janus of `size` (seeded; built on `device`, by default the CPU) with
    ShapeWorld's text tokenizer, a text vocabulary of `vocab_size` rows (None: the tokenizer's) and its generation
    config set."""
    processor = shapeworld_processor()
    tok = processor.tokenizer
    ids = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id,
           "image": tok.convert_tokens_to_ids(tok.image_token)}
    config = janus_config(vocab_size or len(tok), ids, size, codebook_size=codebook_size, grid=grid,
                          image_size=image_size)
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        model = JanusForConditionalGeneration(config).eval()
    set_generation_config(model, tok)
    return model, processor


def build_shapeworld_policy(size: str | JanusSize = "default", seed: int = 0, logprob_mode: str = "cond") -> JanusPolicy:
    """A freshly initialised ShapeWorld Janus of a named size ("tiny", "smoke", "default") or a `JanusSize`."""
    if isinstance(size, str):
        if size not in SHAPEWORLD_SIZES:
            raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SHAPEWORLD_SIZES)}")
        size = SHAPEWORLD_SIZES[size]
    model, processor = _random_janus(size, seed, CODEBOOK_SIZE, GRID, CANVAS)
    tok, config = processor.tokenizer, model.config
    with torch.no_grad():
        std = config.text_config.initializer_range
        for weight in (model.model.generation_embeddings.weight, model.model.generation_head.vision_head.weight):
            weight.copy_(factorized_code_vectors(weight.shape[1], std=std))
        model.get_input_embeddings().weight.copy_(word_vectors(tok, config.text_config.hidden_size, std))
    spec = PolicySpec(image_tokenizer="shapeworld_patch", logprob_mode=logprob_mode)
    return JanusPolicy(model, processor, PatchTokenizer(), spec)


def build_janus_pro_shaped_policy(seed: int = 0, size: JanusSize = JANUS_PRO_SHAPED, *,
                                  codebook_size: int = JANUS_PRO_CODEBOOK, grid: int = JANUS_PRO_GRID,
                                  image_size: int = JANUS_PRO_IMAGE_SIZE, vocab_size: int | None = None,
                                  device=None) -> JanusPolicy:
    """A random Janus with Janus-Pro-1B's image side by default (its own VQ as image tokenizer) and ShapeWorld's
    text tokenizer; `vocab_size` rows of text embeddings (None: the tokenizer's), built on `device`."""
    model, processor = _random_janus(size, seed, codebook_size, grid, image_size, vocab_size, device)
    return JanusPolicy(model, processor, spec=PolicySpec(image_tokenizer="janus_vq"))
