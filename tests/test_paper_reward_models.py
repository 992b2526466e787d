"""HPS v2.1 and ImageReward on tiny synthetic checkpoints with the published key layout (same names, shapes scaled
down), saved to disk with tiny tokenizers (no hub, no open_clip, no torchvision), against plain-torch forwards of
the original architectures (OpenCLIP's ViT and causal text tower; BLIP's timm ViT and BERT with cross-attention)."""

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import BertTokenizer, CLIPModel, CLIPTokenizer

from cotlab import rewards
from cotlab.rewards import HPSv2, ImageReward, get
from cotlab.rewards.paper_models import (CLIP_MEAN, CLIP_STD, ImageRewardNet, hps_pixels, imagereward_pixels,
                                         imagereward_to_blip, load_complete, open_clip_clean, open_clip_tokenize,
                                         openclip_to_clip)
from cotlab.experiments.stand_ins import (HEAD_SIZES, HEADS, IMAGE, LAYERS, MED_CONFIG, PATCH, TEXT_HEADS, TEXT_WIDTH,
                                          WIDTH, hps_state_dict, imagereward_state_dict, tiny_hps, tiny_imagereward)
from cotlab.experiments.stand_ins import letter_clip_tokenizer as clip_tokenizer

PROMPTS = ["a red circle", "two blue squares", "a green star left of a cat sitting on a blue mat", "x", "a yellow dog"]


def images(n):
    """Images of different sizes, shapes and colours."""
    return [Image.new("RGB", (24 + 12 * (i % 3), 40 - 6 * i), (60 * i % 256, 255 - 40 * i, 90)) for i in range(n)]


@pytest.fixture(scope="module")
def hps_dir(tmp_path_factory):
    return tiny_hps(tmp_path_factory.mktemp("hps"))


def openclip_block(x, sd, prefix, heads, mask=None):
    """OpenCLIP's ResidualAttentionBlock: x + attn(ln_1(x)), then x + c_proj(gelu(c_fc(ln_2(x)))); x is (N, L, D)."""
    width = x.shape[-1]
    h = F.layer_norm(x, (width,), sd[f"{prefix}ln_1.weight"], sd[f"{prefix}ln_1.bias"]).transpose(0, 1)
    attended, _ = F.multi_head_attention_forward(
        h, h, h, width, heads, sd[f"{prefix}attn.in_proj_weight"], sd[f"{prefix}attn.in_proj_bias"], None, None,
        False, 0.0, sd[f"{prefix}attn.out_proj.weight"], sd[f"{prefix}attn.out_proj.bias"], training=False,
        need_weights=False, attn_mask=mask)
    x = x + attended.transpose(0, 1)
    h = F.layer_norm(x, (width,), sd[f"{prefix}ln_2.weight"], sd[f"{prefix}ln_2.bias"])
    h = F.gelu(F.linear(h, sd[f"{prefix}mlp.c_fc.weight"], sd[f"{prefix}mlp.c_fc.bias"]))
    return x + F.linear(h, sd[f"{prefix}mlp.c_proj.weight"], sd[f"{prefix}mlp.c_proj.bias"])


