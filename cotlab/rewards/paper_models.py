"""The paper's human-preference reward models, HPS v2.1 and ImageReward, run from their published checkpoints in
transformers modules: no open_clip, no torchvision, no BLIP code.

    hps:          r = <E_I(x) / |E_I(x)|, E_T(p) / |E_T(p)|>, the cosine of the projected image and prompt embeddings
                  of an OpenCLIP ViT-H/14 fine-tuned on human preferences; no logit scale (HPS v2's `score` returns
                  the diagonal of image_features @ text_features.T, both L2-normalised)      (HPS v2, Wu et al. 2023)
    imagereward:  r = (MLP(h_CLS) - 0.16717362830052426) / 1.0333394966054072, h_CLS the [CLS] output of BLIP's BERT
                  text encoder reading the prompt while cross-attending to the ViT-L/16 tokens of x; the MLP is five
                  linear layers with no nonlinearity between them, as published          (ImageReward, Xu et al. 2023)

A checkpoint is mapped tensor by tensor onto transformers modules (`openclip_to_clip`, `imagereward_to_blip`): every
tensor of the checkpoint is used exactly once or is named as unused, every parameter of the target is filled
(`load_complete`), and anything else is an error that names the tensors. Layer widths and depths are read from the
tensors' shapes; what shapes cannot tell (head counts, layer-norm epsilons, activations) comes from the published
architectures, ViT-H/14 (OpenCLIP's ViT-H-14 config) and BLIP's ViT-L/16 with `med_config.json`. Models are built
without initialisation and filled completely from the checkpoint, so nothing ever scores with random weights; a
missing file is a FileNotFoundError that names it, where to download it and how to point cotlab at it.

Images are preprocessed in PIL and torch as the originals' evaluation transforms do (`hps_pixels`,
`imagereward_pixels`). HPS prompts are cleaned and tokenized as HPS v2's OpenCLIP tokenizer does (`open_clip_clean`,
`open_clip_tokenize`); ImageReward's go raw into BERT's tokenizer, as the original's do.
"""
from __future__ import annotations

import html
import inspect
import itertools
import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cotlab.checkpoints import torch_dtype

from .real import check_inputs

# OpenAI CLIP's pixel statistics: HPS v2 (OpenCLIP's OPENAI_DATASET_MEAN/STD) and ImageReward normalise with them.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

HPS_FILE = "HPS_v2.1_compressed.pt"
HPS_REPO = "xswu/HPSv2"
HPS_TOKENIZER_REPOS = ("openai/clip-vit-large-patch14", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K")
# OpenCLIP's words, the pre-tokenizer pattern of HPS v2's tokenizer (hpsv2/src/open_clip/tokenizer.py,
# `SimpleTokenizer.pat`, compiled with IGNORECASE): OpenCLIP's own spellings of the two special tokens, then CLIP's
# contractions, letter runs, single digits and runs of other characters.
OPEN_CLIP_WORDS = r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
# OpenCLIP ViT-H-14: vision width 1280 in heads of width 80, text width 1024 in 16 heads; nn.GELU (not QuickGELU),
# LayerNorm eps 1e-5 (torch's default).
HPS_VISION_HEADS = 16
HPS_TEXT_HEADS = 16
HPS_LAYER_NORM_EPS = 1e-5

IMAGEREWARD_FILE = "ImageReward.pt"
IMAGEREWARD_CONFIG_FILE = "med_config.json"
IMAGEREWARD_REPO = "THUDM/ImageReward"
IMAGEREWARD_TOKENIZER_REPO = "google-bert/bert-base-uncased"
IMAGEREWARD_MEAN = 0.16717362830052426  # ImageReward's normalisation of the head's output
IMAGEREWARD_STD = 1.0333394966054072
IMAGEREWARD_MAX_TOKENS = 35  # ImageReward pads and truncates every prompt to 35 tokens, [CLS] and [SEP] included
# BLIP's ViT-L/16 (its `create_vit("large")`): 16 heads, timm's LayerNorm eps 1e-6, nn.GELU.
BLIP_VISION_HEADS = 16
BLIP_VISION_LAYER_NORM_EPS = 1e-6
# The positions of the linear layers in ImageReward's `MLP.layers` (dropouts sit at 1, 3 and 5).
IMAGEREWARD_HEAD_LAYERS = (0, 2, 4, 6, 7)
# Tensors of ImageReward.pt that its score never reads: BLIP's contrastive projections and the position-id buffer
# of the text embeddings (transformers builds its own).
IMAGEREWARD_UNUSED = ("blip.vision_proj.weight", "blip.vision_proj.bias", "blip.text_proj.weight",
                      "blip.text_proj.bias", "blip.text_encoder.embeddings.position_ids")
# The tensors of one BERT layer of BLIP's text encoder, named alike in BLIP's med.py and transformers' BlipTextModel.
BERT_LAYER_TENSORS = tuple(
    f"{module}.{kind}"
    for module in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                   "attention.output.LayerNorm", "crossattention.self.query", "crossattention.self.key",
                   "crossattention.self.value", "crossattention.output.dense", "crossattention.output.LayerNorm",
                   "intermediate.dense", "output.dense", "output.LayerNorm")
    for kind in ("weight", "bias"))


