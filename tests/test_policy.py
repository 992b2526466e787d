"""JanusPolicy on tiny random ShapeWorld Janus models: parity with transformers, log-prob agreement, persistence,
bad input."""
import copy
import json

import pytest
import torch
from transformers import AutoProcessor, JanusForConditionalGeneration

from cotlab import world as w
from cotlab.policy import JanusPolicy, build_shapeworld_policy
from cotlab.policy.pretrain import PRETRAIN_TIERS, lr_at, pretrain, pretrain_loss

PROMPTS = ["a red circle", "there are two big striped squares", "a photo of a cross left of a diamond"]


@pytest.fixture(scope="module")
def policy():
    pol = build_shapeworld_policy("tiny", seed=0)
    # Random init gives near-uniform logits (std ~0.01); a wider spread (std ~0.2, still below a trained model's)
    # makes greedy and sampled paths depend on every step, so that parity checks have something to check.
    with torch.no_grad():
        for p in pol.model.model.generation_head.parameters():
            p.mul_(5)
    return pol


@pytest.mark.parametrize("guidance_scale", [1.5, 5.0])
def test_greedy_sampling_matches_transformers_generate(policy, guidance_scale):
    ours = policy.sample(PROMPTS, 1, guidance_scale=guidance_scale, temperature=0, decode=False)
    ids, mask = policy.encode_prompts(PROMPTS)  # left-padded: prompts of different lengths in one batch
    theirs = policy.model.generate(input_ids=ids, attention_mask=mask, generation_mode="image", do_sample=False,
                                   guidance_scale=guidance_scale, top_k=0)
    assert torch.equal(ours.image_tokens, theirs)
    assert ours.image_tokens.unique().numel() > 3  # not a degenerate constant sequence


def test_greedy_sampling_matches_generate_with_grouped_query_attention(policy):
    """Janus-Pro's language models have as many key/value heads as query heads; a grouped one checks the sampler's
    pairing of query heads with key/value heads (transformers' repeat_kv order)."""
    config = copy.deepcopy(policy.model.config)
    config.text_config.num_key_value_heads = 2  # 4 query heads: groups of 2
    torch.manual_seed(1)
    model = JanusForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in model.model.generation_head.parameters():
            p.mul_(5)
        for layer in model.model.language_model.layers:  # attention that matters: the pairing shows in the tokens
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj):
                proj.weight.mul_(8)
    grouped = JanusPolicy(model, policy.processor, spec=policy.spec)
    ours = grouped.sample(PROMPTS, 1, guidance_scale=3.0, temperature=0, decode=False)
    ids, mask = grouped.encode_prompts(PROMPTS)
    theirs = model.generate(input_ids=ids, attention_mask=mask, generation_mode="image", do_sample=False,
                            guidance_scale=3.0, top_k=0, generation_config=policy.model.generation_config)
    assert torch.equal(ours.image_tokens, theirs) and ours.image_tokens.unique().numel() > 3
    # the recorded log-probs equal transformers' own teacher-forced forward (SDPA with repeat_kv)
    roll = grouped.sample(PROMPTS, 2, guidance_scale=3.0, generator=torch.Generator().manual_seed(0), decode=False)
    forced = grouped.token_logprobs(roll.prompts, roll.image_tokens, guidance_scale=3.0)
    torch.testing.assert_close(forced, roll.logprobs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["cond", "cfg"])
@pytest.mark.parametrize("guidance_scale", [1.0, 5.0])
def test_recorded_logprobs_equal_teacher_forced_logprobs(policy, mode, guidance_scale):
    gen = torch.Generator().manual_seed(0)
    roll = policy.sample(PROMPTS, 2, guidance_scale=guidance_scale, temperature=1.0, generator=gen,
                         logprob_mode=mode, decode=False)
    assert roll.image_tokens.shape == (6, 64) and roll.prompts[:2] == [PROMPTS[0]] * 2
    forced = policy.token_logprobs(roll.prompts, roll.image_tokens, mode=mode, guidance_scale=guidance_scale)
    torch.testing.assert_close(forced, roll.logprobs, atol=1e-5, rtol=0)
    assert (roll.logprobs < 0).all()


