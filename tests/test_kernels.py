"""`cotlab.kernels.logprobs_from_hidden` against the plain computation it replaces, its Triton kernels (through
Triton's interpreter, on CPU), and the log-prob benchmark end to end on a tiny shape.

The reference is ``log_softmax((h @ W.T + b) / temperature).gather(tokens)`` with the entropy -sum p log p, in fp32;
values and gradients (h, W, b) must agree to 1e-5. Head weights are scaled like an initialised layer (std 1/sqrt(D)),
so the logits have unit scale, as a policy's do.
"""
import json
import math
import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec

import pytest
import torch
from trl.trainer.utils import selective_log_softmax

from cotlab import cli
from cotlab.bench import LOGPROB_METHODS, bench_logprobs, format_logprobs, peak_memory_bytes
from cotlab.kernels import logprobs_from_hidden, triton_usable

TOL = {"rtol": 1e-5, "atol": 1e-5}


def inputs(leading, dim, vocab, bias=True, seed=0, dtype=torch.float32, head="trained"):
    """Random hidden states, head and tokens; ``head="frozen"`` leaves the head without gradients (the trainers'
    default), which takes the kernel's path that prepares the hidden states' gradients in the forward."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*leading, dim, generator=g).to(dtype).requires_grad_()
    weight = (torch.randn(vocab, dim, generator=g) / dim ** 0.5).to(dtype).requires_grad_(head == "trained")
    b = (0.1 * torch.randn(vocab, generator=g)).to(dtype).requires_grad_(head == "trained") if bias else None
    tokens = torch.randint(0, vocab, leading, generator=g)
    return hidden, weight, b, tokens


def trainable(*tensors):
    return [t for t in tensors if t is not None and t.requires_grad]


def reference(hidden, weight, bias, tokens, temperature=1.0):
    logits = hidden @ weight.T + (0 if bias is None else bias)
    logp = torch.log_softmax(logits / temperature, -1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1)


def value_and_grads(fn, params, upstream):
    """The outputs of ``fn()`` and the gradients of sum(output * weight) over (output, weight) pairs."""
    outputs = fn()
    loss = sum((out * w).sum() for out, w in zip(outputs, upstream) if w is not None)
    return [o.detach() for o in outputs], torch.autograd.grad(loss, params)


# (leading shape, D, V, token_chunk, vocab_chunk, temperature, bias)
CASES = {
    "one-tile": ((3, 5), 8, 50, 100, 100, 1.0, True),
    "odd-chunks": ((2, 7), 5, 11, 3, 4, 1.0, True),  # 14 tokens in tiles of 3, 11 codes in tiles of 4
    "vocab-tiled-no-bias": ((2, 9), 6, 37, 4, 10, 1.0, False),
    "cold": ((2, 9), 6, 37, 5, 8, 0.7, True),
    "hot": ((1, 13), 4, 29, 5, 7, 2.5, True),
    "flat-tokens": ((17,), 6, 23, 16, 5, 1.3, True),  # hidden (T, D), tokens (T,)
}


@pytest.mark.parametrize("head", ["trained", "frozen"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_logprobs_and_gradients_match_log_softmax_gather(case, head):
    leading, dim, vocab, token_chunk, vocab_chunk, temperature, bias = case
    hidden, weight, b, tokens = inputs(leading, dim, vocab, bias, head=head)
    params = trainable(hidden, weight, b)
    upstream = [torch.randn(leading, generator=torch.Generator().manual_seed(1))]
    expected, expected_grads = value_and_grads(lambda: reference(hidden, weight, b, tokens, temperature)[:1],
                                               params, upstream)
    got, got_grads = value_and_grads(
        lambda: [logprobs_from_hidden(hidden, weight, tokens, b, temperature=temperature, token_chunk=token_chunk,
                                      vocab_chunk=vocab_chunk)], params, upstream)
    assert got[0].shape == tokens.shape and got[0].dtype == torch.float32
    torch.testing.assert_close(got[0], expected[0], **TOL)
    for name, g, e in zip(("hidden", "weight", "bias"), got_grads, expected_grads):
        torch.testing.assert_close(g, e, **TOL, msg=lambda m, name=name: f"grad {name}: {m}")


@pytest.mark.parametrize("head", ["trained", "frozen"])
@pytest.mark.parametrize("use", ["both", "entropy-only"])
@pytest.mark.parametrize("case", [CASES["odd-chunks"], CASES["cold"], CASES["hot"]], ids=["odd", "cold", "hot"])
def test_entropy_values_and_gradients(case, use, head):
    leading, dim, vocab, token_chunk, vocab_chunk, temperature, bias = case
    hidden, weight, b, tokens = inputs(leading, dim, vocab, bias, seed=2, head=head)
    params = trainable(hidden, weight, b)
    g = torch.Generator().manual_seed(3)
    upstream = [torch.randn(leading, generator=g) if use == "both" else None, torch.randn(leading, generator=g)]
    expected, expected_grads = value_and_grads(lambda: reference(hidden, weight, b, tokens, temperature), params,
                                               upstream)
    got, got_grads = value_and_grads(
        lambda: logprobs_from_hidden(hidden, weight, tokens, b, temperature=temperature, entropy=True,
                                     token_chunk=token_chunk, vocab_chunk=vocab_chunk), params, upstream)
    torch.testing.assert_close(got[0], expected[0], **TOL)
    torch.testing.assert_close(got[1], expected[1], **TOL)
    assert (got[1] > 0).all() and (got[1] <= math.log(vocab) + 1e-5).all()
    for g_, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g_, e, **TOL)


@pytest.mark.parametrize("head", ["trained", "frozen"])
def test_janus_pro_sizes(head):
    """16,384 codes, 576 tokens (one 24 x 24 image), D = 64: values, entropies and all gradients to 1e-5."""
    hidden, weight, b, tokens = inputs((1, 576), 64, 16384, seed=4, head=head)
    params = trainable(hidden, weight, b)
    g = torch.Generator().manual_seed(5)
    upstream = [torch.randn(1, 576, generator=g), torch.randn(1, 576, generator=g)]
    expected, expected_grads = value_and_grads(lambda: reference(hidden, weight, b, tokens), params, upstream)
    got, got_grads = value_and_grads(lambda: logprobs_from_hidden(hidden, weight, tokens, b, entropy=True),
                                     params, upstream)
    for g_, e in zip((*got, *got_grads), (*expected, *expected_grads)):
        torch.testing.assert_close(g_, e, **TOL)


def test_frozen_head_backward_recomputes_no_logits(monkeypatch):
    """With the head frozen, the log-probs' backward only scales vectors the forward prepared: no logit tile is
    computed after the forward unless the entropy receives a gradient. Under no_grad nothing is prepared."""
    from cotlab import kernels

    hidden, weight, b, tokens = inputs((2, 9), 6, 37, seed=8, head="frozen")
    tiles = []
    logits_tile = kernels._logits_tile
    monkeypatch.setattr(kernels, "_logits_tile", lambda *a: tiles.append(1) or logits_tile(*a))
    logprobs, entropy = logprobs_from_hidden(hidden, weight, tokens, b, entropy=True, token_chunk=4, vocab_chunk=10)
    forward_tiles = len(tiles)
    assert forward_tiles == 5 * 4  # 18 tokens in chunks of 4, 37 codes in chunks of 10
    logprobs.sum().backward(retain_graph=True)
    assert len(tiles) == forward_tiles
    entropy.sum().backward()
    assert len(tiles) == 2 * forward_tiles
    with torch.no_grad():
        out = logprobs_from_hidden(hidden, weight, tokens, b, token_chunk=4, vocab_chunk=10)
    assert out.grad_fn is None


@pytest.mark.parametrize("temperature", [1.0, 0.8])
def test_values_match_trl_selective_log_softmax(temperature):
    hidden, weight, b, tokens = inputs((3, 40), 16, 300, seed=6)
    with torch.no_grad():
        trl = selective_log_softmax(hidden @ weight.T + b, tokens, temperature=temperature)
        ours = logprobs_from_hidden(hidden, weight, tokens, b, temperature=temperature, token_chunk=32,
                                    vocab_chunk=128)
    torch.testing.assert_close(ours, trl, **TOL)


def test_only_requested_gradients_and_bf16_inputs():
    hidden, weight, b, tokens = inputs((2, 6), 8, 40, seed=7)
    weight.requires_grad_(False)
    logprobs_from_hidden(hidden, weight, tokens, b, vocab_chunk=16).sum().backward()
    assert weight.grad is None and hidden.grad is not None and b.grad is not None

    low = [t.detach().to(torch.bfloat16).requires_grad_() for t in (hidden, weight, b)]
    out = logprobs_from_hidden(low[0], low[1], tokens, low[2], vocab_chunk=16)
    out.sum().backward()
    # fp32 statistics from bf16 inputs: exactly the fp32 computation on the bf16 values
    exact = reference(*(t.detach().float() for t in low), tokens)[0]
    assert out.dtype == torch.float32 and all(t.grad.dtype == torch.bfloat16 for t in low)
    torch.testing.assert_close(out, exact, **TOL)


@pytest.mark.parametrize("head", ["trained", "frozen"])
def test_fp32_under_bf16_autocast(head):
    """Mixed-precision training scores under autocast (accelerate's bf16): the tiles stay fp32, so values and
    gradients equal the fp32 computation, not a bf16 matmul's."""
    hidden, weight, b, tokens = inputs((2, 9), 16, 300, seed=9, head=head)
    params = trainable(hidden, weight, b)
    upstream = [torch.randn(2, 9, generator=torch.Generator().manual_seed(10))]
    expected, expected_grads = value_and_grads(lambda: reference(hidden, weight, b, tokens)[:1], params, upstream)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, got_grads = value_and_grads(
            lambda: [logprobs_from_hidden(hidden, weight, tokens, b, token_chunk=4, vocab_chunk=128)], params,
            upstream)
    for g_, e in zip((*got, *got_grads), (*expected, *expected_grads)):
        torch.testing.assert_close(g_, e, **TOL)


BAD_INPUTS = {
    "hidden size": (lambda h, w, b, t: {"hidden": h[..., :3]}, "hidden size mismatch"),
    "tokens shape": (lambda h, w, b, t: {"tokens": t[:, :2]}, r"tokens shape \(2, 2\) must equal"),
    "bias shape": (lambda h, w, b, t: {"bias": b[:5]}, r"bias must have shape \(11,\)"),
    "weight not 2-D": (lambda h, w, b, t: {"weight": w[None]}, r"weight must be a floating-point \(V, D\)"),
    "float tokens": (lambda h, w, b, t: {"tokens": t.float()}, "tokens must be an integer tensor"),
    "token too large": (lambda h, w, b, t: {"tokens": t.masked_fill(t == t[0, 0], 11)},
                        r"tokens out of range: they must lie in \[0, 11\).*max 11"),
    "negative token": (lambda h, w, b, t: {"tokens": t.masked_fill(t == t[0, 0], -1)},
                       r"tokens out of range.*min -1"),
    "zero temperature": (lambda h, w, b, t: {"temperature": 0.0}, "temperature must be a positive finite"),
    "negative temperature": (lambda h, w, b, t: {"temperature": -1.0}, "temperature must be a positive finite"),
    "zero token_chunk": (lambda h, w, b, t: {"token_chunk": 0}, "token_chunk must be an integer >= 1, got 0"),
    "zero vocab_chunk": (lambda h, w, b, t: {"vocab_chunk": 0}, "vocab_chunk must be an integer >= 1, got 0"),
    "float chunk": (lambda h, w, b, t: {"vocab_chunk": 2.5}, "vocab_chunk must be an integer >= 1"),
    "unknown backend": (lambda h, w, b, t: {"backend": "cuda"}, "unknown backend 'cuda'"),
}


@pytest.mark.parametrize("bad", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs_raise_naming_the_problem(bad):
    hidden, weight, b, tokens = inputs((2, 7), 5, 11)
    change, message = bad
    args = {"hidden": hidden, "weight": weight, "tokens": tokens, "bias": b, **change(hidden, weight, b, tokens)}
    with pytest.raises(ValueError, match=message):
        logprobs_from_hidden(**args)


def test_triton_backend_needs_cuda_or_the_interpreter():
    hidden, weight, b, tokens = inputs((2, 7), 5, 11)
    assert not triton_usable(torch.device("cpu"))  # this process did not set TRITON_INTERPRET
    with pytest.raises(ValueError, match="backend='triton' needs"):
        logprobs_from_hidden(hidden, weight, tokens, b, backend="triton")
    # "auto" on CPU is the torch path: it runs
    assert logprobs_from_hidden(hidden, weight, tokens, b, backend="auto").shape == tokens.shape


TRITON_CHECK = textwrap.dedent("""
    import torch
    from cotlab.kernels import logprobs_from_hidden, triton_usable
    assert triton_usable(torch.device("cpu"))
    worst = 0.0
    for seed, (leading, dim, vocab, token_chunk, vocab_chunk, temperature, bias, head) in enumerate(CASES):
        g = torch.Generator().manual_seed(seed)
        hidden = torch.randn(*leading, dim, generator=g).requires_grad_()
        weight = (torch.randn(vocab, dim, generator=g) / dim ** 0.5).requires_grad_(head == "trained")
        b = (0.1 * torch.randn(vocab, generator=g)).requires_grad_(head == "trained") if bias else None
        tokens = torch.randint(0, vocab, leading, generator=g)
        upstream = [torch.randn(leading, generator=g), torch.randn(leading, generator=g)]
        params = [p for p in (hidden, weight, b) if p is not None and p.requires_grad]
        results = []
        for backend in ("torch", "triton"):
            out = logprobs_from_hidden(hidden, weight, tokens, b, temperature=temperature, entropy=True,
                                       token_chunk=token_chunk, vocab_chunk=vocab_chunk, backend=backend)
            for mode in ("both", "logprobs-only", "entropy-only"):
                weights = [None if mode == "entropy-only" else upstream[0],
                           None if mode == "logprobs-only" else upstream[1]]
                loss = sum((o * w).sum() for o, w in zip(out, weights) if w is not None)
                results += torch.autograd.grad(loss, params, retain_graph=True)
            results += [o.detach() for o in out]
        half = len(results) // 2
        for ours, theirs in zip(results[:half], results[half:]):
            torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
            worst = max(worst, (theirs - ours).abs().max().item())
    print("triton-interpreter-ok", worst)
""")


@pytest.mark.skipif(find_spec("triton") is None, reason="the triton package is not installed (pip install triton)")
def test_triton_kernels_match_torch_in_the_interpreter():
    """The Triton kernels, run by Triton's interpreter on CPU tensors (TRITON_INTERPRET=1 must be set before the
    kernels are defined, hence a fresh process), against the torch path: values, entropies, and gradients with
    log-probs only, entropies only, and both in the loss, with the head trained and frozen."""
    cases = [(*CASES[name], head) for name in ("odd-chunks", "cold", "vocab-tiled-no-bias", "flat-tokens")
             for head in ("trained", "frozen")]
    script = f"CASES = {cases!r}\n" + TRITON_CHECK
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "triton-interpreter-ok" in done.stdout


def test_peak_memory_bytes_sees_torch_cpu_allocations():
    def allocate():
        big = torch.empty(1 << 20)  # 4 MiB
        del big
        small = torch.ones(1 << 18)  # 1 MiB, while another 1 MiB is alive: 2 MiB < 4 MiB
        return small + 1

    assert peak_memory_bytes(allocate, torch.device("cpu")) == 4 << 20


@pytest.mark.parametrize("trained_head", [False, True])
def test_bench_logprobs_tiny_shape(trained_head):
    result = bench_logprobs(sequences=2, hidden_size=8, vocab_size=512, tokens=64, token_chunk=16, vocab_chunk=128,
                            trained_head=trained_head, repeats=2, warmup=0, threads=1)
    for key in ("sequences", "tokens", "hidden_size", "vocab_size", "token_chunk", "vocab_chunk", "logits_bytes",
                "gradient_bytes", "peak_memory_method", "device", "goal_met", *LOGPROB_METHODS):
        assert key in result, key
    assert result["logits_bytes"] == 2 * 64 * 512 * 4 and result["device"] == "cpu"
    assert result["gradient_bytes"] == 4 * (2 * 64 * 8 + trained_head * (512 * 8 + 512))
    for name in LOGPROB_METHODS:
        r = result[name]
        assert len(r["seconds"]) == 2 and all(s > 0 for s in r["seconds"]) and r["median_s"] > 0
        assert r["peak_bytes"] > result["gradient_bytes"]  # every path holds the gradients and more
        assert r["memory_ratio"] > 0 and r["time_ratio"] > 0
        assert r["max_abs_diff_vs_plain"] < 1e-5
    # the plain path holds the 256 KiB logits (and more); the tiled one a 16 x 128 tile at a time
    assert result["plain"]["peak_bytes"] >= result["logits_bytes"]
    assert result["tiled"]["peak_bytes"] < result["plain"]["peak_bytes"] / 4
    assert json.loads(json.dumps(result)) == result
    assert "goal (tiled: memory <= 25% of plain at <= 1.2x its time)" in format_logprobs(result)


def test_cli_accepts_bench_logprobs():
    args = cli.build_parser().parse_args(["bench", "logprobs"])
    assert args.what == "logprobs" and (args.sequences, args.hidden_size, args.temperature) == (1, 64, 1.0)
    assert args.token_chunk is None and args.vocab_chunk is None and args.device is None and not args.trained_head
    args = cli.build_parser().parse_args(["bench", "logprobs", "--sequences", "4", "--hidden-size", "2048",
                                          "--token-chunk", "128", "--vocab-chunk", "1024", "--temperature", "0.9",
                                          "--trained-head", "--repeats", "3", "--threads", "1", "--json", "lp.json"])
    assert (args.sequences, args.hidden_size, args.token_chunk, args.vocab_chunk, args.temperature, args.trained_head,
            args.repeats, args.threads, args.json) == (4, 2048, 128, 1024, 0.9, True, 3, 1, "lp.json")
