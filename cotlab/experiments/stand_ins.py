"""Tiny random stand-ins for every checkpoint the paper tier downloads, built in code in the PUBLISHED formats, so that
the paper path runs anywhere: the `paper-tiny` tier (`cotlab.experiments.paper_tier`), chapter 8 and the tests.

    policy        a Janus saved like Janus-Pro (`save_pretrained`; its images decode through its own VQ)
    hps           HPS_v2.1_compressed.pt: an OpenCLIP ViT state dict under "state_dict" with its published key names,
                  and a CLIP BPE tokenizer; loaded by `cotlab.rewards.HPSv2` through `openclip_to_clip`
    imagereward   ImageReward.pt (BLIP's timm ViT + BERT with cross-attention + the MLP head, published key names),
                  med_config.json and a BERT WordPiece vocabulary; loaded through `imagereward_to_blip`
    judge         a Qwen2.5-VL (or LLaVA-OneVision) image-text-to-text checkpoint and processor with a chat template,
                  loaded by `cotlab.rewards.VLMJudge` and asked UnifiedReward's question
    mask2former   a Mask2Former (Swin backbone) with COCO's 80 labels: GenEval's detector, T2I-CompBench's spatial one
    clip          a CLIP: CLIPScore, GenEval's colour classifier and T2I-CompBench's CLIPScore
    blip_vqa      a BLIP VQA model with a BERT tokenizer: T2I-CompBench's attribute-binding scorer

Every one loads through the same mapping and loading code as the real checkpoint. They are random: any number they
produce checks the plumbing and means nothing (the tier's name and every eval card say so). Shapes are scaled down;
key names, file names and layouts are the published ones. The state dicts are saved with `torch.save` of tensors only
(the loaders read them with `weights_only=True`).
"""
from __future__ import annotations

import json
import os
import string
from pathlib import Path

import torch

from cotlab.policy import JanusSize, build_janus_pro_shaped_policy

TINY_JANUS = JanusSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, image_embed_dim=8)

# The vision towers of the HPS and ImageReward stand-ins: width, patch, grid, layers and heads (16, as both published
# ViTs have).
WIDTH, PATCH, GRID, LAYERS, HEADS = 32, 8, 4, 2, 16
IMAGE = PATCH * GRID
# ImageReward's BERT, scaled down, and its MLP head's sizes (768-1024-128-64-16-1 in the published head).
TEXT_WIDTH, TEXT_HEADS, MAX_POSITIONS = 32, 4, 40
MED_CONFIG = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "hidden_size": TEXT_WIDTH, "initializer_range": 0.02,
              "intermediate_size": 64, "layer_norm_eps": 1e-12, "max_position_embeddings": MAX_POSITIONS,
              "model_type": "bert", "num_attention_heads": TEXT_HEADS, "num_hidden_layers": LAYERS, "pad_token_id": 0,
              "type_vocab_size": 2, "vocab_size": None, "encoder_width": 768, "add_cross_attention": True}
HEAD_SIZES = (TEXT_WIDTH, 24, 16, 8, 4, 1)


# ------------------------------------------------------------------------------------------------------------ policy

def tiny_janus_pro(path, *, seed: int = 0, codebook_size: int = 64, grid: int = 4, image_size: int = 32,
                   words=()) -> Path:
    """A random Janus saved like a Janus-Pro checkpoint: its images decode through the model's own VQ (`janus_vq`),
    with ShapeWorld's word-level text tokenizer, its vocabulary grown by `words` (e.g. `prompt_words` of the official
    prompt files: Janus-Pro's own BPE tokenizer reads any text; a word-level one must know every word)."""
    from cotlab.policy import JanusPolicy
    from cotlab.policy.tokenizers import build_text_tokenizer
    from cotlab.world import vocabulary

    path = Path(path)
    tokenizer = build_text_tokenizer(sorted(set(vocabulary()) | set(words)))
    policy = build_janus_pro_shaped_policy(seed, TINY_JANUS, codebook_size=codebook_size, grid=grid,
                                           image_size=image_size, vocab_size=len(tokenizer))
    if words:
        old = policy.processor.tokenizer
        if any(tokenizer.convert_tokens_to_ids(t) != old.convert_tokens_to_ids(t) for t in old.all_special_tokens):
            raise RuntimeError("the grown tokenizer moved a special token")  # build_text_tokenizer puts them first
        policy.processor.tokenizer = tokenizer
        policy = JanusPolicy(policy.model, policy.processor, spec=policy.spec)
    policy.save_pretrained(path)
    return path