@pytest.mark.parametrize("mode", ["cond", "cfg"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_tiled_logprobs_equal_the_plain_path_with_gradients(policy, mode, temperature):
    tokens = policy.sample(PROMPTS, 2, guidance_scale=3.0, generator=torch.Generator().manual_seed(1),
                           decode=False).image_tokens
    prompts = [p for p in PROMPTS for _ in range(2)]
    results, grads = [], []
    for tiled in (False, True):
        policy.model.zero_grad(set_to_none=True)
        logp, entropy = policy.token_logprobs(prompts, tokens, mode=mode, guidance_scale=3.0, temperature=temperature,
                                              with_entropy=True, tiled=tiled)
        (logp * torch.linspace(-1, 1, logp.numel()).view_as(logp)).sum().backward()
        results.append((logp.detach(), entropy))
        grads.append({n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-5, rtol=0)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:  # fp32 summation order differs: the tolerance scales with the tensor's largest entry
        scale = max(1.0, grads[0][name].abs().max().item())
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5 * scale, rtol=1e-4, msg=name)
    policy.model.zero_grad(set_to_none=True)


def test_modes_differ_under_guidance_and_logprobs_are_differentiable(policy):
    roll = policy.sample(PROMPTS[:1], 1, guidance_scale=5.0, generator=torch.Generator().manual_seed(1), decode=False)
    cond = policy.token_logprobs(roll.prompts, roll.image_tokens, mode="cond", guidance_scale=5.0)
    cfg = policy.token_logprobs(roll.prompts, roll.image_tokens, mode="cfg", guidance_scale=5.0)
    assert not torch.allclose(cond, cfg)
    cond.sum().backward()
    grads = [p.grad for p in policy.model.model.language_model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    policy.model.zero_grad(set_to_none=True)


def test_sampling_is_deterministic_by_generator_and_respects_top_k(policy):
    a = policy.sample(PROMPTS, 2, generator=torch.Generator().manual_seed(3), decode=False).image_tokens
    b = policy.sample(PROMPTS, 2, generator=torch.Generator().manual_seed(3), decode=False).image_tokens
    c = policy.sample(PROMPTS, 2, generator=torch.Generator().manual_seed(4), decode=False).image_tokens
    assert torch.equal(a, b) and not torch.equal(a, c)
    greedy = policy.sample(PROMPTS, 1, guidance_scale=5.0, temperature=0, decode=False).image_tokens
    top1 = policy.sample(PROMPTS, 1, guidance_scale=5.0, temperature=1.0, top_k=1,
                         generator=torch.Generator().manual_seed(5), decode=False).image_tokens
    assert torch.equal(greedy, top1)


def test_images_decode_through_the_designed_codebook(policy):
    roll = policy.sample(PROMPTS[:1], 2, generator=torch.Generator().manual_seed(0))
    assert len(roll.images) == 2 and roll.images[0].size == (64, 64)
    for img, codes in zip(roll.images, roll.image_tokens):
        assert torch.equal(w.PatchTokenizer().encode([img])[0], codes)


def test_checkpoint_round_trip_through_transformers_and_cotlab(policy, tmp_path):
    policy.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert json.loads((tmp_path / "cotlab_policy.json").read_text())["image_tokenizer"] == "shapeworld_patch"
    model = JanusForConditionalGeneration.from_pretrained(tmp_path, local_files_only=True)
    processor = AutoProcessor.from_pretrained(tmp_path, local_files_only=True)
    assert processor.tokenizer("a red circle").input_ids == policy.tokenizer("a red circle").input_ids
    assert model.config.vq_config.num_embeddings == w.CODEBOOK_SIZE
    loaded = JanusPolicy.from_pretrained(tmp_path, logprob_mode="cfg")
    assert isinstance(loaded.image_tokenizer, w.PatchTokenizer) and loaded.spec.logprob_mode == "cfg"
    a = policy.sample(PROMPTS, 1, temperature=0, decode=False).image_tokens
    b = loaded.sample(PROMPTS, 1, temperature=0, decode=False).image_tokens
    assert torch.equal(a, b)


def test_loading_something_else_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Janus checkpoint"):
        JanusPolicy.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="model_type 'llama'"):
        JanusPolicy.from_pretrained(tmp_path)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"prompts": []}, ValueError, "no prompts"),
    ({"prompts": "a red circle"}, TypeError, "list of strings"),
    ({"prompts": ["a crimson circle"]}, ValueError, "does not know: 'crimson'"),
    ({"prompts": [" ".join(["a red circle and"] * 20) + " a square"]}, ValueError, "at most"),
    ({"num_samples": 0}, ValueError, "num_samples must be at least 1"),
    ({"guidance_scale": 0.5}, ValueError, "guidance_scale must be >= 1"),
    ({"temperature": -1.0}, ValueError, "temperature must be >= 0"),
    ({"logprob_mode": "joint"}, ValueError, "unknown logprob_mode"),
])
def test_bad_sampling_input_gets_clear_errors(policy, kwargs, error, message):
    args = {"prompts": ["a red circle"], **kwargs}
    with pytest.raises(error, match=message):
        policy.sample(**args)