# ---------------------------------------------------------------------------------------------------- preprocessing

def _rgb_tensor(image: Image.Image) -> torch.Tensor:
    """The image as a float tensor (3, H, W) in [0, 1] (torchvision's ToTensor)."""
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1) / 255


def _normalize(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]


def hps_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """HPS v2's evaluation transform (its OpenCLIP `image_transform(..., resize_longest_max=True)`, which `score`
    uses): the image as RGB in [0, 1], its longer side resized to `size` (new sides round(side * size / longer),
    bicubic with antialiasing, on the float tensor as torchvision >= 0.17 does), zero-padded to size x size with the
    odd pixel of padding on the right and bottom, then normalised with CLIP's mean and std. Returns (3, size, size).
    Unlike the original, an image whose longer side is already `size` is padded too (the original leaves it
    non-square, which its ViT cannot read), and RGBA is converted to RGB (the original keeps the alpha channel)."""
    pixels = _rgb_tensor(image)
    height, width = pixels.shape[1:]
    scale = size / max(height, width)
    if scale != 1.0:
        new_size = (round(height * scale), round(width * scale))
        pixels = F.interpolate(pixels[None], size=new_size, mode="bicubic", align_corners=False, antialias=True)[0]
    pad_height, pad_width = size - pixels.shape[1], size - pixels.shape[2]
    pixels = F.pad(pixels, (pad_width // 2, pad_width - pad_width // 2, pad_height // 2, pad_height - pad_height // 2))
    return _normalize(pixels)


def imagereward_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """ImageReward's transform (CLIP's): the shorter side resized to `size` with PIL's bicubic filter (the longer to
    int(size * longer / shorter)), a centred size x size crop, RGB, normalised with CLIP's mean and std.
    Returns (3, size, size)."""
    width, height = image.size
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    resized = image.resize((new_width, new_height), Image.BICUBIC)
    left, top = round((new_width - size) / 2), round((new_height - size) / 2)
    return _normalize(_rgb_tensor(resized.crop((left, top, left + size, top + size))))


# ---------------------------------------------------------------------------------------------------- prompts

def open_clip_clean(text: str) -> str:
    """A prompt cleaned as OpenCLIP's tokenizer cleans it (open_clip/tokenizer.py, `whitespace_clean(basic_clean(
    text)).lower()`; HPS v2 ships that code): `ftfy.fix_text` (curly quotes straightened, ligatures such as "ﬁ" spelt
    out, full-width letters made ASCII, NFC), HTML entities unescaped twice ("&amp;amp;" -> "&"), every run of
    whitespace made one space, the ends stripped, and the text lower-cased."""
    import ftfy
    import regex  # as OpenCLIP: its \s is Unicode's White_Space

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


def open_clip_tokenize(tokenizer, prompts, context_length: int) -> torch.Tensor:
    """HPS v2's `tokenize(prompts, context_length)`, with the vocabulary and merges of `tokenizer`, a transformers
    CLIP BPE tokenizer: each prompt cleaned (`open_clip_clean`) and split into OpenCLIP's words (`OPEN_CLIP_WORDS`),
    each word byte-encoded and merged by the tokenizer's BPE model alone (its normaliser and pre-tokenizer, which
    differ from OpenCLIP's, are bypassed); then start + ids + end, cut to `context_length` with the end token kept
    last, padded with zeros. Returns (len(prompts), context_length) token ids.

    As in OpenCLIP, "<|endoftext|>" and "<|startoftext|>" in a prompt are plain text (transformers' tokenizer reads
    them as its special tokens, and the text tower would end the prompt there), while OpenCLIP's own spellings
    "<end_of_text>" and "<start_of_text>" are its end and start ids (so HPS ends a prompt at "<end_of_text>": its text
    tower pools at the first end token)."""
    import regex
    from tokenizers.pre_tokenizers import ByteLevel

    to_bytes, bpe = ByteLevel(add_prefix_space=False, use_regex=False), tokenizer.backend_tokenizer.model
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    special = {"<start_of_text>": start, "<end_of_text>": end}
    input_ids = torch.zeros(len(prompts), context_length, dtype=torch.long)
    for row, prompt in zip(input_ids, prompts):
        ids = [start]
        for word in regex.findall(OPEN_CLIP_WORDS, open_clip_clean(prompt), flags=regex.IGNORECASE):
            if word in special:
                ids.append(special[word])
            else:
                ids.extend(token.id for token in bpe.tokenize(to_bytes.pre_tokenize_str(word)[0][0]))
        ids = ids[:context_length - 1] + [end]
        row[:len(ids)] = torch.tensor(ids)
    return input_ids


# ---------------------------------------------------------------------------------------------------- key mapping

def checkpoint_tensors(checkpoint) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint: the dict itself, or its "state_dict" entry (HPS v2 saves
    {"state_dict": ...}), with DistributedDataParallel's "module." prefix removed from the names."""
    tensors = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise ValueError("the checkpoint is not a state dict (a dict of tensors, or one under a 'state_dict' key)")
    return {name.removeprefix("module."): tensor for name, tensor in tensors.items()}


def _take(source: dict, name: str, what: str) -> torch.Tensor:
    """Remove and return the tensor `name` of `source`, a checkpoint being mapped."""
    if name not in source:
        raise ValueError(f"the checkpoint has no tensor {name!r}; it is not {what}")
    return source.pop(name)


def _shape(source: dict, name: str, what: str) -> tuple[int, ...]:
    if name not in source:
        raise ValueError(f"the checkpoint has no tensor {name!r}; it is not {what}")
    return tuple(source[name].shape)


def _count_layers(source: dict, prefix: str) -> int:
    indices = {int(m.group(1)) for name in source if (m := re.match(re.escape(prefix) + r"(\d+)\.", name))}
    return max(indices) + 1 if indices else 0


def _refuse_unused(source: dict, what: str) -> None:
    if source:
        names = sorted(source)
        raise ValueError(f"the checkpoint has {len(names)} tensor(s) that {what} does not have, so the mapping cannot "
                         f"use them: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}")


def _openclip_block(source: dict, old: str, new: str, what: str) -> dict[str, torch.Tensor]:
    """One OpenCLIP residual attention block (pre-LN, nn.MultiheadAttention with fused q/k/v) as a transformers CLIP
    encoder layer: in_proj_weight (3D, D) and in_proj_bias (3D,) split into q, k, v in that order."""
    weights = dict(zip((f"{new}self_attn.{p}_proj.weight" for p in "qkv"),
                       _take(source, f"{old}attn.in_proj_weight", what).chunk(3)))
    weights.update(zip((f"{new}self_attn.{p}_proj.bias" for p in "qkv"),
                       _take(source, f"{old}attn.in_proj_bias", what).chunk(3)))
    for before, after in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                          ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
        for kind in ("weight", "bias"):
            weights[f"{new}{after}.{kind}"] = _take(source, f"{old}{before}.{kind}", what)
    return weights


def openclip_to_clip(state_dict: dict[str, torch.Tensor]):
    """An OpenCLIP ViT state dict (HPS v2's layout: `visual.*` and the text tower at top level) as the config and
    state dict of a transformers `CLIPModel`. Widths, depths, patch and image size, context length and vocabulary
    come from the tensors' shapes; heads, activation and LayerNorm eps are ViT-H/14's. The projections
    `visual.proj` and `text_projection` are (in, out) matrices and become the transposed `nn.Linear` weights; the
    text pools at its end-of-text token, OpenCLIP's highest token id (vocab_size - 1). Raises ValueError naming a
    missing tensor, or tensors left unused. Returns (CLIPConfig, dict)."""
    from transformers import CLIPConfig

    what = "an OpenCLIP ViT checkpoint such as HPS v2's"
    source = dict(state_dict)
    width, _, patch, _ = _shape(source, "visual.conv1.weight", what)
    positions, _ = _shape(source, "visual.positional_embedding", what)
    vision_layers = _count_layers(source, "visual.transformer.resblocks.")
    vision_mlp, _ = _shape(source, "visual.transformer.resblocks.0.mlp.c_fc.weight", what)
    vocab, text_width = _shape(source, "token_embedding.weight", what)
    context, _ = _shape(source, "positional_embedding", what)
    text_layers = _count_layers(source, "transformer.resblocks.")
    text_mlp, _ = _shape(source, "transformer.resblocks.0.mlp.c_fc.weight", what)
    _, projection = _shape(source, "text_projection", what)
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=text_width, intermediate_size=text_mlp,
                         num_hidden_layers=text_layers, num_attention_heads=HPS_TEXT_HEADS,
                         max_position_embeddings=context, hidden_act="gelu", layer_norm_eps=HPS_LAYER_NORM_EPS,
                         bos_token_id=None, pad_token_id=None, eos_token_id=vocab - 1),
        vision_config=dict(hidden_size=width, intermediate_size=vision_mlp, num_hidden_layers=vision_layers,
                           num_attention_heads=HPS_VISION_HEADS, patch_size=patch,
                           image_size=patch * round((positions - 1) ** 0.5), hidden_act="gelu",
                           layer_norm_eps=HPS_LAYER_NORM_EPS),
        projection_dim=projection)

    weights = {
        "vision_model.embeddings.patch_embedding.weight": _take(source, "visual.conv1.weight", what),
        "vision_model.embeddings.class_embedding": _take(source, "visual.class_embedding", what),
        "vision_model.embeddings.position_embedding.weight": _take(source, "visual.positional_embedding", what),
        "visual_projection.weight": _take(source, "visual.proj", what).T,
        "text_model.embeddings.token_embedding.weight": _take(source, "token_embedding.weight", what),
        "text_model.embeddings.position_embedding.weight": _take(source, "positional_embedding", what),
        "text_projection.weight": _take(source, "text_projection", what).T,
        "logit_scale": _take(source, "logit_scale", what),
    }
    for before, after in (("visual.ln_pre", "vision_model.pre_layrnorm"),
                          ("visual.ln_post", "vision_model.post_layernorm"),
                          ("ln_final", "text_model.final_layer_norm")):
        for kind in ("weight", "bias"):
            weights[f"{after}.{kind}"] = _take(source, f"{before}.{kind}", what)
    for i in range(vision_layers):
        weights.update(_openclip_block(source, f"visual.transformer.resblocks.{i}.",
                                       f"vision_model.encoder.layers.{i}.", what))
    for i in range(text_layers):
        weights.update(_openclip_block(source, f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}.", what))
    _refuse_unused(source, "a CLIPModel")
    return config, weights


def imagereward_to_blip(state_dict: dict[str, torch.Tensor], med_config: dict):
    """ImageReward's state dict (`blip.visual_encoder.*`, a timm-style ViT; `blip.text_encoder.*`, BLIP's BERT with
    cross-attention; `mlp.layers.{0,2,4,6,7}.*`) as the configs and state dict of `ImageRewardNet`. The ViT's sizes
    come from the tensors' shapes (heads and eps are BLIP ViT-L/16's); the text encoder's from `med_config` (the
    contents of ImageReward's med_config.json), cross-attending to the ViT's width. The tensors in
    `IMAGEREWARD_UNUSED` are dropped. Raises ValueError naming a missing tensor or config field, or tensors left
    unused. Returns (BlipVisionConfig, BlipTextConfig, head sizes, dict)."""
    from transformers import BlipTextConfig, BlipVisionConfig

    what = "ImageReward's checkpoint"
    source = {name: tensor for name, tensor in state_dict.items() if name not in IMAGEREWARD_UNUSED}
    width, _, patch, _ = _shape(source, "blip.visual_encoder.patch_embed.proj.weight", what)
    _, positions, _ = _shape(source, "blip.visual_encoder.pos_embed", what)
    vision_layers = _count_layers(source, "blip.visual_encoder.blocks.")
    vision_mlp, _ = _shape(source, "blip.visual_encoder.blocks.0.mlp.fc1.weight", what)
    vision_config = BlipVisionConfig(hidden_size=width, intermediate_size=vision_mlp, num_hidden_layers=vision_layers,
                                     num_attention_heads=BLIP_VISION_HEADS, patch_size=patch,
                                     image_size=patch * round((positions - 1) ** 0.5), hidden_act="gelu",
                                     layer_norm_eps=BLIP_VISION_LAYER_NORM_EPS)
    fields = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "max_position_embeddings", "layer_norm_eps", "hidden_act", "pad_token_id")
    absent = [field for field in fields if field not in med_config]
    if absent:
        raise ValueError(f"the text encoder's config (med_config.json) lacks {', '.join(absent)}")
    # transformers' BLIP builds the cross-attention layers only for is_decoder=True; the forward pass asks for the
    # bidirectional (encoder) mask with is_decoder=False, as ImageReward's BERT reads the prompt.
    text_config = BlipTextConfig(**{field: med_config[field] for field in fields}, encoder_hidden_size=width,
                                 is_decoder=True, bos_token_id=None, eos_token_id=None, sep_token_id=None)
    head_sizes = [_shape(source, f"mlp.layers.{IMAGEREWARD_HEAD_LAYERS[0]}.weight", what)[1]]
    head_sizes += [_shape(source, f"mlp.layers.{i}.weight", what)[0] for i in IMAGEREWARD_HEAD_LAYERS]

    vit = "blip.visual_encoder."
    weights = {
        "vision.embeddings.class_embedding": _take(source, f"{vit}cls_token", what),
        "vision.embeddings.position_embedding": _take(source, f"{vit}pos_embed", what),
    }
    renames = [("patch_embed.proj", "embeddings.patch_embedding"), ("norm", "post_layernorm")]
    for i in range(vision_layers):
        renames += [(f"blocks.{i}.{before}", f"encoder.layers.{i}.{after}") for before, after in (
            ("norm1", "layer_norm1"), ("attn.qkv", "self_attn.qkv"), ("attn.proj", "self_attn.projection"),
            ("norm2", "layer_norm2"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2"))]
    for before, after in renames:
        for kind in ("weight", "bias"):
            weights[f"vision.{after}.{kind}"] = _take(source, f"{vit}{before}.{kind}", what)
    text_names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                  "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
    text_names += [f"encoder.layer.{i}.{name}" for i in range(text_config.num_hidden_layers)
                   for name in BERT_LAYER_TENSORS]
    for name in text_names:
        weights[f"text.{name}"] = _take(source, f"blip.text_encoder.{name}", what)
    for position, i in enumerate(IMAGEREWARD_HEAD_LAYERS):
        for kind in ("weight", "bias"):
            weights[f"head.{position}.{kind}"] = _take(source, f"mlp.layers.{i}.{kind}", what)
    _refuse_unused(source, "ImageReward's network")
    return vision_config, text_config, head_sizes, weights


def load_complete(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load `weights` into `model`, insisting that they fill every parameter and buffer of its state dict with a
    tensor of the right shape and bring nothing else; a ValueError names what is missing, extra or misshapen."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    misshapen = sorted(f"{name} {tuple(weights[name].shape)} (the model's is {tuple(expected[name].shape)})"
                       for name in set(expected) & set(weights) if weights[name].shape != expected[name].shape)
    if missing or extra or misshapen:
        problems = [f"{label}: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}"
                    for label, names in (("missing", missing), ("extra", extra), ("misshapen", misshapen)) if names]
        raise ValueError(f"the mapped checkpoint does not fill {type(model).__name__} exactly; {'; '.join(problems)}")
    model.load_state_dict(weights, strict=True)


def _uninitialised(build):
    """`build()` without weight initialisation: the model is filled completely by `load_complete` afterwards."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        return build()


class ImageRewardNet(nn.Module):
    """ImageReward's network in transformers modules: BLIP's ViT (`vision`, a BlipVisionModel), BLIP's BERT text
    encoder cross-attending to all the ViT's output tokens (`text`, a BlipTextModel without pooler) and the reward
    head (`head`, linear layers of `head_sizes` with no nonlinearity between them, as published)."""

    def __init__(self, vision_config, text_config, head_sizes: list[int]):
        from transformers import BlipTextModel, BlipVisionModel

        super().__init__()
        self.vision = BlipVisionModel(vision_config)
        self.text = BlipTextModel(text_config, add_pooling_layer=False)
        self.head = nn.Sequential(*(nn.Linear(a, b) for a, b in itertools.pairwise(head_sizes)))

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        """The head's output for each (image, prompt) pair, before ImageReward's normalisation: shape (N,)."""
        image_tokens = self.vision(pixel_values=pixel_values).last_hidden_state
        text = self.text(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image_tokens,
                         is_decoder=False).last_hidden_state
        return self.head(text[:, 0]).squeeze(-1)


# ---------------------------------------------------------------------------------------------------- files

class _Sources:
    """Where a reward model's files are: the directory `path`, or the explicit paths given for single files. A file
    that is not there is a FileNotFoundError naming it, saying what to download and how to point cotlab at it."""

    def __init__(self, reward: str, path, needs: str, downloads: list[str]):
        self.reward, self.path, self.needs, self.downloads = reward, path, needs, downloads

    def missing(self, target, problem: str) -> FileNotFoundError:
        directory = str(self.path) if self.path is not None else "/path/to/dir"
        commands = " and ".join(f"`{command.format(dir=directory)}`" for command in self.downloads)
        return FileNotFoundError(
            f"reward model {self.reward!r} cannot load {str(target)!r}: {problem}. It needs {self.needs} (cotlab "
            f"never scores with random weights). Download them with the huggingface_hub CLI, {commands}, and point "
            f"cotlab at the directory with `cotlab.rewards.get({self.reward!r}, path={directory!r})`.")

    def file(self, explicit, name: str) -> Path:
        """The file `explicit`, or else `name` in the directory."""
        if explicit is None and self.path is None:
            raise self.missing(name, "no path given")
        target = Path(explicit if explicit is not None else Path(self.path) / name).expanduser()
        if not target.is_file():
            raise self.missing(target, "no such file")
        return target

    def tokenizer(self, explicit, file_sets: tuple[tuple[str, ...], ...]) -> Path:
        """The directory `explicit`, or else the directory itself, if it holds one of the sets of tokenizer files."""
        if explicit is None and self.path is None:
            raise self.missing("the tokenizer", "no path given")
        directory = Path(explicit if explicit is not None else self.path).expanduser()
        if not any(all((directory / name).is_file() for name in names) for names in file_sets):
            wanted = " or ".join(" + ".join(names) for names in file_sets)
            raise self.missing(directory, f"no tokenizer ({wanted}) in it")
        return directory


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    return checkpoint_tensors(torch.load(file, map_location="cpu", weights_only=True))


class HPSv2:
    """HPS v2.1 (Wu et al. 2023, "Human Preference Score v2: A Solid Benchmark for Evaluating Human Preferences of
    Text-to-Image Synthesis"), a human-preference reward:

        r(image, prompt) = cos(E_I(image), E_T(prompt)),   in [-1, 1] (about 0.2 to 0.35 on real images)

    E_I, E_T the projected image and text embeddings of OpenCLIP ViT-H/14 fine-tuned on HPD v2, here a transformers
    `CLIPModel` filled from HPS_v2.1_compressed.pt by `openclip_to_clip`. Images go through `hps_pixels`; prompts
    through `open_clip_tokenize` (cleaned as OpenCLIP cleans them, then CLIP's BPE), truncated to the model's
    77-token context and zero-padded to it, as HPS v2 does."""

    def __init__(self, model, tokenizer, *, batch_size: int = 16, name: str = "hps"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        end_of_text = model.config.text_config.eos_token_id
        if tokenizer.eos_token_id != end_of_text:
            raise ValueError(f"the tokenizer's end-of-text token {tokenizer.eos_token!r} is id "
                             f"{tokenizer.eos_token_id}, but HPS v2 pools its text at id {end_of_text}, the last of "
                             f"its vocabulary; use OpenAI CLIP's BPE tokenizer ({HPS_TOKENIZER_REPOS[0]})")
        self.model, self.tokenizer, self.batch_size, self.name = model.eval(), tokenizer, int(batch_size), name
        self.image_size = model.config.vision_config.image_size
        self.context_length = model.config.text_config.max_position_embeddings

    @classmethod
    def from_pretrained(cls, path=None, *, checkpoint=None, tokenizer=None, device: str = "cpu", dtype="float32",
                        batch_size: int = 16, name: str = "hps") -> "HPSv2":
        """HPS v2.1 from `path`, a directory holding HPS_v2.1_compressed.pt and a CLIP tokenizer (vocab.json +
        merges.txt, or tokenizer.json); `checkpoint` (the .pt file) and `tokenizer` (a directory) override either.
        On `device` in `dtype`."""
        from transformers import CLIPModel, CLIPTokenizer

        needs = (f"{HPS_FILE} from the Hugging Face hub repo {HPS_REPO} and a CLIP BPE tokenizer "
                 f"({' or '.join(HPS_TOKENIZER_REPOS)}) in one directory")
        downloads = [f"hf download {HPS_REPO} {HPS_FILE} --local-dir {{dir}}",
                     (f"hf download {HPS_TOKENIZER_REPOS[0]} vocab.json merges.txt tokenizer_config.json "
                      f"special_tokens_map.json --local-dir {{dir}}")]
        sources = _Sources("hps", path, needs, downloads)
        checkpoint_file = sources.file(checkpoint, HPS_FILE)
        tokenizer_dir = sources.tokenizer(tokenizer, (("tokenizer.json",), ("vocab.json", "merges.txt")))
        config, weights = openclip_to_clip(_load_tensors(checkpoint_file))
        model = _uninitialised(lambda: CLIPModel(config))
        load_complete(model, weights)
        return cls(model.to(device=device, dtype=torch_dtype(dtype)), CLIPTokenizer.from_pretrained(tokenizer_dir),
                   batch_size=batch_size, name=name)

    def __call__(self, prompts, images, metadata=None) -> torch.Tensor:
        check_inputs(self.name, prompts, images)
        scores = []
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                stop = start + self.batch_size
                pixels = torch.stack([hps_pixels(image, self.image_size) for image in images[start:stop]])
                input_ids = open_clip_tokenize(self.tokenizer, prompts[start:stop], self.context_length)
                image_embeds = self.model.get_image_features(
                    pixel_values=pixels.to(self.model.device, self.model.dtype)).pooler_output
                text_embeds = self.model.get_text_features(
                    input_ids=input_ids.to(self.model.device)).pooler_output
                cosine = (F.normalize(image_embeds.float(), dim=-1) * F.normalize(text_embeds.float(), dim=-1)).sum(-1)
                scores.append(cosine.cpu())
        return torch.cat(scores) if scores else torch.zeros(0)


class ImageReward:
    """ImageReward v1.0 (Xu et al. 2023, "ImageReward: Learning and Evaluating Human Preferences for Text-to-Image
    Generation"), a human-preference reward:

        r(image, prompt) = (MLP(h_CLS(image, prompt)) - mu) / sigma,   mu = 0.16717362830052426,
                                                                       sigma = 1.0333394966054072

    h_CLS the [CLS] output of BLIP's BERT text encoder reading the prompt and cross-attending to the ViT-L/16 tokens
    of the image, MLP five linear layers (768-1024-128-64-16-1, no nonlinearity), mu and sigma the original's
    normalisation constants; an `ImageRewardNet` filled from ImageReward.pt by `imagereward_to_blip`. Images go
    through `imagereward_pixels`; prompts through BERT-base-uncased's tokenizer with BLIP's [DEC] and [ENC] tokens
    added, padded and truncated to 35 tokens. As in ImageReward's `score` (and unlike BLIP's image-text matching,
    which swaps in [ENC]), the first token is [CLS]. Prompts go in raw, as ImageReward's do: no cleaning beyond
    BERT's own normaliser (lower case, accents stripped), and special-token text in a prompt ("[SEP]", "[CLS]") is
    read as that token, as the transformers 4 `BertTokenizer` the original ran with reads it (case-sensitively:
    "[sep]" stays text)."""

    def __init__(self, model: ImageRewardNet, tokenizer, *, batch_size: int = 16, name: str = "imagereward"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
        vocab = model.text.config.vocab_size
        if len(tokenizer) != vocab:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens with BLIP's [DEC] and [ENC], but "
                             f"ImageReward's text encoder has {vocab}; use BERT-base-uncased's tokenizer "
                             f"({IMAGEREWARD_TOKENIZER_REPO})")
        self.model, self.tokenizer, self.batch_size, self.name = model.eval(), tokenizer, int(batch_size), name
        self.image_size = model.vision.config.image_size

    @classmethod
    def from_pretrained(cls, path=None, *, checkpoint=None, med_config=None, tokenizer=None, device: str = "cpu",
                        dtype="float32", batch_size: int = 16, name: str = "imagereward") -> "ImageReward":
        """ImageReward from `path`, a directory holding ImageReward.pt, med_config.json and BERT-base-uncased's
        tokenizer (vocab.txt, or tokenizer.json); `checkpoint`, `med_config` (files) and `tokenizer` (a directory)
        override any of them. On `device` in `dtype`."""
        from transformers import BertTokenizer

        needs = (f"{IMAGEREWARD_FILE} and {IMAGEREWARD_CONFIG_FILE} from the Hugging Face hub repo "
                 f"{IMAGEREWARD_REPO} and BERT-base-uncased's tokenizer ({IMAGEREWARD_TOKENIZER_REPO}) in one "
                 f"directory")
        downloads = [f"hf download {IMAGEREWARD_REPO} {IMAGEREWARD_FILE} {IMAGEREWARD_CONFIG_FILE} --local-dir {{dir}}",
                     f"hf download {IMAGEREWARD_TOKENIZER_REPO} vocab.txt tokenizer_config.json --local-dir {{dir}}"]
        sources = _Sources("imagereward", path, needs, downloads)
        checkpoint_file = sources.file(checkpoint, IMAGEREWARD_FILE)
        config_file = sources.file(med_config, IMAGEREWARD_CONFIG_FILE)
        tokenizer_dir = sources.tokenizer(tokenizer, (("tokenizer.json",), ("vocab.txt",)))
        vision_config, text_config, head_sizes, weights = imagereward_to_blip(
            _load_tensors(checkpoint_file), json.loads(config_file.read_text()))
        model = _uninitialised(lambda: ImageRewardNet(vision_config, text_config, head_sizes))
        load_complete(model, weights)
        return cls(model.to(device=device, dtype=torch_dtype(dtype)), BertTokenizer.from_pretrained(tokenizer_dir),
                   batch_size=batch_size, name=name)

    def __call__(self, prompts, images, metadata=None) -> torch.Tensor:
        check_inputs(self.name, prompts, images)
        device, dtype = self.model.vision.device, self.model.vision.dtype
        scores = []
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                stop = start + self.batch_size
                pixels = torch.stack([imagereward_pixels(image, self.image_size) for image in images[start:stop]])
                tokens = self.tokenizer(list(prompts[start:stop]), padding="max_length", truncation=True,
                                        max_length=IMAGEREWARD_MAX_TOKENS, return_tensors="pt").to(device)
                raw = self.model(pixels.to(device, dtype), tokens["input_ids"], tokens["attention_mask"])
                scores.append(((raw.float() - IMAGEREWARD_MEAN) / IMAGEREWARD_STD).cpu())
        return torch.cat(scores) if scores else torch.zeros(0)


def _build(reward: str, cls, options: dict):
    """`cls.from_pretrained(**options)`, refusing unknown options with the valid ones listed."""
    valid = [p.name for p in inspect.signature(cls.from_pretrained).parameters.values()]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for reward model {reward!r}; valid options: "
                        f"{', '.join(valid)}")
    return cls.from_pretrained(**options)


def hps(**options) -> HPSv2:
    """The registry's "hps": `HPSv2.from_pretrained(**options)`; options: path, checkpoint, tokenizer, device, dtype,
    batch_size, name."""
    return _build("hps", HPSv2, options)


def imagereward(**options) -> ImageReward:
    """The registry's "imagereward": `ImageReward.from_pretrained(**options)`; options: path, checkpoint,
    med_config, tokenizer, device, dtype, batch_size, name."""
    return _build("imagereward", ImageReward, options)


__all__ = ["CLIP_MEAN", "CLIP_STD", "HPSv2", "IMAGEREWARD_MEAN", "IMAGEREWARD_STD", "IMAGEREWARD_UNUSED",
           "ImageReward", "ImageRewardNet", "OPEN_CLIP_WORDS", "checkpoint_tensors", "hps", "hps_pixels",
           "imagereward", "imagereward_pixels", "imagereward_to_blip", "load_complete", "open_clip_clean",
           "open_clip_tokenize", "openclip_to_clip"]