def prompt_words(directory) -> list[str]:
    """Every word (as the stand-in policy's tokenizer splits text: lower case, on whitespace, commas and full stops
    apart) of the prompt files under `directory` (T2I-CompBench's `*.txt`, GenEval's `*.jsonl`); [] if none."""
    import re

    directory = Path(directory)
    texts = []
    if directory.is_dir():
        for file in sorted(directory.rglob("*.txt")):
            if "LICENSE" not in file.name:
                texts += [line.split("\t")[0] for line in file.read_text().splitlines()]
        for file in sorted(directory.rglob("*.jsonl")):
            texts += [json.loads(line)["prompt"] for line in file.read_text().splitlines() if line.strip()]
    return sorted({w for text in texts for w in re.split(r"\s+|([,.])", text.lower()) if w})


# -------------------------------------------------------------------------------------------------------------- CLIP

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


# ----------------------------------------------------------------------------------------------------------- HPS v2.1

def _randn(generator, *shape, scale=0.3):
    return torch.randn(*shape, generator=generator) * scale


def _layer_norm(generator, prefix, width):
    return {f"{prefix}.weight": 1 + _randn(generator, width, scale=0.1),
            f"{prefix}.bias": _randn(generator, width, scale=0.1)}


def _linear(generator, prefix, n_in, n_out):
    return {f"{prefix}.weight": _randn(generator, n_out, n_in, scale=n_in ** -0.5),
            f"{prefix}.bias": _randn(generator, n_out, scale=0.1)}


def _openclip_block(g, prefix, width):
    return {f"{prefix}attn.in_proj_weight": _randn(g, 3 * width, width, scale=width ** -0.5),
            f"{prefix}attn.in_proj_bias": _randn(g, 3 * width, scale=0.1),
            **_linear(g, f"{prefix}attn.out_proj", width, width), **_layer_norm(g, f"{prefix}ln_1", width),
            **_layer_norm(g, f"{prefix}ln_2", width), **_linear(g, f"{prefix}mlp.c_fc", width, 2 * width),
            **_linear(g, f"{prefix}mlp.c_proj", 2 * width, width)}


def hps_state_dict(vocab: int, context: int = 16, projection: int = 16) -> dict[str, torch.Tensor]:
    """An OpenCLIP ViT state dict as HPS v2 saves it (the key names of its ViT-H/14), scaled down, with a text tower
    of `vocab` tokens and a `context`-token context."""
    g = torch.Generator().manual_seed(0)
    sd = {"visual.class_embedding": _randn(g, WIDTH), "visual.positional_embedding": _randn(g, GRID * GRID + 1, WIDTH),
          "visual.conv1.weight": _randn(g, WIDTH, 3, PATCH, PATCH, scale=0.05),
          **_layer_norm(g, "visual.ln_pre", WIDTH)}
    for i in range(LAYERS):
        sd.update(_openclip_block(g, f"visual.transformer.resblocks.{i}.", WIDTH))
    sd.update(_layer_norm(g, "visual.ln_post", WIDTH))
    sd["visual.proj"] = _randn(g, WIDTH, projection)
    sd.update({"positional_embedding": _randn(g, context, WIDTH), "text_projection": _randn(g, WIDTH, projection),
               "logit_scale": torch.tensor(4.6052), "token_embedding.weight": _randn(g, vocab, WIDTH)})
    for i in range(LAYERS):
        sd.update(_openclip_block(g, f"transformer.resblocks.{i}.", WIDTH))
    sd.update(_layer_norm(g, "ln_final", WIDTH))
    return sd


def letter_clip_tokenizer():
    """A letter-level CLIP BPE tokenizer whose end-of-text token is the last id, as in OpenAI's vocabulary."""
    from transformers import CLIPTokenizer

    letters = list(string.ascii_lowercase)
    tokens = letters + [c + "</w>" for c in letters] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: i for i, token in enumerate(tokens)}, merges=[])


