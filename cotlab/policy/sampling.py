"""The CFG sampler: our own decode loop over a transformers Janus (Llama) language model.

Why not `model.generate`: RL needs the per-token log-probs of what was sampled, and the loop is most of an RL step's
time. Per image token the work is the decoder layers for one position; what `generate` adds around them was measured
(`cotlab bench sampler`, profiled) and removed here:

* attention for one query is written out (q K^T + bias, softmax, times V) instead of the SDPA kernel, whose CPU
  flash path costs more for a single query than the layers' matrix products;
* keys and values go into preallocated buffers (no per-step concatenation) and the attention bias of the whole run is
  built once and sliced, so no causal mask is rebuilt per step;
* sampling draws one uniform per row and token and inverts the CDF (one cumsum) instead of `torch.multinomial`,
  whose exponential race draws a random number per code.

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
    """Every layer's keys and values in buffers of fixed capacity (rows, kv_heads, capacity, head_dim), filled from
    the prompt's `DynamicCache`; `length` counts the cached positions."""

    def __init__(self, past, capacity: int):
        self.length = past.get_seq_length()
        self.keys, self.values = [], []
        for layer in past.layers:
            for buffers, tensor in ((self.keys, layer.keys), (self.values, layer.values)):
                buffer = tensor.new_empty((*tensor.shape[:2], capacity, tensor.shape[3]))
                buffer[:, :, :self.length] = tensor
                buffers.append(buffer)


def decode_step(lm, embeds: torch.Tensor, cache: KVBuffer, positions: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One position through a Llama's decoder layers, appending its keys and values to `cache`.

    embeds (rows, 1, D), positions (rows, 1), bias (rows, 1, 1, length + 1) additive (0 or the dtype's minimum).
    Returns the pre-norm hidden states (rows, 1, D). Per layer, as `LlamaDecoderLayer`:
    h += o_proj(softmax(q K^T * scaling + bias) V) with q, k rotated; h += mlp(norm(h)). Grouped-query attention
    reads query heads g*j .. g*j+g-1 against key/value head j, as transformers' `repeat_kv` pairs them."""
    hidden, rows, end = embeds, embeds.shape[0], cache.length + 1
    cos, sin = lm.rotary_emb(hidden, position_ids=positions)
    for i, layer in enumerate(lm.layers[:lm.config.num_hidden_layers]):
        attn, x = layer.self_attn, layer.input_layernorm(hidden)
        q, k, v = (proj(x).view(rows, 1, -1, attn.head_dim).transpose(1, 2)
                   for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        cache.keys[i][:, :, cache.length] = k[:, :, 0]
        cache.values[i][:, :, cache.length] = v[:, :, 0]
        keys, values = cache.keys[i][:, :, :end], cache.values[i][:, :, :end]
        q = q.reshape(rows, keys.shape[1], -1, attn.head_dim)  # (rows, kv_heads, group, head_dim)
        scores = torch.matmul(q, keys.transpose(-1, -2)) * attn.scaling + bias
        out = torch.matmul(scores.float().softmax(-1).to(q.dtype), values)
        hidden = hidden + attn.o_proj(out.reshape(rows, 1, -1))
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    cache.length = end
    return hidden


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
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
    cache = KVBuffer(out.past_key_values, ids.shape[1] + num_tokens)
    hidden = out.last_hidden_state[:, -1]
    next_pos = positions[:, -1:] + 1
    # The attention bias of the whole run (prompt padding masked), sliced per step: one query needs no causal mask.
    bias = torch.zeros((ids.shape[0], 1, 1, ids.shape[1] + num_tokens), dtype=embeds.dtype, device=ids.device)
    bias[:, 0, 0, :ids.shape[1]].masked_fill_(mask == 0, torch.finfo(embeds.dtype).min)
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
        step = token if guidance_scale == 1 else torch.cat([token, token])
        hidden = lm.norm(decode_step(lm, model.prepare_embeddings_for_image_generation(step[:, None]), cache,
                                     next_pos, bias[..., :cache.length + 1]))[:, -1]
        next_pos = next_pos + 1
    return tokens, logprobs
