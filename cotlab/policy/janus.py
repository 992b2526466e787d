"""`JanusPolicy`: a transformers Janus model with its text tokenizer and image tokenizer, as RL sees it.

Two things RL needs that `model.generate` does not give: per-token log-probs of what was sampled, and speed.
`sample` is our own loop (`cotlab.policy.sampling`: conditional and unconditional rows in one batch); `token_logprobs` scores given
tokens teacher-forced in one forward pass. Both use the same definitions:

* classifier-free guidance on logits, as transformers' `ClassifierFreeGuidanceLogitsProcessor` and Janus do:
  l = l_uncond + w (l_cond - l_uncond); the unconditional prompt keeps BOS and BOI and replaces every other prompt
  token by the pad token (Janus's recipe, also what `generate(generation_mode="image")` does);
* the policy distribution pi(x_t | x_<t) = softmax(l_t / T), where l_t are the conditional logits (`mode="cond"`, as
  T2I-R1 scores) or the guided logits (`mode="cfg"`, the distribution actually sampled); T is the temperature (1 when
  sampling greedily). Top-k truncation is a sampling filter, not part of the scored distribution.

The log-prob mode is part of the policy definition: it is saved with the checkpoint and appears in eval cards.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image

from cotlab.kernels import logprobs_from_hidden
from cotlab.world import PatchTokenizer

from .sampling import Rollout, guide, sample_tokens
from .tokenizers import ImageTokenizer, JanusVQTokenizer

LOGPROB_MODES = ("cond", "cfg")
POLICY_FILE = "cotlab_policy.json"  # what transformers' own files cannot say: the image tokenizer, the policy definition


@dataclass
class PolicySpec:
    """The parts of a policy's definition that travel with its checkpoint."""

    image_tokenizer: str = "janus_vq"  # "shapeworld_patch" (designed codebook) or "janus_vq" (the model's own VQ)
    logprob_mode: str = "cond"
    prompt_template: str = "{prompt}"  # Janus-Pro: "<|User|>: {prompt}\n\n<|Assistant|>:"

    def __post_init__(self):
        if self.logprob_mode not in LOGPROB_MODES:
            raise ValueError(f"unknown logprob_mode {self.logprob_mode!r}; expected one of {', '.join(LOGPROB_MODES)}")
        if self.image_tokenizer not in ("shapeworld_patch", "janus_vq"):
            raise ValueError(f"unknown image_tokenizer {self.image_tokenizer!r}; expected shapeworld_patch or janus_vq")
        if "{prompt}" not in self.prompt_template:
            raise ValueError(f"prompt_template must contain '{{prompt}}', got {self.prompt_template!r}")