def openclip_score(sd, pixels, input_ids):
    """HPS v2's score with OpenCLIP's forward written out: diag(normalize(encode_image) @ normalize(encode_text).T)."""
    x = F.conv2d(pixels, sd["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    x = torch.cat([sd["visual.class_embedding"].expand(len(x), 1, -1), x], 1) + sd["visual.positional_embedding"]
    x = F.layer_norm(x, (WIDTH,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    for i in range(LAYERS):
        x = openclip_block(x, sd, f"visual.transformer.resblocks.{i}.", HEADS)
    image = F.layer_norm(x[:, 0], (WIDTH,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"]) @ sd["visual.proj"]

    t = sd["token_embedding.weight"][input_ids] + sd["positional_embedding"]
    causal = torch.full((t.shape[1], t.shape[1]), float("-inf")).triu(1)
    for i in range(LAYERS):
        t = openclip_block(t, sd, f"transformer.resblocks.{i}.", HEADS, causal)
    t = F.layer_norm(t, (WIDTH,), sd["ln_final.weight"], sd["ln_final.bias"])
    text = t[torch.arange(len(t)), input_ids.argmax(-1)] @ sd["text_projection"]  # the end-of-text token: highest id
    return (F.normalize(image, dim=-1) * F.normalize(text, dim=-1)).sum(-1)


def test_hps_mapping_uses_every_tensor_and_fills_every_parameter():
    sd = hps_state_dict(vocab=54)
    config, weights = openclip_to_clip(sd)
    assert (config.vision_config.hidden_act, config.text_config.hidden_act) == ("gelu", "gelu")  # nn.GELU, not quick
    vision = config.vision_config
    assert (vision.image_size, vision.num_hidden_layers, config.projection_dim) == (IMAGE, LAYERS, 16)
    assert (config.vision_config.layer_norm_eps, config.text_config.layer_norm_eps) == (1e-5, 1e-5)  # torch's default
    model = CLIPModel(config)
    assert set(weights) == set(model.state_dict())
    load_complete(model, weights)
    # q, k, v are the thirds of the fused in-projection; OpenCLIP's (in, out) projections become nn.Linear weights
    fused = sd["visual.transformer.resblocks.1.attn.in_proj_weight"]
    layer = model.vision_model.encoder.layers[1].self_attn
    assert torch.equal(torch.cat([layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight]), fused)
    assert torch.equal(model.visual_projection.weight, sd["visual.proj"].T)
    assert torch.equal(model.text_projection.weight, sd["text_projection"].T)

    with pytest.raises(ValueError, match=r"1 tensor\(s\) that a CLIPModel does not have.*visual.bogus"):
        openclip_to_clip({**sd, "visual.bogus": torch.zeros(1)})
    dropped = {k: v for k, v in sd.items() if k != "transformer.resblocks.1.ln_2.bias"}
    with pytest.raises(ValueError, match="no tensor 'transformer.resblocks.1.ln_2.bias'; it is not an OpenCLIP"):
        openclip_to_clip(dropped)
    with pytest.raises(ValueError, match="missing: text_projection.weight"):
        load_complete(model, {k: v for k, v in weights.items() if k != "text_projection.weight"})
    with pytest.raises(ValueError, match=r"misshapen: logit_scale \(1,\)"):
        load_complete(model, {**weights, "logit_scale": torch.zeros(1)})


def test_hps_scores_are_openclips_cosines_on_hps_pixels(hps_dir):
    rm = get("hps", path=hps_dir)
    assert isinstance(rm, HPSv2) and rm.name == "hps"
    scores = rm(PROMPTS, images(5))
    assert scores.shape == (5,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()

    sd = torch.load(hps_dir / "HPS_v2.1_compressed.pt")["state_dict"]
    ids = clip_tokenizer()(PROMPTS, padding="max_length", truncation=True, max_length=16, return_tensors="pt")
    assert (ids["input_ids"][2, -1] == 53).item()  # the long prompt is truncated and still ends with end-of-text
    pixels = torch.stack([hps_pixels(image, IMAGE) for image in images(5)])
    expected = openclip_score(sd, pixels, ids["input_ids"])
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    assert scores.std() > 1e-3  # the scores differ between pairs: nothing was averaged away


def test_hps_batching_and_checkpoint_forms_do_not_change_scores(hps_dir, tmp_path):
    one = get("hps", path=hps_dir, batch_size=1)(PROMPTS, images(5))
    torch.testing.assert_close(get("hps", path=hps_dir, batch_size=3)(PROMPTS, images(5)), one, atol=1e-6, rtol=0)
    assert get("hps", path=hps_dir)([], []).shape == (0,)
    # a bare state dict under DistributedDataParallel's "module." prefix, named explicitly, tokenizer elsewhere
    sd = torch.load(hps_dir / "HPS_v2.1_compressed.pt")["state_dict"]
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "hps.pt")
    rm = get("hps", checkpoint=tmp_path / "hps.pt", tokenizer=hps_dir, dtype="float64")
    torch.testing.assert_close(rm(PROMPTS, images(5)), one, atol=1e-5, rtol=0)


def test_hps_pixels_resize_the_longer_side_and_pad_with_black():
    mean, std = torch.tensor(CLIP_MEAN)[:, None], torch.tensor(CLIP_STD)[:, None]
    colour = torch.tensor([200, 100, 50]) / 255
    pixels = hps_pixels(Image.new("RGB", (64, 34), (200, 100, 50)), 32)  # -> 32 x 17, padded 7 above and 8 below
    assert pixels.shape == (3, 32, 32)
    black, filled = (0 - mean) / std, (colour[:, None] - mean) / std
    for rows, value in ((range(7), black), (range(7, 24), filled), (range(24, 32), black)):
        for row in rows:
            torch.testing.assert_close(pixels[:, row], value.expand(3, 32), atol=1e-5, rtol=0)
    side = hps_pixels(Image.new("RGB", (21, 32), (200, 100, 50)), 32)  # not resized; padded 5 left, 6 right
    for column, value in ((4, black), (5, filled), (25, filled), (26, black)):
        torch.testing.assert_close(side[:, :, column], value.expand(3, 32), atol=1e-6, rtol=0)
    stripes = torch.zeros(96, 96, 3, dtype=torch.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes, shrunk 3x: antialiased to grey, where plain bicubic would alias to 0/1
    grey = hps_pixels(Image.fromarray(stripes.numpy()), 32)[:, 4:28, 4:28] * std[..., None] + mean[..., None]
    assert grey.min() > 0.45 and grey.max() < 0.55


BYTE_MERGES = [("f", "i"), ("s", "h</w>"), ("fi", "sh</w>")]


def byte_clip_tokenizer():
    """A byte-level CLIP BPE tokenizer laid out as OpenAI's: the 256 byte symbols in GPT-2's order (printable ASCII
    first, so character c is id ord(c) - 33), the same with </w> (+256), the merges fi 512, sh</w> 513, fish</w> 514,
    then <|startoftext|> 515 and <|endoftext|> 516, the last id."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    symbols = [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]
    tokens = (symbols + [s + "</w>" for s in symbols] + ["".join(merge) for merge in BYTE_MERGES]
              + ["<|startoftext|>", "<|endoftext|>"])
    return CLIPTokenizer(vocab={token: i for i, token in enumerate(tokens)}, merges=BYTE_MERGES)


# HPS v2's own `tokenize(prompts, context_length=24)` (hpsv2/src/open_clip/tokenizer.py, run once on this vocabulary):
# '"</w>' 257, '&</w>' 261, 'a' 64, 'b' 65, 'c</w>' 322, 'fish</w>' 514; "<|endoftext|>" is the words "<|" ('<' 27,
# '|</w>' 347), "endoftext" (68 77 67 78 69 83 68 87, 't</w>' 339) and "|>" or "|>!" ('|' 91, '></w>' 285 or '>' 29,
# '!</w>' 256); OpenCLIP's own "<end_of_text>" is the end id 516.
HPS_TOKENS = {
    "\u201cFish\u201d &amp;amp; \ufb01sh": [515, 257, 514, 257, 261, 514, 516],  # curly quotes, &amp;amp;, "ﬁ"
    '"fish" & fish': [515, 257, 514, 257, 261, 514, 516],  # the same prompt, clean
    "\uff21\uff22\uff23  \n\t Fish": [515, 64, 65, 322, 514, 516],  # full-width ABC, a run of whitespace
    "a <|endoftext|> b": [515, 320, 27, 347, 68, 77, 67, 78, 69, 83, 68, 87, 339, 91, 285, 321, 516],
    "x<|endoftext|>!": [515, 343, 27, 347, 68, 77, 67, 78, 69, 83, 68, 87, 339, 91, 29, 256, 516],
    "a <end_of_text> b": [515, 320, 516, 321, 516],
    "a": [515, 320, 516],
    " ".join(["fish"] * 30): [515] + [514] * 22 + [516],  # truncated, the end token kept last
}


@pytest.fixture(scope="module")
def hps_byte_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hps_bytes")
    tokenizer = byte_clip_tokenizer()
    return tiny_hps(path, tokenizer=tokenizer, context=24)


def test_open_clip_clean_follows_openclips_recipe():
    # ftfy (quotes, ligature, full width), html.unescape twice, whitespace collapsed and stripped, lower case
    assert open_clip_clean("  \u201cFish\u201d &amp;amp;\n\n \ufb01sh\t\uff21\uff22\uff23  ") == '"fish" & fish abc'
    assert open_clip_clean("&lt;|endoftext|&gt;") == "<|endoftext|>"


def test_hps_tokenizes_prompts_as_hps_does():
    input_ids = open_clip_tokenize(byte_clip_tokenizer(), list(HPS_TOKENS), 24)
    expected = torch.zeros(len(HPS_TOKENS), 24, dtype=torch.long)  # HPS v2 pads with zeros
    for row, ids in zip(expected, HPS_TOKENS.values()):
        row[:len(ids)] = torch.tensor(ids)
    assert torch.equal(input_ids, expected)


def test_hps_scores_a_prompt_and_its_clean_form_alike_and_reads_past_endoftext(hps_byte_dir):
    rm = get("hps", path=hps_byte_dir)
    prompts = list(HPS_TOKENS)[:7]
    scores = rm(prompts, images(1) * 7)
    sd = torch.load(hps_byte_dir / "HPS_v2.1_compressed.pt")["state_dict"]
    pixels = hps_pixels(images(1)[0], IMAGE).expand(7, -1, -1, -1)
    literal = torch.zeros(7, 24, dtype=torch.long)
    for row, prompt in zip(literal, prompts):
        row[:len(HPS_TOKENS[prompt])] = torch.tensor(HPS_TOKENS[prompt])
    torch.testing.assert_close(scores, openclip_score(sd, pixels, literal), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores[0], scores[1], atol=1e-6, rtol=0)  # cleaned and uncleaned: one score
    assert abs(scores[3] - scores[6]) > 1e-3  # "a <|endoftext|> b" is not cut to "a"
    torch.testing.assert_close(scores[5], scores[6], atol=1e-6, rtol=0)  # "a <end_of_text> b" is, as in HPS v2
    # transformers' own tokenization of the uncleaned prompt gives other ids and another score
    plain = rm.tokenizer(prompts[:1], padding="max_length", max_length=24, return_tensors="pt")["input_ids"]
    assert abs(openclip_score(sd, pixels[:1], plain)[0] - scores[0]) > 1e-3


# ---------------------------------------------------------------------------------------------------- ImageReward

@pytest.fixture(scope="module")
def imagereward_dir(tmp_path_factory):
    return tiny_imagereward(tmp_path_factory.mktemp("imagereward"))


def bert_attention(x, sd, prefix, context, mask, heads):
    """BLIP med.py's BertAttention: LN(x + dense(softmax(q k^T / sqrt(d) + mask) v)), keys and values from
    `context` (x itself for self-attention, the image tokens for cross-attention)."""
    def split(t):
        return t.unflatten(-1, (heads, -1)).transpose(1, 2)

    q = split(F.linear(x, sd[f"{prefix}.self.query.weight"], sd[f"{prefix}.self.query.bias"]))
    k = split(F.linear(context, sd[f"{prefix}.self.key.weight"], sd[f"{prefix}.self.key.bias"]))
    v = split(F.linear(context, sd[f"{prefix}.self.value.weight"], sd[f"{prefix}.self.value.bias"]))
    weights = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + mask).softmax(-1)
    out = F.linear((weights @ v).transpose(1, 2).flatten(2), sd[f"{prefix}.output.dense.weight"],
                   sd[f"{prefix}.output.dense.bias"])
    return F.layer_norm(out + x, (x.shape[-1],), sd[f"{prefix}.output.LayerNorm.weight"],
                        sd[f"{prefix}.output.LayerNorm.bias"], eps=1e-12)


def imagereward_score(sd, pixels, input_ids, attention_mask):
    """ImageReward's score with BLIP's forward written out (timm ViT, BERT with cross-attention, the MLP head)."""
    vit = "blip.visual_encoder."
    x = F.conv2d(pixels, sd[f"{vit}patch_embed.proj.weight"], sd[f"{vit}patch_embed.proj.bias"], stride=PATCH)
    x = torch.cat([sd[f"{vit}cls_token"].expand(len(x), 1, -1), x.flatten(2).transpose(1, 2)], 1)
    x = x + sd[f"{vit}pos_embed"]
    for i in range(LAYERS):
        b = f"{vit}blocks.{i}."
        h = F.layer_norm(x, (WIDTH,), sd[f"{b}norm1.weight"], sd[f"{b}norm1.bias"], eps=1e-6)
        q, k, v = F.linear(h, sd[f"{b}attn.qkv.weight"], sd[f"{b}attn.qkv.bias"]).unflatten(
            -1, (3, HEADS, -1)).permute(2, 0, 3, 1, 4)
        attended = ((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5).softmax(-1) @ v
        x = x + F.linear(attended.transpose(1, 2).flatten(2), sd[f"{b}attn.proj.weight"], sd[f"{b}attn.proj.bias"])
        h = F.layer_norm(x, (WIDTH,), sd[f"{b}norm2.weight"], sd[f"{b}norm2.bias"], eps=1e-6)
        h = F.gelu(F.linear(h, sd[f"{b}mlp.fc1.weight"], sd[f"{b}mlp.fc1.bias"]))
        x = x + F.linear(h, sd[f"{b}mlp.fc2.weight"], sd[f"{b}mlp.fc2.bias"])
    image = F.layer_norm(x, (WIDTH,), sd[f"{vit}norm.weight"], sd[f"{vit}norm.bias"], eps=1e-6)

    bert = "blip.text_encoder."
    t = sd[f"{bert}embeddings.word_embeddings.weight"][input_ids]
    t = t + sd[f"{bert}embeddings.position_embeddings.weight"][: input_ids.shape[1]]
    t = F.layer_norm(t, (TEXT_WIDTH,), sd[f"{bert}embeddings.LayerNorm.weight"], sd[f"{bert}embeddings.LayerNorm.bias"],
                     eps=1e-12)
    padding = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
    for i in range(LAYERS):
        b = f"{bert}encoder.layer.{i}."
        t = bert_attention(t, sd, f"{b}attention", t, padding, TEXT_HEADS)
        t = bert_attention(t, sd, f"{b}crossattention", image, 0.0, TEXT_HEADS)
        h = F.gelu(F.linear(t, sd[f"{b}intermediate.dense.weight"], sd[f"{b}intermediate.dense.bias"]))
        t = F.layer_norm(F.linear(h, sd[f"{b}output.dense.weight"], sd[f"{b}output.dense.bias"]) + t, (TEXT_WIDTH,),
                         sd[f"{b}output.LayerNorm.weight"], sd[f"{b}output.LayerNorm.bias"], eps=1e-12)
    reward = t[:, 0]
    for index in (0, 2, 4, 6, 7):  # linear layers only: the published head has no nonlinearity
        reward = F.linear(reward, sd[f"mlp.layers.{index}.weight"], sd[f"mlp.layers.{index}.bias"])
    return (reward.squeeze(-1) - 0.16717362830052426) / 1.0333394966054072  # ImageReward's mean and std


def test_imagereward_mapping_uses_every_tensor_and_fills_every_parameter():
    sd = imagereward_state_dict(vocab=59)
    med_config = {**MED_CONFIG, "vocab_size": 59}
    vision_config, text_config, head_sizes, weights = imagereward_to_blip(sd, med_config)
    assert vision_config.layer_norm_eps == 1e-6 and text_config.encoder_hidden_size == WIDTH
    assert head_sizes == list(HEAD_SIZES)
    model = ImageRewardNet(vision_config, text_config, head_sizes)
    assert set(weights) == set(model.state_dict())
    load_complete(model, weights)
    assert torch.equal(model.head[4].weight, sd["mlp.layers.7.weight"])
    assert torch.equal(model.vision.encoder.layers[1].self_attn.qkv.weight,
                       sd["blip.visual_encoder.blocks.1.attn.qkv.weight"])

    with pytest.raises(ValueError, match=r"1 tensor\(s\) that ImageReward's network does not have.*itm_head.weight"):
        imagereward_to_blip({**sd, "blip.itm_head.weight": torch.zeros(2, TEXT_WIDTH)}, med_config)
    dropped = {k: v for k, v in sd.items() if k != "blip.text_encoder.encoder.layer.1.crossattention.self.key.bias"}
    with pytest.raises(ValueError, match="no tensor 'blip.text_encoder.encoder.layer.1.crossattention.self.key.bias'"):
        imagereward_to_blip(dropped, med_config)
    with pytest.raises(ValueError, match="no tensor 'mlp.layers.6.weight'"):
        imagereward_to_blip({k: v for k, v in sd.items() if not k.startswith("mlp.layers.6.")}, med_config)
    with pytest.raises(ValueError, match="lacks num_attention_heads"):
        imagereward_to_blip(sd, {k: v for k, v in med_config.items() if k != "num_attention_heads"})
    with pytest.raises(ValueError, match="extra: bogus"):
        load_complete(model, {**weights, "bogus": torch.zeros(1)})


def test_imagereward_scores_are_blips_head_output_normalised(imagereward_dir):
    rm = get("imagereward", path=imagereward_dir)
    assert isinstance(rm, ImageReward) and rm.name == "imagereward"
    scores = rm(PROMPTS, images(5))
    assert scores.shape == (5,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()

    sd = torch.load(imagereward_dir / "ImageReward.pt")
    tokenizer = BertTokenizer.from_pretrained(imagereward_dir)
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    tokens = tokenizer(PROMPTS, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    assert (tokens["input_ids"][:, 0] == tokenizer.cls_token_id).all()  # [CLS] first, as ImageReward's score has it
    assert tokens["attention_mask"][2].all() and not tokens["attention_mask"][3].all()  # truncated and padded rows
    pixels = torch.stack([imagereward_pixels(image, IMAGE) for image in images(5)])
    expected = imagereward_score(sd, pixels, tokens["input_ids"], tokens["attention_mask"])
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    assert scores.std() > 1e-3


def test_imagereward_reads_prompts_raw_as_the_original(imagereward_dir):
    """ImageReward calls BLIP's BertTokenizer on the raw prompt: no HTML unescaping ("&amp;" is "&", "amp", ";"), and
    special-token text is split out case-sensitively before lower-casing, as transformers 4's slow tokenizer did:
    "[SEP]" is [SEP] (3), "[sep]" is "[", "sep", "]" ([UNK] s ##e ##p [UNK] here), "[DEC][ENC]" are BLIP's 57, 58."""
    rm = get("imagereward", path=imagereward_dir)
    tokens = rm.tokenizer(["ab [SEP] cd [sep]", "[DEC][ENC] ab", "&amp; Ab"])["input_ids"]
    assert tokens == [[2, 5, 32, 3, 7, 34, 1, 23, 35, 46, 1, 3], [2, 57, 58, 5, 32, 3], [2, 1, 5, 43, 46, 1, 5, 32, 3]]


def test_imagereward_batching_does_not_change_scores(imagereward_dir):
    one = get("imagereward", path=imagereward_dir, batch_size=1)(PROMPTS, images(5))
    four = get("imagereward", path=imagereward_dir, batch_size=4)(PROMPTS, images(5))
    torch.testing.assert_close(four, one, atol=1e-6, rtol=0)
    assert get("imagereward", path=imagereward_dir)([], []).shape == (0,)


def test_imagereward_pixels_resize_the_shorter_side_and_crop_the_centre():
    tall = Image.new("RGB", (20, 40), (0, 0, 255))  # blue above, green in the middle, red below
    tall.paste((0, 255, 0), (0, 10, 20, 30))
    tall.paste((255, 0, 0), (0, 30, 20, 40))
    pixels = imagereward_pixels(tall, 32)  # -> 32 x 64, rows 16..47 kept: the green band
    assert pixels.shape == (3, 32, 32)
    green = (torch.tensor([0.0, 1.0, 0.0]) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(pixels[:, 6:26], green[:, None, None].expand(3, 20, 32), atol=1e-6, rtol=0)
    wide = imagereward_pixels(Image.new("L", (90, 30), 128), 32)  # greyscale, resized to 96 x 32, cropped
    grey = (torch.full((3,), 128 / 255) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(wide, grey[:, None, None].expand(3, 32, 32), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------- errors

def test_registry_lists_both_models():
    assert {"hps", "imagereward"} <= set(rewards.available())


@pytest.mark.parametrize("reward, remove, named", [
    ("hps", {"HPS_v2.1_compressed.pt"}, "HPS_v2.1_compressed.pt.*hub repo xswu/HPSv2"),
    ("hps", {"tokenizer.json", "vocab.json"}, "no tokenizer .*openai/clip-vit-large-patch14"),
    ("imagereward", {"ImageReward.pt"}, "ImageReward.pt.*hub repo THUDM/ImageReward"),
    ("imagereward", {"med_config.json"}, "med_config.json.*no such file"),
    ("imagereward", {"vocab.txt"}, "no tokenizer .*bert-base-uncased"),
])
def test_a_missing_file_is_named_with_where_to_get_it(reward, remove, named, hps_dir, imagereward_dir, tmp_path):
    source = hps_dir if reward == "hps" else imagereward_dir
    for file in source.iterdir():
        if file.name not in remove:
            (tmp_path / file.name).write_bytes(file.read_bytes())
    with pytest.raises(FileNotFoundError, match=named) as error:
        get(reward, path=tmp_path)
    message = str(error.value)
    assert "random weights" in message and f"cotlab.rewards.get('{reward}', path='{tmp_path}')" in message
    with pytest.raises(FileNotFoundError, match="no path given.*hf download"):
        get(reward)


def test_bad_inputs_and_options_are_refused(hps_dir, imagereward_dir):
    with pytest.raises(TypeError, match="unknown option.s. weight for reward model 'hps'; valid options: path, "
                                        "checkpoint, tokenizer, device, dtype, batch_size, name"):
        get("hps", path=hps_dir, weight=2.5)
    with pytest.raises(TypeError, match="unknown option.s. mode for reward model 'imagereward'; valid options: path, "
                                        "checkpoint, med_config, tokenizer, device, dtype, batch_size, name"):
        get("imagereward", path=imagereward_dir, mode="parse")
    with pytest.raises(ValueError, match="no tensor 'visual.conv1.weight'; it is not an OpenCLIP"):
        get("hps", checkpoint=imagereward_dir / "ImageReward.pt", tokenizer=hps_dir)
    with pytest.raises(ValueError, match="end-of-text token .* is id .*use OpenAI CLIP's BPE tokenizer"):
        HPSv2(get("hps", path=hps_dir).model, CLIPTokenizer.from_pretrained(hps_dir, eos_token="a"))
    with pytest.raises(ValueError, match="the tokenizer has 56 tokens .* text encoder has 59; use BERT-base-uncased"):
        ImageReward(get("imagereward", path=imagereward_dir).model, clip_tokenizer())
    for rm in (get("hps", path=hps_dir), get("imagereward", path=imagereward_dir)):
        with pytest.raises(ValueError, match=f"reward model '{rm.name}' got 2 prompts and 1 images"):
            rm(["a", "b"], images(1))
        with pytest.raises(TypeError, match=f"reward model '{rm.name}': image 0 is a Tensor, not a PIL image"):
            rm(["a"], [torch.zeros(3, 8, 8)])
        with pytest.raises(ValueError, match="batch_size must be at least 1"):
            type(rm)(rm.model, rm.tokenizer, batch_size=0)
