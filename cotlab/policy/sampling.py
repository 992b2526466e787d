"""The CFG sampler: our own decode loop over a transformers Janus (Llama) language model.

Why not `model.generate`: RL needs the per-token log-probs of what was sampled, and the loop is most of an RL step's
time. Per image token the work is the decoder layers for one position; what `generate` adds around them was measured
(`cotlab bench sampler`, profiled) and removed here:

* attention for one query is written out (q K^T + bias, softmax, times V) instead of the SDPA kernel, whose CPU
  flash path costs more for a single query than the layers' matrix products;
* keys and values go into preallocated, zero-filled buffers (no per-step concatenation), and each image step attends
  over the whole buffer with the positions not yet written masked by the bias (one in-place write per step): a
  single-query matmul over a buffer's contiguous (rows, heads, capacity, head_dim) blocks ran about 2x faster than
  over a slice of them, although it reads the unwritten positions too (masked scores are exactly 0 after softmax);
* the prompt's prefill goes through the same written-out layers, so the loop calls only the layers' submodules,
  which is what lets it run on weights gathered in place under ZeRO-3 or FSDP;
* sampling draws one uniform per row and token and inverts the CDF (one cumsum) instead of `torch.multinomial`,
  whose exponential race draws a random number per code;
* the prompt's prefill runs once per distinct row: a prompt's G samples, and the unconditional rows of prompts of
  one length, have equal ids and masks, hence equal keys and values, which are copied (12-15% of a call at
  ShapeWorld's default sizes; tokens and log-probs bit-identical on CPU).

Greedy decoding equals `generate(generation_mode="image")` token for token (tested); sampling draws from the same
distribution with a different use of the random stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb


def guide(cond: torch.Tensor, uncond: torch.Tensor, weight: float) -> torch.Tensor:
    """Classifier-free guidance on logits: l_uncond + w (l_cond - l_uncond)."""
    return uncond + weight * (cond - uncond)


@dataclass
class Rollout:
    """Sampled images: `image_tokens` and `logprobs` are (N, T), rows grouped by prompt (prompt-major)."""

    prompts: list[str]  # one per row
    image_tokens: torch.Tensor
    logprobs: torch.Tensor
    images: list[Image.Image] = field(repr=False)
    guidance_scale: float = 1.0
    temperature: float = 1.0
    logprob_mode: str = "cond"


class KVBuffer:
    """Every layer's keys and values in buffers of fixed capacity (rows, kv_heads, capacity, head_dim), written in
    place; `length` counts the cached positions. Zero-filled, so that unwritten positions attended under a masking
    bias contribute exact zeros (uninitialised memory may hold NaN, and NaN * 0 is NaN)."""

    def __init__(self, lm, rows: int, capacity: int, dtype: torch.dtype, device: torch.device):
        config = lm.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (rows, config.num_key_value_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.length = 0


def decoder_layers(lm, embeds: torch.Tensor, cache: KVBuffer, positions: torch.Tensor,
                   bias: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """S new positions through a Llama's decoder layers, appending their keys and values to `cache`.

    embeds (rows, S, D), positions (rows, S), bias (rows, 1, S, W) additive (0 or the dtype's minimum) over the first
    W cached positions, W >= length + S (positions past length + S masked); `rotary`, the rotary embedding's (cos, sin)
    of `positions` when already computed.
    Returns the pre-norm hidden states (rows, S, D). Per layer, as `LlamaDecoderLayer`:
    h += o_proj(softmax(q K^T * scaling + bias) V) with q, k rotated; h += mlp(norm(h)). Grouped-query attention
    reads query heads g*j .. g*j+g-1 against key/value head j, as transformers' `repeat_kv` pairs them.

    Only the layers' submodules are called (never a decoder layer's or the model's forward), so the loop runs on
    weights gathered in place under ZeRO-3 or FSDP (`cotlab.training.distributed.full_weights`)."""
    hidden, (rows, s), start = embeds, embeds.shape[:2], cache.length
    end, width = start + s, bias.shape[-1]
    cos, sin = rotary if rotary is not None else lm.rotary_emb(hidden, position_ids=positions)
    for i, layer in enumerate(lm.layers[:lm.config.num_hidden_layers]):
        attn, x = layer.self_attn, layer.input_layernorm(hidden)
        q, k, v = (proj(x).view(rows, s, -1, attn.head_dim).transpose(1, 2)
                   for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        cache.keys[i][:, :, start:end] = k
        cache.values[i][:, :, start:end] = v
        keys, values = cache.keys[i][:, :, :width], cache.values[i][:, :, :width]
        kv_heads, head_dim = keys.shape[1], attn.head_dim
        group = q.shape[1] // kv_heads
        q = q.reshape(rows, kv_heads, group * s, head_dim)  # query head g*j+m, position p -> row m*S+p of group j
        # one bias row per query row; a single query per row broadcasts the bias as it is
        scores = torch.matmul(q, keys.transpose(-1, -2)) * attn.scaling + (
            bias if group == 1 or s == 1 else bias.repeat(1, 1, group, 1))
        out = torch.matmul(scores.float().softmax(-1).to(q.dtype), values)
        out = out.view(rows, kv_heads * group, s, head_dim).transpose(1, 2).reshape(rows, s, -1)
        hidden = hidden + attn.o_proj(out)
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    cache.length = end
    return hidden


def prefill(lm, embeds: torch.Tensor, cache: KVBuffer, positions: torch.Tensor, bias: torch.Tensor,
            rows: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The prompts through the decoder layers into an empty `cache`; the normed hidden state of each row's last
    position (rows, D). Rows equal in `rows` (ids and mask side by side) are computed once and their keys and values
    copied to the others."""
    distinct, inverse = torch.unique(rows, dim=0, return_inverse=True)
    if len(distinct) == len(rows):
        return lm.norm(decoder_layers(lm, embeds, cache, positions, bias, rotary))[:, -1]
    # one representative per distinct row (equal rows, so whichever index the scatter keeps)
    first = inverse.new_zeros(len(distinct)).scatter_(0, inverse, torch.arange(len(rows), device=rows.device))
    once = KVBuffer(lm, len(distinct), embeds.shape[1], embeds.dtype, embeds.device)
    hidden = lm.norm(decoder_layers(lm, embeds[first], once, positions[first], bias[first],
                                    (rotary[0][first], rotary[1][first])))[:, -1]
    for full, part in zip(cache.keys + cache.values, once.keys + once.values):
        full[:, :, :once.length] = part[inverse]
    cache.length = once.length
    return hidden[inverse]


def sample_tokens(policy, ids: torch.Tensor, mask: torch.Tensor, uniforms: torch.Tensor, guidance_scale: float,
                  temperature: float, top_k: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Image tokens (N, T) and their log-probs under `mode` for N prompt rows (left-padded ids ending in BOI).

    Token t of row i is the first code whose cumulative probability exceeds uniforms[i, t] (inverse CDF) under
    softmax(l / temperature), l the guided logits (top-k filtered); temperature 0 takes the argmax."""
    model, n, num_tokens = policy.model, ids.shape[0], policy.num_image_tokens
    if guidance_scale != 1:
        ids, mask = policy._with_unconditional(ids, mask)
    lm, head = model.model.language_model, model.model.generation_head
    embeds = model.get_input_embeddings()(ids)
    rows, prompt_len = ids.shape
    cache = KVBuffer(lm, rows, prompt_len + num_tokens, embeds.dtype, ids.device)
    # The image steps' attention bias over the whole buffer: prompt padding masked, image positions masked until
    # written (unmasked one per step, in place); the prompt's own bias is causal among itself.
    minimum = torch.finfo(embeds.dtype).min
    bias = torch.full((rows, 1, 1, prompt_len + num_tokens), minimum, dtype=embeds.dtype, device=ids.device)
    bias[:, 0, 0, :prompt_len].masked_fill_(mask == 1, 0)
    future = torch.ones((prompt_len, prompt_len), dtype=torch.bool, device=ids.device).triu(1)
    prompt_bias = torch.zeros((rows, 1, prompt_len, prompt_len), dtype=embeds.dtype, device=ids.device)
    prompt_bias.masked_fill_(future | (mask == 0)[:, None, None, :], minimum)  # filled, not added: no -inf
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    # the rotary embedding of every position of the run, once (it is elementwise in the position: the same values)
    steps = positions[:, -1:] + torch.arange(1, num_tokens, device=ids.device)
    cos, sin = lm.rotary_emb(embeds, position_ids=torch.cat([positions, steps], 1))
    hidden = prefill(lm, embeds, cache, positions, prompt_bias, torch.cat([ids, mask], 1),
                     (cos[:, :prompt_len], sin[:, :prompt_len]))
    tokens = torch.empty((n, num_tokens), dtype=torch.long, device=ids.device)
    logprobs = torch.empty((n, num_tokens), dtype=torch.float32, device=ids.device)
    scale = temperature if temperature > 0 else 1.0
    for t in range(num_tokens):
        logits = head(hidden)
        cond = logits[:n]
        guided = cond if guidance_scale == 1 else guide(cond, logits[n:], guidance_scale)
        if temperature == 0:
            token = guided.argmax(-1)
        else:
            filtered = guided.float() / temperature
            if top_k:
                kth = filtered.topk(min(top_k, filtered.shape[-1]), dim=-1).values[:, -1:]
                filtered = filtered.masked_fill(filtered < kth, float("-inf"))
            cdf = filtered.softmax(-1).cumsum(-1)
            # `<=` so that a code of probability 0 (flat CDF) is never the first to exceed the threshold
            token = (cdf <= uniforms[:, t:t + 1] * cdf[:, -1:]).sum(-1).clamp(max=cdf.shape[-1] - 1)
        scored = (cond if mode == "cond" else guided).float() / scale
        logprobs[:, t] = scored.log_softmax(-1).gather(-1, token[:, None]).squeeze(-1)
        tokens[:, t] = token
        if t == num_tokens - 1:
            break
        step = model.prepare_embeddings_for_image_generation(token[:, None])  # the unconditional rows': the same
        step = step if guidance_scale == 1 else torch.cat([step, step])
        at = slice(cache.length, cache.length + 1)
        bias[..., at] = 0
        hidden = lm.norm(decoder_layers(lm, step, cache, steps[:, t:t + 1], bias, (cos[:, at], sin[:, at])))[:, -1]
    return tokens, logprobs