class TeacherForcedLogits(torch.nn.Module):
    """Generation-head logits (rows, T, codebook) of `image_tokens` after a prompt (left-padded ids ending in BOI),
    teacher-forced in one forward pass of the language model. A module of its own so that a trainer can hand it to
    accelerate (DDP, DeepSpeed, FSDP wrap its forward) while it shares every parameter with the policy's model."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, image_tokens: torch.Tensor, features: bool = False):
        """Logits (rows, T, codebook); with `features`, the generation head's input to its last linear layer
        (rows, T, D) and that layer's weight and bias instead, for log-probs that never hold the logits
        (`cotlab.kernels.logprobs_from_hidden`)."""
        t = image_tokens.shape[1]
        embeds = torch.cat([self.model.get_input_embeddings()(ids),
                            self.model.prepare_embeddings_for_image_generation(image_tokens[:, :-1])], dim=1)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], t - 1))], dim=1)
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        hidden = self.model.model.language_model(inputs_embeds=embeds, attention_mask=mask,
                                                 position_ids=positions).last_hidden_state
        head, hidden = self.model.model.generation_head, hidden[:, ids.shape[1] - 1:]  # states predicting tokens 0..T-1
        if not features:
            return head(hidden)
        return head.activation_fn(head.proj_out(hidden)), head.vision_head.weight, head.vision_head.bias


class JanusPolicy:
    """A Janus model plus its processor (text tokenizer) and image tokenizer, with a declared log-prob mode."""

    def __init__(self, model, processor, image_tokenizer: ImageTokenizer | None = None, spec: PolicySpec | None = None):
        self.model = model
        self.scorer = TeacherForcedLogits(model)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.spec = spec or PolicySpec()
        if image_tokenizer is None:
            if self.spec.image_tokenizer == "shapeworld_patch":
                image_tokenizer = PatchTokenizer()
            else:
                vision = model.config.vision_config
                image_tokenizer = JanusVQTokenizer(model.model.vqmodel, vision.image_size,
                                                   processor.image_processor.image_mean,
                                                   processor.image_processor.image_std)
        self.image_tokenizer = image_tokenizer
        self.num_image_tokens = model.config.vision_config.num_image_tokens
        codebook = model.config.vq_config.num_embeddings
        if image_tokenizer.codebook_size != codebook or image_tokenizer.num_tokens != self.num_image_tokens:
            raise ValueError(
                f"the image tokenizer ({image_tokenizer.codebook_size} codes, {image_tokenizer.num_tokens} tokens) "
                f"does not match the model's generation head ({codebook} codes, {self.num_image_tokens} tokens)")
        self.bos_id = self.tokenizer.bos_token_id
        self.pad_id = self.tokenizer.pad_token_id
        self.boi_id = self.tokenizer.convert_tokens_to_ids(self.tokenizer.boi_token)
        self.unk_id = self.tokenizer.unk_token_id

    # -- persistence ------------------------------------------------------------------------------------------------

    def save_pretrained(self, path) -> None:
        """A standard transformers checkpoint (safetensors) plus `cotlab_policy.json`."""
        path = Path(path)
        self.model.save_pretrained(path)
        self.processor.save_pretrained(path)
        (path / POLICY_FILE).write_text(json.dumps(asdict(self.spec), indent=2))

    @classmethod
    def from_pretrained(cls, path, *, dtype=None, device=None, **spec_overrides) -> "JanusPolicy":
        """Load a checkpoint directory offline. A Janus-Pro checkpoint without `cotlab_policy.json` decodes with its
        own VQ; `spec_overrides` (e.g. `logprob_mode="cfg"`) change the policy definition."""
        from transformers import AutoProcessor, JanusForConditionalGeneration

        path = Path(path)
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{path} is not a Janus checkpoint: it has no config.json "
                                    f"(expected a directory written by save_pretrained)")
        model_type = json.loads(config_file.read_text()).get("model_type")
        if model_type != "janus":
            raise ValueError(f"{path} is not a Janus checkpoint: its config.json has model_type {model_type!r}, "
                             f"expected 'janus'")
        if not any(path.glob("*.safetensors")):
            pickled = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
            raise FileNotFoundError(f"policy checkpoint {path} has no *.safetensors weights: cotlab loads "
                                    f"safetensors only" + (f" ({', '.join(pickled)} are pickles, which are never "
                                                           f"loaded)" if pickled else ""))
        spec_file = path / POLICY_FILE
        spec = json.loads(spec_file.read_text()) if spec_file.is_file() else {}
        spec = PolicySpec(**{**spec, **spec_overrides})
        model = JanusForConditionalGeneration.from_pretrained(path, dtype=dtype, local_files_only=True)
        if device is not None:
            model = model.to(device)
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        return cls(model.eval(), processor, spec=spec)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- prompts ----------------------------------------------------------------------------------------------------

    def encode_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded `<bos> prompt <boi>` ids and attention mask; refuses unknown words and over-long prompts."""
        if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
            raise TypeError(f"prompts must be a list of strings, got {type(prompts).__name__}")
        if not prompts:
            raise ValueError("no prompts given: pass a non-empty list of prompt strings")
        texts = [self.spec.prompt_template.format(prompt=p) + self.tokenizer.boi_token for p in prompts]
        enc = self.tokenizer(texts, padding=True, return_tensors="pt", return_offsets_mapping=True)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if self.unk_id is not None and (ids == self.unk_id).any():
            row, col = (ids == self.unk_id).nonzero()[0].tolist()
            start, end = enc["offset_mapping"][row, col].tolist()
            word = texts[row][start:end]
            known = ", ".join(sorted(t for t in self.tokenizer.get_vocab() if not t.startswith("<")))
            raise ValueError(f"prompt {prompts[row]!r} has a word the policy's tokenizer does not know: {word!r}; "
                             f"its vocabulary is: {known}")
        limit = self.model.config.text_config.max_position_embeddings - self.num_image_tokens
        longest = int(mask.sum(1).max())
        if longest > limit:
            row = int(mask.sum(1).argmax())
            raise ValueError(f"prompt {prompts[row]!r} is {longest} tokens long; with {self.num_image_tokens} image "
                             f"tokens the model's context of {limit + self.num_image_tokens} allows at most {limit}")
        return ids.to(self.device), mask.to(self.device)

    def _with_unconditional(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append unconditional rows: the same positions, every token except BOS and BOI replaced by pad."""
        uncond = ids.clone()
        uncond[(ids != self.bos_id) & (ids != self.boi_id)] = self.pad_id
        return torch.cat([ids, uncond]), torch.cat([mask, mask])

    # -- sampling ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _check(guidance_scale: float, temperature: float, top_k: int, num_samples: int = 1):
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        if guidance_scale < 1:
            raise ValueError(f"guidance_scale must be >= 1 (1 = no guidance), got {guidance_scale}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = no truncation), got {top_k}")

    @torch.no_grad()
    def sample(self, prompts: list[str], num_samples: int = 1, guidance_scale: float = 5.0, temperature: float = 1.0,
               top_k: int = 0, generator: torch.Generator | None = None, logprob_mode: str | None = None,
               decode: bool = True, row_seeds=None) -> Rollout:
        """Sample `num_samples` images per prompt (rows prompt-major) with CFG weight `guidance_scale`.

        Per-token log-probs are recorded under `logprob_mode` (the policy's own by default). Tokens are drawn by
        inverse CDF from one uniform per row and token (`cotlab.policy.sampling`): an (N, T) draw from `generator`,
        or, with `row_seeds` (one integer per row), row i's T uniforms from `row_seeds[i]`, so that its image does
        not depend on which other rows share the batch (what sharded, multi-process rollouts need to match a single
        process)."""
        mode = logprob_mode or self.spec.logprob_mode
        if mode not in LOGPROB_MODES:
            raise ValueError(f"unknown logprob_mode {mode!r}; expected one of {', '.join(LOGPROB_MODES)}")
        self._check(guidance_scale, temperature, top_k, num_samples)
        rows_prompts = [p for p in prompts for _ in range(num_samples)] if isinstance(prompts, (list, tuple)) else prompts
        ids, mask = self.encode_prompts(rows_prompts)
        n = ids.shape[0]
        if row_seeds is not None:
            if len(row_seeds) != n:
                raise ValueError(f"row_seeds has {len(row_seeds)} seeds for {n} rows; pass one per sampled image")
            uniforms = torch.stack([torch.rand(self.num_image_tokens, generator=torch.Generator().manual_seed(int(s)))
                                    for s in row_seeds])
        else:
            uniforms = torch.rand((n, self.num_image_tokens), generator=generator,
                                  device=generator.device if generator is not None else self.device)
        tokens, logprobs = sample_tokens(self, ids, mask, uniforms.to(self.device), guidance_scale, temperature,
                                         top_k, mode)
        images = self.decode(tokens) if decode else []
        return Rollout(list(rows_prompts), tokens, logprobs, images, guidance_scale, temperature, mode)

    # -- scoring ----------------------------------------------------------------------------------------------------

    def token_logprobs(self, prompts: list[str], image_tokens: torch.Tensor, mode: str | None = None,
                       guidance_scale: float = 5.0, temperature: float = 1.0, scorer=None,
                       with_entropy: bool = False, tiled: bool = False):
        """Teacher-forced log pi(x_t | prompt, x_<t) of `image_tokens` (N, T), one forward pass; differentiable.
        `prompts` has one entry per row. `scorer` replaces the policy's own `TeacherForcedLogits` (a trainer passes
        its distributed wrapper of it, or a frozen reference's). `with_entropy` also returns the per-token entropy
        H_t = -sum_v pi(v) log pi(v) of the same distribution (detached). `tiled` computes them in tiles from the
        head's features without holding the (N, T, codebook) logits (`cotlab.kernels`); guidance is applied to the
        features, which is exact because the head's last layer is affine: W(u + w(c - u)) + b = l_u + w(l_c - l_u)."""
        mode = mode or self.spec.logprob_mode
        if mode not in LOGPROB_MODES:
            raise ValueError(f"unknown logprob_mode {mode!r}; expected one of {', '.join(LOGPROB_MODES)}")
        self._check(guidance_scale, temperature, 0)
        image_tokens = torch.as_tensor(image_tokens, device=self.device).long()
        if image_tokens.ndim != 2 or image_tokens.shape[1] != self.num_image_tokens:
            raise ValueError(f"image_tokens must be (N, {self.num_image_tokens}), got {tuple(image_tokens.shape)}")
        if len(prompts) != image_tokens.shape[0]:
            raise ValueError(f"got {len(prompts)} prompts for {image_tokens.shape[0]} token rows; pass one per row")
        ids, mask = self.encode_prompts(list(prompts))
        n = image_tokens.shape[0]
        use_cfg = mode == "cfg" and guidance_scale != 1
        if use_cfg:
            ids, mask = self._with_unconditional(ids, mask)
        rows = torch.cat([image_tokens, image_tokens]) if use_cfg else image_tokens
        temperature = temperature if temperature > 0 else 1.0
        if tiled:
            features, weight, bias = (scorer or self.scorer)(ids, mask, rows, features=True)
            if use_cfg:
                features = guide(features[:n], features[n:], guidance_scale)
            out = logprobs_from_hidden(features, weight, image_tokens, bias, temperature=temperature,
                                       entropy=with_entropy)
            return (out[0], out[1].detach()) if with_entropy else out
        logits = (scorer or self.scorer)(ids, mask, rows)
        if use_cfg:
            logits = guide(logits[:n], logits[n:], guidance_scale)
        logp = (logits.float() / temperature).log_softmax(-1)
        token_logp = logp.gather(-1, image_tokens[..., None]).squeeze(-1)
        if not with_entropy:
            return token_logp
        with torch.no_grad():
            entropy = -(logp.exp() * logp).sum(-1)
        return token_logp, entropy

    def image_logits(self, ids: torch.Tensor, mask: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced generation-head logits (rows, T, codebook); see `TeacherForcedLogits`."""
        return self.scorer(ids, mask, image_tokens)

    def decode(self, image_tokens: torch.Tensor) -> list[Image.Image]:
        return self.image_tokenizer.decode(image_tokens)