def test_token_logprobs_checks_shapes(policy):
    with pytest.raises(ValueError, match=r"\(N, 64\)"):
        policy.token_logprobs(["a red circle"], torch.zeros((1, 10), dtype=torch.long))
    with pytest.raises(ValueError, match="one per row"):
        policy.token_logprobs(["a red circle"], torch.zeros((2, 64), dtype=torch.long))


def test_pretraining_lowers_the_loss_and_resumes_identically(tmp_path):
    cfg = PRETRAIN_TIERS["tiny"]
    full = pretrain(cfg, tmp_path / "full", progress=False)
    losses = [json.loads(line)["ce"] for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0] - 0.5  # nats: from ln(751) = 6.6 at initialisation
    # What trains: the prompt's word vectors (tied to the unused text head in Janus), the language model and the
    # image-token embedding and head; not the vision tower, its aligner or the Janus VQ.
    init = build_shapeworld_policy(cfg.size, seed=cfg.seed).model.state_dict()
    trained = JanusPolicy.from_pretrained(tmp_path / "full").model.state_dict()
    changed = {k for k in init if not torch.equal(init[k], trained[k])}
    for name in ("model.language_model.embed_tokens.weight", "model.language_model.layers.0.self_attn.q_proj.weight",
                 "model.generation_embeddings.weight", "model.generation_head.vision_head.weight"):
        assert name in changed, name
    assert not any(k.startswith(("model.vision_model", "model.aligner", "model.vqmodel")) for k in changed)
    # Killed after the first checkpoint (the batch maker raises at step checkpoint_every + 3), then resumed: the same
    # weights as the uninterrupted run.
    import cotlab.policy.pretrain as pretrain_module

    make_batch, calls = pretrain_module._batch, []

    def dying_batch(rng, cfg):
        calls.append(1)
        if len(calls) == cfg.checkpoint_every + 3:
            raise KeyboardInterrupt
        return make_batch(rng, cfg)

    scratch = tmp_path / "scratch"
    pretrain_module._batch = dying_batch
    try:
        with pytest.raises(KeyboardInterrupt):
            pretrain(cfg, tmp_path / "resumed", scratch, progress=False)
    finally:
        pretrain_module._batch = make_batch
    resumed = pretrain(cfg, tmp_path / "resumed", scratch, progress=False)
    a = JanusPolicy.from_pretrained(tmp_path / "full").model.state_dict()
    b = JanusPolicy.from_pretrained(tmp_path / "resumed").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["final_loss"] == pytest.approx(full["final_loss"])
    long = PRETRAIN_TIERS["default"]  # warm-up then cosine decay to a tenth
    assert lr_at(0, long) < lr_at(long.steps // 10, long) == pytest.approx(long.lr, rel=0.05)
    assert lr_at(long.steps - 1, long) == pytest.approx(0.1 * long.lr, rel=0.01)


def test_pretraining_loss_adds_the_object_start_term_renormalised_over_object_codes():
    torch.manual_seed(0)
    scenes = [w.random_scene(seed, num_objects=3) for seed in (1, 2)]
    tokens = torch.as_tensor([w.scene_codes(s) for s in scenes])
    logits = torch.randn(2, w.NUM_TOKENS, w.CODEBOOK_SIZE)
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    table = w.code_table()
    starts = [(i, t) for i in range(2) for t in range(w.NUM_TOKENS)
              if table[tokens[i, t]] is not None and table[tokens[i, t]][3] in ("small", "tl")]
    assert len(starts) == 6  # one start token per object
    by_hand = -torch.stack([logits[i, t, 1:].log_softmax(-1)[tokens[i, t] - 1] for i, t in starts]).mean()
    loss, parts = pretrain_loss(logits, tokens, start_weight=0.5)
    assert loss.item() == pytest.approx((ce + 0.5 * by_hand).item(), rel=1e-6)
    assert parts == pytest.approx({"ce": ce.item(), "start_ce": by_hand.item()}, rel=1e-6)
    assert pretrain_loss(logits, tokens, start_weight=0)[0].item() == pytest.approx(ce.item(), rel=1e-6)
    background = torch.zeros_like(tokens)  # no object begins: the plain mean loss
    assert pretrain_loss(logits, background, 1.0)[1].keys() == {"ce"}


def test_a_fresh_policy_is_determined_by_its_seed():
    a = build_shapeworld_policy("tiny", seed=3).model.state_dict()
    b = build_shapeworld_policy("tiny", seed=3).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