def tiny_hps(path, *, tokenizer=None, context: int = 16) -> Path:
    """HPS v2.1's published files in `path`: HPS_v2.1_compressed.pt ({"state_dict": OpenCLIP tensors}) and a CLIP
    tokenizer (`tokenizer`, default `letter_clip_tokenizer()`), as `cotlab.rewards.get("hps", path=...)` reads them."""
    from cotlab.rewards.paper_models import HPS_FILE

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer if tokenizer is not None else letter_clip_tokenizer()
    tokenizer.save_pretrained(path)
    torch.save({"state_dict": hps_state_dict(len(tokenizer), context=context)}, path / HPS_FILE)
    return path


# -------------------------------------------------------------------------------------------------------- ImageReward

def bert_tokenizer_files(path) -> int:
    """A letter-level BERT WordPiece vocabulary (uncased) in `path`/vocab.txt; returns the vocabulary's size with the
    [DEC] and [ENC] tokens ImageReward adds to it."""
    letters = list(string.ascii_lowercase)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + letters
                                              + ["##" + c for c in letters]) + "\n")
    return 5 + 2 * len(letters) + 2


def imagereward_state_dict(vocab: int) -> dict[str, torch.Tensor]:
    """ImageReward.pt's tensors (BLIP ViT + BERT with cross-attention + MLP head, and the unused contrastive
    projections and position-id buffer), key names as published, scaled down."""
    g = torch.Generator().manual_seed(1)
    vit = "blip.visual_encoder."
    sd = {f"{vit}cls_token": _randn(g, 1, 1, WIDTH), f"{vit}pos_embed": _randn(g, 1, GRID * GRID + 1, WIDTH),
          f"{vit}patch_embed.proj.weight": _randn(g, WIDTH, 3, PATCH, PATCH, scale=0.05),
          f"{vit}patch_embed.proj.bias": _randn(g, WIDTH, scale=0.1)}
    for i in range(LAYERS):
        b = f"{vit}blocks.{i}."
        sd.update({**_layer_norm(g, f"{b}norm1", WIDTH), **_linear(g, f"{b}attn.qkv", WIDTH, 3 * WIDTH),
                   **_linear(g, f"{b}attn.proj", WIDTH, WIDTH), **_layer_norm(g, f"{b}norm2", WIDTH),
                   **_linear(g, f"{b}mlp.fc1", WIDTH, 4 * WIDTH), **_linear(g, f"{b}mlp.fc2", 4 * WIDTH, WIDTH)})
    sd.update(_layer_norm(g, f"{vit}norm", WIDTH))
    bert = "blip.text_encoder."
    sd.update({f"{bert}embeddings.word_embeddings.weight": _randn(g, vocab, TEXT_WIDTH),
               f"{bert}embeddings.position_embeddings.weight": _randn(g, MAX_POSITIONS, TEXT_WIDTH),
               f"{bert}embeddings.position_ids": torch.arange(MAX_POSITIONS)[None],
               **_layer_norm(g, f"{bert}embeddings.LayerNorm", TEXT_WIDTH)})
    for i in range(LAYERS):
        b = f"{bert}encoder.layer.{i}."
        for attention, key_width in (("attention", TEXT_WIDTH), ("crossattention", WIDTH)):
            sd.update({**_linear(g, f"{b}{attention}.self.query", TEXT_WIDTH, TEXT_WIDTH),
                       **_linear(g, f"{b}{attention}.self.key", key_width, TEXT_WIDTH),
                       **_linear(g, f"{b}{attention}.self.value", key_width, TEXT_WIDTH),
                       **_linear(g, f"{b}{attention}.output.dense", TEXT_WIDTH, TEXT_WIDTH),
                       **_layer_norm(g, f"{b}{attention}.output.LayerNorm", TEXT_WIDTH)})
        sd.update({**_linear(g, f"{b}intermediate.dense", TEXT_WIDTH, 64),
                   **_linear(g, f"{b}output.dense", 64, TEXT_WIDTH),
                   **_layer_norm(g, f"{b}output.LayerNorm", TEXT_WIDTH)})
    sd.update({**_linear(g, "blip.vision_proj", WIDTH, 8), **_linear(g, "blip.text_proj", TEXT_WIDTH, 8)})
    for index, n_in, n_out in zip((0, 2, 4, 6, 7), HEAD_SIZES[:-1], HEAD_SIZES[1:]):
        sd.update(_linear(g, f"mlp.layers.{index}", n_in, n_out))
    return sd


