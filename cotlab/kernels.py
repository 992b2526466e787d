"""Per-token log-probabilities (and entropies) of an output head, without materialising the logits.

A policy's last hidden states ``h`` (N, T, D) go through an output head ``W`` (V, D) with optional bias ``b`` (V,);
the loss needs only, per token t, the log-probability of its target token y_t under the temperature-scaled softmax

    z_t = (h_t W^T + b) / temperature                        (V logits of token t)
    lse_t = log sum_v exp(z_tv)                              (log-sum-exp)
    log p_t(y_t) = z_t[y_t] - lse_t
    H_t = -sum_v p_tv log p_tv = lse_t - sum_v p_tv z_tv     (entropy, optional)

Computing ``log_softmax(h @ W.T + b)`` first holds N*T*V floats, several times over once autograd saves them (at
Janus-Pro's 16,384 codes and 576 image tokens: 38 MB of fp32 logits per image, per copy). `logprobs_from_hidden` holds
only one tile of ``token_chunk`` tokens x ``vocab_chunk`` codes at a time:

* forward: for each tile, fold its logits into per-token running statistics, the online log-sum-exp
  (m = running max, s = sum_v exp(z_v - m), both rescaled by exp(m_old - m_new) when the max grows) and, for the
  entropy, a = sum_v exp(z_v - m) (z_v - m), so that lse = m + log s and H = log s - a / s;
* backward (a `torch.autograd.Function`): recompute each tile's logits and turn it into the gradient of the loss with
  respect to them, d log p(y) / dz_v = onehot(y)_v - p_v and dH / dz_v = -p_v (log p_v + H), times the incoming
  per-token gradients and 1/temperature; then grad h += dz @ W, grad W += dz^T @ h, grad b += sum over tokens of dz.

Peak memory is O(token_chunk x vocab_chunk) on top of the inputs and their gradients, not O(N T V). The price is one
more matmul (the backward's recomputation): four instead of three.

A frozen head (W and b need no gradient: the trainers' default, where only the language model trains) needs no
recomputation. The log-prob's gradient with respect to h_t is a vector that does not depend on the loss,

    d log p_t(y_t) / d h_t = (W[y_t] - sum_v p_tv W_v) / temperature,

and sum_v p_tv W_v = u_t / s_t accumulates in the forward like the log-sum-exp (u = sum_v exp(z_v - m) W_v, rescaled
by exp(m_old - m_new) when the max grows: one more matmul per tile, e @ W). The forward keeps these (N*T, D) vectors
and the backward only scales them by the incoming gradients: two matmuls in all, as many as plain log_softmax +
gather with a frozen head. An entropy that receives a gradient still takes the recomputing backward.

Two implementations of the per-tile work (the matmuls are torch's in both): torch operations, which run everywhere,
and Triton kernels (one pass over the tile instead of several), used on CUDA when the `triton` package is installed.
`backend="auto"` picks Triton there and torch otherwise. With ``TRITON_INTERPRET=1`` set before this module is
imported, ``backend="triton"`` runs the kernels in Triton's interpreter, on CPU tensors too (slowly: for testing).

Statistics, log-probs, entropies and gradient accumulators are fp32 whatever the inputs' dtype; bf16/fp16 inputs are
upcast one chunk at a time and the gradients are cast back to the inputs' dtypes.
"""
from __future__ import annotations

import os

import torch
from torch.autograd.function import once_differentiable

try:
    import triton
    import triton.language as tl
except ImportError:
    triton = None

BACKENDS = ("auto", "torch", "triton")
# Tokens and vocabulary entries per tile: 256 x 2048 fp32 is 2 MiB; Janus-Pro's 16,384 codes take 8 tiles per 256
# tokens. Measured with `cotlab bench logprobs` on a CPU (hidden 64 and 2048): tiles of 1024 x 4096 were no faster and
# held 3-4x the memory. GPUs may want more tokens per tile to amortise kernel launches.
TOKEN_CHUNK = 256
VOCAB_CHUNK = 2048
# Triton's `@jit` reads TRITON_INTERPRET when a kernel is defined, i.e. when this module is imported.
TRITON_INTERPRETED = triton is not None and os.environ.get("TRITON_INTERPRET", "0") == "1"


def logprobs_from_hidden(hidden: torch.Tensor, weight: torch.Tensor, tokens: torch.Tensor,
                         bias: torch.Tensor | None = None, *, temperature: float = 1.0, entropy: bool = False,
                         token_chunk: int = TOKEN_CHUNK, vocab_chunk: int = VOCAB_CHUNK,
                         backend: str = "auto") -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``log_softmax((hidden @ weight.T + bias) / temperature, -1)`` at ``tokens``, tile by tile (see the module).

    ``hidden`` (..., D), ``weight`` (V, D), ``bias`` (V,) or None, ``tokens`` (...) integers in [0, V): the same
    leading shape as ``hidden``, e.g. (N, T). Returns the fp32 log-probs (...), and with ``entropy=True`` the pair
    (log-probs, entropies), the entropy H = lse - sum_v p_v z_v of each token's whole distribution. Both are
    differentiable with respect to ``hidden``, ``weight`` and ``bias``; the backward recomputes the logits tile by
    tile, unless the head is frozen (only ``hidden`` needs a gradient), when the forward prepares the log-probs'
    gradients with respect to ``hidden`` instead. ``token_chunk`` x ``vocab_chunk`` is the tile; ``backend`` is "auto" (Triton on CUDA when installed, else
    torch), "torch" or "triton"."""
    backend = _check_inputs(hidden, weight, tokens, bias, temperature, token_chunk, vocab_chunk, backend)
    flat_tokens = tokens.reshape(-1).contiguous()
    # grad mode is off inside an autograd.Function's forward, so whether h's gradient will be wanted is decided here
    frozen_head = (torch.is_grad_enabled() and hidden.requires_grad and not weight.requires_grad
                   and (bias is None or not bias.requires_grad))
    logprobs, entropies = _ChunkedLogProbs.apply(hidden.reshape(-1, hidden.shape[-1]), weight, bias, flat_tokens,
                                                 float(temperature), entropy, token_chunk, vocab_chunk, backend,
                                                 frozen_head)
    logprobs = logprobs.reshape(tokens.shape)
    return (logprobs, entropies.reshape(tokens.shape)) if entropy else logprobs


def triton_usable(device: torch.device) -> bool:
    """Whether the Triton kernels can run on tensors of ``device``: the package is installed and the device is CUDA,
    or Triton's interpreter was switched on (TRITON_INTERPRET=1 at import)."""
    return triton is not None and (device.type == "cuda" or TRITON_INTERPRETED)