def tiny_imagereward(path) -> Path:
    """ImageReward's published files in `path`: ImageReward.pt, med_config.json and a BERT vocabulary, as
    `cotlab.rewards.get("imagereward", path=...)` reads them."""
    from cotlab.rewards.paper_models import IMAGEREWARD_CONFIG_FILE, IMAGEREWARD_FILE

    path = Path(path)
    vocab = bert_tokenizer_files(path)
    (path / IMAGEREWARD_CONFIG_FILE).write_text(json.dumps({**MED_CONFIG, "vocab_size": vocab}))
    torch.save(imagereward_state_dict(vocab), path / IMAGEREWARD_FILE)
    return path


# ------------------------------------------------------------------------------------------------- the VLM judge

JUDGE_SPECIAL = {"qwen2_5_vl": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                                "<|image_pad|>", "<|video_pad|>"],
                 "llava_onevision": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]}
JUDGE_IMAGE_PLACEHOLDER = {"qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>",
                           "llava_onevision": "<image>\n"}


def judge_tokenizer(special):
    """A byte-level Qwen2 tokenizer: the 256 byte symbols, "yes" and "no" as single tokens, and `special`."""
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab = {token: i for i, token in enumerate(special + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({token: len(vocab) + i for i, token in enumerate(["ye", "yes", "no"])})
    return Qwen2Tokenizer(vocab=vocab, merges=[("y", "e"), ("ye", "s"), ("n", "o")], eos_token="<|im_end|>",
                          pad_token="<|endoftext|>", extra_special_tokens=special[1:])


def judge_chat_template(image_placeholder: str) -> str:
    """Qwen's chat template (ChatML), images as `image_placeholder`."""
    return ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for part in message['content'] %}"
            "{% if part['type'] == 'image' %}" + image_placeholder + "{% else %}{{ part['text'] }}{% endif %}"
            "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_judge_model(family: str = "qwen2_5_vl"):
    """A random 1-layer judge of `family` ("qwen2_5_vl", UnifiedReward's base, or "llava_onevision"; hidden 32, 4-8 px
    patches) and its processor, without a video processor."""
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessorPil, LlavaOnevisionProcessor, Qwen2_5_VLConfig,
                              Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil)

    from cotlab.rewards.real import images_only

    if family not in JUDGE_SPECIAL:
        raise ValueError(f"unknown judge family {family!r}; known: {', '.join(JUDGE_SPECIAL)}")
    special = JUDGE_SPECIAL[family]
    tokenizer = judge_tokenizer(special)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in special}
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    template = judge_chat_template(JUDGE_IMAGE_PLACEHOLDER[family])
    if family == "qwen2_5_vl":
        config = Qwen2_5_VLConfig(
            text_config=dict(text, rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                                                    "rope_theta": 10000.0}),
            vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, patch_size=4,
                               spatial_merge_size=2, temporal_patch_size=2, window_size=16, out_hidden_size=32,
                               fullatt_block_indexes=[0]),
            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
        image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 16 * 16, "longest_edge": 32 * 32},
                                                   patch_size=4, temporal_patch_size=2, merge_size=2)
        processor = images_only(Qwen2_5_VLProcessor)(image_processor=image_processor, tokenizer=tokenizer,
                                                     chat_template=template)
        return Qwen2_5_VLForConditionalGeneration(config), processor
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    config = LlavaOnevisionConfig(
        text_config=dict(text, model_type="qwen2"),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full", vision_feature_layer=-1)
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints)
    processor = images_only(LlavaOnevisionProcessor)(image_processor=image_processor, tokenizer=tokenizer,
                                                     chat_template=template, num_image_tokens=16,
                                                     vision_feature_select_strategy="full")
    return LlavaOnevisionForConditionalGeneration(config), processor


def tiny_judge(path, family: str = "qwen2_5_vl", *, seed: int = 0) -> Path:
    """`tiny_judge_model(family)` saved with `save_pretrained` (model and processor) where
    `cotlab.rewards.get("vlm_judge", path=...)` loads it."""
    torch.manual_seed(seed)
    model, processor = tiny_judge_model(family)
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


# ----------------------------------------------------------------------------------------- the benchmarks' scorers