def _check_inputs(hidden, weight, tokens, bias, temperature, token_chunk, vocab_chunk, backend) -> str:
    """Raise ValueError naming the first problem; return the resolved backend ("torch" or "triton")."""
    if not hidden.is_floating_point() or hidden.ndim < 1:
        raise ValueError(f"hidden must be a floating-point tensor (..., D), got {hidden.dtype} of shape "
                         f"{tuple(hidden.shape)}")
    if weight.ndim != 2 or not weight.is_floating_point():
        raise ValueError(f"weight must be a floating-point (V, D) matrix, got {weight.dtype} of shape "
                         f"{tuple(weight.shape)}")
    vocab, dim = weight.shape
    if hidden.shape[-1] != dim:
        raise ValueError(f"hidden size mismatch: hidden's last dimension is {hidden.shape[-1]}, weight is "
                         f"{tuple(weight.shape)} (V, D)")
    if bias is not None and tuple(bias.shape) != (vocab,):
        raise ValueError(f"bias must have shape ({vocab},) to match weight's vocabulary, got {tuple(bias.shape)}")
    if tokens.shape != hidden.shape[:-1]:
        raise ValueError(f"tokens shape {tuple(tokens.shape)} must equal hidden's leading shape "
                         f"{tuple(hidden.shape[:-1])}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must be an integer tensor, got {tokens.dtype}")
    if tokens.numel():
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab:
            raise ValueError(f"tokens out of range: they must lie in [0, {vocab}) (the vocabulary size), "
                             f"found min {low} and max {high}")
    if not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    for name, value in (("token_chunk", token_chunk), ("vocab_chunk", vocab_chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "triton" if triton is not None and hidden.device.type == "cuda" else "torch"
    if backend == "triton" and not triton_usable(hidden.device):
        raise ValueError("backend='triton' needs the triton package (pip install triton)" if triton is None else
                         f"backend='triton' needs CUDA tensors, got {hidden.device} (or TRITON_INTERPRET=1 set "
                         "before importing cotlab.kernels, to run Triton's interpreter on CPU)")
    return backend


def _logits_tile(hidden_rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, start: int,
                 end: int) -> torch.Tensor:
    """fp32 logits (rows, end - start) of vocabulary entries [start, end), before the temperature."""
    w = weight[start:end].float()
    if bias is None:
        return hidden_rows.float() @ w.T
    return torch.addmm(bias[start:end].float(), hidden_rows.float(), w.T)


class _ChunkedLogProbs(torch.autograd.Function):
    """Log-probs and entropies of flat (M, D) hidden states, tile by tile forward and backward (see the module)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, tokens, temperature, with_entropy, token_chunk, vocab_chunk, backend,
                frozen_head):
        ctx.set_materialize_grads(False)  # an unused entropy output must not cost a backward pass over the tiles
        ctx.device_type = hidden.device.type
        # fp32 tiles and statistics: autocast (bf16 mixed precision) would run the matmuls in low precision
        with torch.autocast(ctx.device_type, enabled=False):
            fold = _fold_triton if backend == "triton" else _fold_torch
            rows, vocab = hidden.shape[0], weight.shape[0]
            stats = {"device": hidden.device, "dtype": torch.float32}
            running_max = torch.full((rows,), float("-inf"), **stats)
            sum_exp = torch.zeros(rows, **stats)  # sum_v exp(z_v - running_max)
            sum_exp_shifted = torch.zeros(rows, **stats)  # sum_v exp(z_v - running_max) (z_v - running_max)
            target_logit = torch.zeros(rows, **stats)
            # frozen head: sum_v exp(z_v - running_max) W_v, turned into d log p(y) / dh once a token chunk is done
            logprob_grad = torch.zeros(rows, hidden.shape[1], **stats) if frozen_head else None
            for a in range(0, rows, token_chunk):
                b = min(a + token_chunk, rows)
                for start in range(0, vocab, vocab_chunk):
                    end = min(start + vocab_chunk, vocab)
                    tile = _logits_tile(hidden[a:b], weight, bias, start, end)
                    previous_max = running_max[a:b].clone() if frozen_head else None
                    exp_tile = fold(tile, tokens[a:b], start, 1.0 / temperature, running_max[a:b], sum_exp[a:b],
                                    sum_exp_shifted[a:b], target_logit[a:b], with_entropy, keep_exp=frozen_head)
                    if frozen_head:  # exp(-inf) = 0 clears the zeros on the first tile
                        rescale = torch.exp(previous_max - running_max[a:b]).unsqueeze(1)
                        logprob_grad[a:b].mul_(rescale).addmm_(exp_tile, weight[start:end].float())
                if frozen_head:  # (W[y] - sum_v p_v W_v) / temperature
                    logprob_grad[a:b].div_(-sum_exp[a:b].unsqueeze(1)).add_(weight[tokens[a:b]].float())
                    logprob_grad[a:b].mul_(1.0 / temperature)
            log_sum_exp = running_max + sum_exp.log()
            logprobs = target_logit - log_sum_exp
            entropies = sum_exp.log() - sum_exp_shifted / sum_exp if with_entropy else None
            ctx.save_for_backward(hidden, weight, bias, tokens, log_sum_exp, entropies, logprob_grad)
            ctx.settings = (temperature, token_chunk, vocab_chunk, backend)
            return logprobs, entropies

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logprobs, grad_entropies):
        with torch.autocast(ctx.device_type, enabled=False):
            hidden, weight, bias, tokens, log_sum_exp, entropies, logprob_grad = ctx.saved_tensors
            temperature, token_chunk, vocab_chunk, backend = ctx.settings
            needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
            grad_hidden = None
            if logprob_grad is not None and grad_logprobs is not None:  # frozen head: prepared in the forward
                grad_hidden = logprob_grad * grad_logprobs.unsqueeze(1)
                grad_logprobs = None
            if grad_logprobs is None and grad_entropies is None:
                return (None if grad_hidden is None else grad_hidden.to(hidden.dtype),) + (None,) * 9
            tile_grad = _tile_grad_triton if backend == "triton" else _tile_grad_torch
            if needs_hidden and grad_hidden is None:
                grad_hidden = torch.zeros(hidden.shape, device=hidden.device)
            grad_weight = torch.zeros(weight.shape, device=weight.device) if needs_weight else None
            grad_bias = torch.zeros(bias.shape, device=bias.device) if needs_bias else None
            rows, vocab = hidden.shape[0], weight.shape[0]
            for a in range(0, rows, token_chunk):
                b = min(a + token_chunk, rows)
                hidden_rows = hidden[a:b].float()
                for start in range(0, vocab, vocab_chunk):
                    end = min(start + vocab_chunk, vocab)
                    tile = _logits_tile(hidden_rows, weight, bias, start, end)
                    dz = tile_grad(tile, tokens[a:b], start, 1.0 / temperature, log_sum_exp[a:b],
                                   None if entropies is None else entropies[a:b],
                                   None if grad_logprobs is None else grad_logprobs[a:b],
                                   None if grad_entropies is None else grad_entropies[a:b])
                    if needs_hidden:
                        grad_hidden[a:b].addmm_(dz, weight[start:end].float())
                    if needs_weight:
                        grad_weight[start:end].addmm_(dz.T, hidden_rows)
                    if needs_bias:
                        grad_bias[start:end] += dz.sum(0)
            return (None if grad_hidden is None else grad_hidden.to(hidden.dtype),
                    None if grad_weight is None else grad_weight.to(weight.dtype),
                    None if grad_bias is None else grad_bias.to(bias.dtype), None, None, None, None, None, None, None)


def _fold_torch(tile, targets, vocab_start, inv_temperature, running_max, sum_exp, sum_exp_shifted, target_logit,
                with_entropy, keep_exp=False) -> torch.Tensor | None:
    """Fold one fp32 tile of logits (rows, n) for vocabulary entries [vocab_start, vocab_start + n) into the running
    statistics (updated in place). Overwrites ``tile``. With ``keep_exp``, returns exp(z - new running max)."""
    n = tile.shape[1]
    z = tile.mul_(inv_temperature) if inv_temperature != 1 else tile
    local = targets - vocab_start
    in_tile = (local >= 0) & (local < n)
    picked = z.gather(1, local.clamp(0, n - 1).unsqueeze(1)).squeeze(1)
    target_logit.copy_(torch.where(in_tile, picked, target_logit))
    new_max = torch.maximum(running_max, z.amax(1))
    rescale = torch.exp(running_max - new_max)
    shifted = z.sub_(new_max.unsqueeze(1))
    e = torch.exp(shifted)
    if with_entropy:
        # sum exp(z - m_new)(z - m_new) over the old entries = rescale (a_old + (m_old - m_new) s_old); no old
        # entries (s_old = 0, m_old = -inf) contribute 0
        moved = torch.where(sum_exp > 0, running_max - new_max, 0.0)
        sum_exp_shifted.copy_(rescale * (sum_exp_shifted + moved * sum_exp) + torch.einsum("ij,ij->i", e, shifted))
    sum_exp.mul_(rescale).add_(e.sum(1))
    running_max.copy_(new_max)
    return e if keep_exp else None


def _tile_grad_torch(tile, targets, vocab_start, inv_temperature, log_sum_exp, entropies, grad_logprobs,
                     grad_entropies) -> torch.Tensor:
    """The gradient of the loss with respect to one fp32 tile of logits (before the temperature):
    (g_logp (onehot - p) - g_H p (log p + H)) / temperature. Overwrites ``tile``."""
    n = tile.shape[1]
    z = tile.mul_(inv_temperature) if inv_temperature != 1 else tile
    log_p = z.sub_(log_sum_exp.unsqueeze(1))
    p = torch.exp(log_p)
    # -p (g_logp + g_H (log p + H)), then + g_logp at the target
    if grad_entropies is not None:
        bracket = log_p.add_(entropies.unsqueeze(1)).mul_(grad_entropies.unsqueeze(1))
        if grad_logprobs is not None:
            bracket.add_(grad_logprobs.unsqueeze(1))
        dz = p.mul_(bracket).neg_()
    else:
        dz = p.mul_(-grad_logprobs.unsqueeze(1))
    if grad_logprobs is not None:
        local = targets - vocab_start
        in_tile = (local >= 0) & (local < n)
        dz.scatter_add_(1, local.clamp(0, n - 1).unsqueeze(1),
                        torch.where(in_tile, grad_logprobs, 0.0).unsqueeze(1))
    return dz.mul_(inv_temperature) if inv_temperature != 1 else dz


def _block(n: int) -> int:
    """Triton block width: a power of two covering ``n`` columns, at most 1024."""
    return min(1024, triton.next_power_of_2(n))


def _fold_triton(tile, targets, vocab_start, inv_temperature, running_max, sum_exp, sum_exp_shifted, target_logit,
                 with_entropy, keep_exp=False) -> torch.Tensor | None:
    """`_fold_torch` as one Triton program per token, streaming its row of the tile once (the kernel leaves
    ``tile`` as it was; ``keep_exp`` turns it into exp(z - new running max) afterwards)."""
    rows, n = tile.shape
    _fold_kernel[(rows,)](tile, tile.stride(0), targets, running_max, sum_exp, sum_exp_shifted, target_logit,
                          vocab_start, n, inv_temperature, WITH_ENTROPY=with_entropy, BLOCK=_block(n))
    return tile.mul_(inv_temperature).sub_(running_max.unsqueeze(1)).exp_() if keep_exp else None


def _tile_grad_triton(tile, targets, vocab_start, inv_temperature, log_sum_exp, entropies, grad_logprobs,
                      grad_entropies) -> torch.Tensor:
    """`_tile_grad_torch` as Triton programs over (token, block of columns), written into ``tile``."""
    rows, n = tile.shape
    block = _block(n)
    unused = log_sum_exp  # any fp32 pointer for the inputs a constexpr flag switches off
    _tile_grad_kernel[(rows, triton.cdiv(n, block))](
        tile, tile.stride(0), targets, log_sum_exp, unused if entropies is None else entropies,
        unused if grad_logprobs is None else grad_logprobs.contiguous(),
        unused if grad_entropies is None else grad_entropies.contiguous(), vocab_start, n, inv_temperature,
        HAS_LOGPROB_GRAD=grad_logprobs is not None, HAS_ENTROPY_GRAD=grad_entropies is not None, BLOCK=block)
    return tile


if triton is not None:
    @triton.jit
    def _fold_kernel(tile_ptr, row_stride, targets_ptr, max_ptr, sum_exp_ptr, sum_exp_shifted_ptr, target_logit_ptr,
                     vocab_start, n_cols, inv_temperature, WITH_ENTROPY: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        row_ptr = tile_ptr + row * row_stride
        m = tl.load(max_ptr + row)
        s = tl.load(sum_exp_ptr + row)
        a = tl.load(sum_exp_shifted_ptr + row)
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < n_cols
            z = tl.load(row_ptr + cols, mask=mask, other=float("-inf")) * inv_temperature
            new_m = tl.maximum(m, tl.max(z, axis=0))
            rescale = tl.exp(m - new_m)
            shifted = tl.where(mask, z - new_m, float("-inf"))
            e = tl.exp(shifted)  # 0 where masked
            if WITH_ENTROPY:
                moved = tl.where(s > 0, m - new_m, 0.0)
                a = rescale * (a + moved * s) + tl.sum(e * tl.where(mask, shifted, 0.0), axis=0)
            s = s * rescale + tl.sum(e, axis=0)
            m = new_m
        tl.store(max_ptr + row, m)
        tl.store(sum_exp_ptr + row, s)
        if WITH_ENTROPY:
            tl.store(sum_exp_shifted_ptr + row, a)
        local = tl.load(targets_ptr + row) - vocab_start
        if (local >= 0) & (local < n_cols):
            tl.store(target_logit_ptr + row, tl.load(row_ptr + local) * inv_temperature)

    @triton.jit
    def _tile_grad_kernel(tile_ptr, row_stride, targets_ptr, lse_ptr, entropy_ptr, grad_logprobs_ptr,
                          grad_entropy_ptr, vocab_start, n_cols, inv_temperature, HAS_LOGPROB_GRAD: tl.constexpr,
                          HAS_ENTROPY_GRAD: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < n_cols
        ptrs = tile_ptr + row * row_stride + cols
        log_p = tl.load(ptrs, mask=mask, other=0.0) * inv_temperature - tl.load(lse_ptr + row)
        p = tl.exp(log_p)
        dz = tl.zeros((BLOCK,), dtype=tl.float32)
        if HAS_LOGPROB_GRAD:  # d log p(y) / dz = onehot(y) - p
            is_target = (cols + vocab_start) == tl.load(targets_ptr + row)
            dz += tl.load(grad_logprobs_ptr + row) * (is_target.to(tl.float32) - p)
        if HAS_ENTROPY_GRAD:  # dH / dz = -p (log p + H)
            dz -= tl.load(grad_entropy_ptr + row) * p * (log_p + tl.load(entropy_ptr + row))
        tl.store(ptrs, dz * inv_temperature, mask=mask)