def tiny_mask2former(path, *, seed: int = 0) -> Path:
    """A random Mask2Former (a 4-stage Swin of width 16, 10 queries) with COCO's 80 labels and its PIL image processor:
    GenEval's detector and T2I-CompBench's spatial detector (`cotlab.evaluation.vision.Mask2FormerDetector`)."""
    from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil,
                              SwinConfig)

    from cotlab.prompt_files import COCO_CLASSES

    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=backbone, hidden_dim=32, feature_size=32, mask_feature_size=32,
                               encoder_feedforward_dim=64, dim_feedforward=64, num_queries=10, encoder_layers=1,
                               decoder_layers=2, num_attention_heads=2, common_stride=4, use_pretrained_backbone=False,
                               id2label=dict(enumerate(COCO_CLASSES)))
    torch.manual_seed(seed)
    path = Path(path)
    Mask2FormerForUniversalSegmentation(config).save_pretrained(path)
    Mask2FormerImageProcessorPil().save_pretrained(path)
    return path


def tiny_blip_vqa(path, *, seed: int = 2) -> Path:
    """A random BLIP VQA model (hidden 32, 32 px images) with a letter-level BERT tokenizer carrying BLIP's [DEC] and
    [ENC] and single-token "yes"/"no": T2I-CompBench's BLIP-VQA scorer (`cotlab.evaluation.t2i_compbench`)."""
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipImageProcessorPil, BlipProcessor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "yes", "no", "?"] + list(string.ascii_lowercase)
    (path / "vocab.txt").write_text("\n".join(words + ["##" + c for c in string.ascii_lowercase]) + "\n")
    tokenizer = BertTokenizer(str(path / "vocab.txt"))
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})  # as BLIP's
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id,
                         pad_token_id=0, sep_token_id=3, encoder_hidden_size=32),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(seed)
    BlipForQuestionAnswering(config).save_pretrained(path)
    BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}),
                  tokenizer=tokenizer).save_pretrained(path)
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


# ------------------------------------------------------------------------------------------------ all of them at once

#: What `build_stand_ins` builds: name -> builder(path), named as the paper tier names them (`paper_tier`).
BUILDERS = {
    "policy": tiny_janus_pro,
    "hps": tiny_hps,
    "imagereward": tiny_imagereward,
    "judge": tiny_judge,
    "mask2former": tiny_mask2former,
    "clip": lambda path: tiny_clip(path, seed=1, characters=string.ascii_lowercase + "-"),
    "blip_vqa": tiny_blip_vqa,
}
STAND_INS_FILE = "stand-ins.json"  # written last: its presence says every stand-in under the directory is complete


def build_stand_ins(directory, prompts=None) -> dict[str, Path]:
    """Every stand-in of :data:`BUILDERS` under `directory` (one sub-directory each); returns name -> path. The policy
    knows every word of the prompt files under `prompts` (a directory, e.g. ../shared/benchmarks; `prompt_words`).
    Built once per directory: a directory whose `stand-ins.json` names them all is reused as it is (so the chapters
    of a tier share one set), and a half-built one (interrupted, no such file) is rebuilt."""
    from filelock import FileLock

    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / ".lock")):  # concurrent builders (executor workers, kernels) build once
        return _build_all(directory, prompts)


def _build_all(directory: Path, prompts) -> dict[str, Path]:
    index = directory / STAND_INS_FILE
    if index.is_file():
        held = json.loads(index.read_text())
        if set(held) == set(BUILDERS) and all(Path(p).exists() for p in held.values()):
            return {name: Path(p) for name, p in held.items()}
    paths = {}
    for name, build in BUILDERS.items():
        target = directory / name
        if target.exists():
            import shutil

            shutil.rmtree(target)
        paths[name] = Path(tiny_janus_pro(target, words=prompt_words(prompts)) if name == "policy" and prompts
                           else build(target))
    partial = directory / f".{STAND_INS_FILE}.{os.getpid()}"
    partial.write_text(json.dumps({name: str(p) for name, p in paths.items()}, indent=1))
    os.replace(partial, index)
    return paths


__all__ = ["BUILDERS", "TINY_JANUS", "build_stand_ins", "bert_tokenizer_files", "hps_state_dict",
           "imagereward_state_dict", "letter_clip_tokenizer", "prompt_words", "tiny_blip_vqa", "tiny_clip",
           "tiny_compbench", "tiny_hps", "tiny_imagereward", "tiny_janus_pro", "tiny_judge", "tiny_judge_model",
           "tiny_mask2former"]
