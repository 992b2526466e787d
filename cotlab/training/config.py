"""Configs of the RL trainers: dataclasses with TRL's field names where TRL has the concept, checked on creation.

One optimizer step consumes `prompts_per_step` prompts (global, across processes and accumulation steps), each with
a group of `num_generations` images. GRPO samples its groups on-policy at every step; DPO (`sampling="offline"`, the
default) samples the groups of a whole round at the round's start (round 1 from the reference model: offline DPO, the
paper's setting), or (`"online"`) each step's groups as GRPO does, and mines chosen/rejected pairs from them. Both consume the same prompt stream, so configs that agree on the fields in
`ALIGNED_FIELDS` sample the same number of images and make the same number of reward calls (the paper's "aligned
data and compute"); `budget()` says how many.
"""
from __future__ import annotations

import difflib
import inspect
import io
import json
import tokenize
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from cotlab.checks import ConfigError, ConfigTypeError, Rule, check_fields, load_yaml
from cotlab.losses import DPO_LOSS_TYPES, GRPO_LOSS_TYPES, SCALE_REWARDS
from cotlab.policy.pretrain import BASE_TIERS, holdout_tier
from cotlab.world.holdout import HOLDOUTS

PAIR_SELECTIONS = ("best_worst", "all", "margin")
REFERENCES = ("base", "round_start")
DPO_SAMPLINGS = ("offline", "online")
REPORTERS = ("jsonl", "tensorboard")
# What must agree for two runs to have spent the same sampling and reward budget.
ALIGNED_FIELDS = ("policy", "reward", "prompts", "split", "holdout", "categories", "num_prompts", "seed", "max_steps",
                  "rounds", "prompts_per_step", "num_generations", "guidance_scale", "temperature", "top_k")


@dataclass
class RLConfig:
    # what is trained, on what
    policy: str = "default"  # a base-policy tier (see cotlab.policy.pretrain) or a JanusPolicy checkpoint directory
    reward: str = "metric"  # a cotlab.rewards name
    reward_options: dict = field(default_factory=dict)  # keyword options of the reward (e.g. a learned model's)
    prompts: str = "compbench"  # the prompt suite (in-domain training prompts)
    split: str = "train"  # the suite's split the training prompts come from (ShapeWorld: train; dev is for tuning)
    holdout: str = "L0"  # a cotlab.world.HOLDOUTS name: what the training prompts leave out ("L0": nothing; issue 19)
    categories: tuple[str, ...] | None = None  # restrict the training prompts (data diversity); None = all
    num_prompts: int | None = None  # keep the first n after shuffling by seed (data volume); None = all
    seed: int = 0  # the run's randomness: prompt shuffle and sampling draws (the weights come from `policy`)
    # schedule
    max_steps: int = 100  # optimizer steps per round
    rounds: int = 1  # iterative training: DPO regenerates its pairs each round; GRPO may reset its reference
    reference: str = "base"  # the KL / DPO reference: "base" throughout, or the policy at each round's start
    prompts_per_step: int = 16  # prompts per optimizer step, global (across processes and accumulation)
    num_generations: int = 4  # G: images per prompt
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step (prompts_per_step must divide)
    # sampling (the policy definition used for rollouts and log-probs)
    guidance_scale: float = 5.0  # CFG weight w: l_uncond + w (l_cond - l_uncond); 1 = no guidance
    temperature: float = 1.0  # softmax temperature of the sampler and of the log-probs
    top_k: int = 0  # sample among the k likeliest codes; 0 = all
    logprob_mode: str | None = None  # None: the policy's own ("cond" or "cfg")
    tiled_logprobs: bool = True  # log-probs in tiles without the full logits (cotlab.kernels); False: the plain path
    sample_batch_images: int = 256  # images per sampler call
    # optimisation
    learning_rate: float = 1e-5  # AdamW step size
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    adam_beta1: float = 0.9  # AdamW first-moment decay
    adam_beta2: float = 0.999  # AdamW second-moment decay
    max_grad_norm: float = 1.0  # gradients are clipped to this global L2 norm
    warmup_steps: int = 0  # linear warm-up, then constant
    beta: float = 0.0  # KL coefficient (GRPO) / inverse temperature of the implicit reward (DPO)
    trainable: tuple[str, ...] = ("model.language_model",)  # parameter-name prefixes that train (T2I-R1: the LM)
    mixed_precision: str = "no"  # "no", "bf16", "fp16" (accelerate)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (memory for time)
    # bookkeeping
    output_dir: str | None = None  # where config.json, metrics.jsonl, TensorBoard events and checkpoints go
    save_steps: int = 0  # checkpoint every n optimizer steps (0 = only at the end)
    probe_every: int = 0  # every n steps, on-policy reward and KL(pi || base) on the probe prompts (0 = never)
    probe_prompts: int = 16  # the probe set's size: spread over the ID dev split (ShapeWorld), else the train prompts
    report_to: tuple[str, ...] = ("jsonl", "tensorboard")  # metric writers: metrics.jsonl and/or TensorBoard

    algorithm = "rl"

    # The rule of every field, checked on creation (cotlab.checks): type, finiteness, range, choices.
    RULES = {
        "policy": Rule("path"), "reward": Rule("str"), "reward_options": Rule("mapping"), "prompts": Rule("str"),
        "split": Rule("str"), "holdout": Rule("str", choices=tuple(HOLDOUTS)),
        "categories": Rule("strs", optional=True, nonempty=True),
        "num_prompts": Rule("int", low=1, optional=True, note=" (None: all of them)"), "seed": Rule("int", low=0),
        "max_steps": Rule("int", low=1), "rounds": Rule("int", low=1), "reference": Rule("str", choices=REFERENCES),
        "prompts_per_step": Rule("int", low=1),
        "num_generations": Rule("int", low=2, note=" (a group needs two images to compare)"),
        "gradient_accumulation_steps": Rule("int", low=1),
        "guidance_scale": Rule("float", low=1, note=" (1 = no guidance)"),
        "temperature": Rule("float", low=0, low_open=True, note=" for RL sampling"), "top_k": Rule("int", low=0),
        "logprob_mode": Rule("str", choices=("cond", "cfg"), optional=True), "tiled_logprobs": Rule("bool"),
        "sample_batch_images": Rule("int", low=1), "learning_rate": Rule("float", low=0),
        "weight_decay": Rule("float", low=0), "adam_beta1": Rule("float", low=0, high=1, high_open=True),
        "adam_beta2": Rule("float", low=0, high=1, high_open=True),
        "max_grad_norm": Rule("float", low=0, low_open=True, note=" (0 would zero every gradient)"),
        "warmup_steps": Rule("int", low=0), "beta": Rule("float", low=0), "trainable": Rule("strs", nonempty=True),
        "mixed_precision": Rule("str", choices=("no", "bf16", "fp16")), "gradient_checkpointing": Rule("bool"),
        "output_dir": Rule("path", optional=True), "save_steps": Rule("int", low=0),
        "probe_every": Rule("int", low=0, note=" (0: no probe)"), "probe_prompts": Rule("int", low=1),
        "report_to": Rule("strs", choices=REPORTERS),
    }

    def __post_init__(self):
        check_fields(self, self.RULES)
        if self.prompts_per_step % self.gradient_accumulation_steps:
            raise ConfigError(f"prompts_per_step={self.prompts_per_step} must be divisible by "
                              f"gradient_accumulation_steps={self.gradient_accumulation_steps}")
        if HOLDOUTS[self.holdout].pretraining and self.policy in BASE_TIERS:  # else an "L3" run would really be L2
            raise ConfigError(f"holdout={self.holdout!r} is held out of pretraining too, but policy={self.policy!r} "
                              f"was pretrained on it; use policy={holdout_tier(self.policy, self.holdout)!r}")

    # -- budgets ----------------------------------------------------------------------------------------------------

    def budget(self) -> dict:
        """Images sampled and reward calls over the whole run (both algorithms: every sampled image is scored once)."""
        images = self.rounds * self.max_steps * self.prompts_per_step * self.num_generations
        return {"images_sampled": images, "reward_calls": images}

    # -- (de)serialisation ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"algorithm": self.algorithm, **asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "RLConfig":
        """Build from a mapping; an unknown key is refused with the closest known names."""
        return cls(**cls._fields_of(values))

    @classmethod
    def _fields_of(cls, values) -> dict:
        """`values` without its "algorithm" key, which must be this class's; an unknown key is refused."""
        if not isinstance(values, dict):
            raise ConfigTypeError(f"a {cls.__name__} is built from a mapping of its fields, got {values!r}")
        values = dict(values)
        algorithm = values.pop("algorithm", cls.algorithm)
        if algorithm != cls.algorithm:
            raise ConfigError(f"this config is for {algorithm!r}, not {cls.algorithm!r}")
        known = [f.name for f in fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=3, cutoff=0.5)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(f"{cls.__name__} has no field {key!r}{hint} (fields: {', '.join(known)})")
        return values

    @classmethod
    def read(cls, path) -> dict:
        """The fields a JSON or YAML file sets (without "algorithm"), unknown keys refused; errors name the file."""
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
        import yaml

        kind = "YAML" if path.suffix in (".yaml", ".yml") else "JSON"
        try:
            values = load_yaml(text) if kind == "YAML" else json.loads(text)
        except (ValueError, yaml.YAMLError) as e:  # json.JSONDecodeError is a ValueError; messages span lines
            raise ConfigError(f"config file {path}: not valid {kind}: {' '.join(str(e).split())}") from None
        if values is None:
            return {}
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path}: expected a mapping of config fields, got a "
                              f"{type(values).__name__}")
        try:
            return cls._fields_of(values)
        except ConfigError as e:
            raise ConfigError(f"config file {path}: {e}") from None

    @classmethod
    def load(cls, path) -> "RLConfig":
        """Read a JSON or YAML file of fields (the others keep their defaults)."""
        return cls(**cls.read(path))

    def replace(self, **changes) -> "RLConfig":
        return type(self).from_dict({**asdict(self), **changes})

    def diff(self, other: "RLConfig") -> dict[str, tuple]:
        """Fields whose values differ: {name: (self's, other's)}, bookkeeping fields aside."""
        mine, theirs = self.to_dict(), other.to_dict()
        ignore = {"output_dir", "save_steps", "report_to"}
        return {k: (mine.get(k), theirs.get(k)) for k in sorted(set(mine) | set(theirs))
                if k not in ignore and mine.get(k) != theirs.get(k)}


@dataclass
class GRPOConfig(RLConfig):
    epsilon: float = 0.2  # PPO clip range of the ratio pi / pi_old (lower side, and upper without epsilon_high)
    epsilon_high: float | None = None  # upper clip range (DAPO's clip-higher); None: epsilon
    loss_type: str = "grpo"  # how token losses are averaged (cotlab.losses.GRPO_LOSS_TYPES)
    scale_rewards: str = "group"  # advantage = (r - group mean) / std over the group, the batch, or none
    num_iterations: int = 1  # mu: updates per sampled batch, with the stored old log-probs
    algorithm = "grpo"
    RULES = {**RLConfig.RULES, "epsilon": Rule("float", low=0),
             "epsilon_high": Rule("float", low=0, optional=True, note=" (None: epsilon)"),
             "loss_type": Rule("str", choices=GRPO_LOSS_TYPES, note=" for GRPO"),
             "scale_rewards": Rule("str", choices=SCALE_REWARDS),
             "num_iterations": Rule("int", low=1)}


@dataclass
class DPOConfig(RLConfig):
    beta: float = 0.1  # inverse temperature of the implicit reward beta log(pi / pi_ref)
    loss_type: str = "sigmoid"  # the DPO loss variant (cotlab.losses.DPO_LOSS_TYPES; "sigmoid" is the paper's)
    label_smoothing: float = 0.0  # conservative DPO: the probability that a pair's label is flipped
    pair_selection: str = "best_worst"  # per group: best vs worst, all ordered pairs, or pairs with a reward margin
    margin_threshold: float = 0.0  # "margin": keep pairs whose reward difference exceeds this
    # "offline": the round's groups are sampled once at its start (round 1 from the base: the paper's); "online":
    # each step's groups by the current policy, the very groups GRPO samples (same prompts, seeds, budget)
    sampling: str = "offline"  # when pairs are sampled: "offline" (once per round) or "online" (every step)
    algorithm = "dpo"
    RULES = {**RLConfig.RULES, "beta": Rule("float", low=0, low_open=True, note=" for DPO"),
             "loss_type": Rule("str", choices=DPO_LOSS_TYPES, note=" for DPO"),
             "label_smoothing": Rule("float", low=0, high=0.5, high_open=True),
             "pair_selection": Rule("str", choices=PAIR_SELECTIONS), "margin_threshold": Rule("float", low=0),
             "sampling": Rule("str", choices=DPO_SAMPLINGS, note=" (when DPO samples its pairs)")}


CONFIGS = {"grpo": GRPOConfig, "dpo": DPOConfig}


def field_help(cls: type) -> dict[str, str]:
    """Each field's one line of help: the comment after it in the class body (the config's only copy of it); a
    subclass's comment replaces its base's."""
    help_text: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if "__dataclass_fields__" in vars(k)]):
        names = vars(klass).get("__annotations__", {})
        for tok in tokenize.generate_tokens(io.StringIO(inspect.getsource(klass)).readline):
            name = tok.line.split(":", 1)[0].strip()
            if tok.type == tokenize.COMMENT and name in names and not tok.line.lstrip().startswith("#"):
                help_text[name] = tok.string.lstrip("#").strip()
    return {f.name: help_text.get(f.name, "") for f in fields(cls)}


def describe_fields(cfg: RLConfig) -> str:
    """Every field of `cfg` with its value and help, one per line (`cotlab train --help-config`)."""
    helps = field_help(type(cfg))
    width = max(map(len, helps))
    return "\n".join(f"{name:<{width}}  {getattr(cfg, name)!r:<24}  {text}" for name, text in helps.items())


def _janus_pro(checkpoint: str) -> dict:
    """The paper (group 4, mu 1, offline DPO from the base model's samples, T2I-CompBench training prompts) with
    T2I-R1's settings where it is silent: lr 1e-6, beta 0.01, CFG 5, temperature 1, only the language model trains,
    bf16, gradient checkpointing and the tiled log-prob path. DPO: the group's earlier recipe (Show-o), beta 0.1,
    lr 1e-5."""
    return {"shared": dict(policy=checkpoint, prompts="t2i-compbench", num_generations=4, learning_rate=1e-6,
                           guidance_scale=5.0, temperature=1.0, mixed_precision="bf16", gradient_checkpointing=True,
                           tiled_logprobs=True, max_steps=1600, prompts_per_step=8, trainable=("model.language_model",)),
            "grpo": dict(beta=0.01, num_iterations=1), "dpo": dict(beta=0.1, learning_rate=1e-5)}


# Presets: shared fields per setting, then per-algorithm fields. Aligned by construction (same ALIGNED_FIELDS).
PRESETS: dict[str, dict] = {
    # ShapeWorld, CI-sized: the smoke base policy, a few steps.
    "smoke": {"shared": dict(policy="smoke", max_steps=8, prompts_per_step=8, num_generations=4, learning_rate=1e-3,
                             guidance_scale=5.0, probe_every=4, probe_prompts=8),
              "grpo": dict(beta=0.0), "dpo": dict(beta=0.1)},
    # ShapeWorld, the book's default tier.
    # 40 steps of 8 prompts: measured on the default base (metric reward, seed 0), GRPO took ID 0.35 -> 0.48 and OOD
    # 0.33 -> 0.43 in about 40 s; the tiers size seeds and evaluations from the power analysis (experiments/tiers.py).
    # probe_every=10: four points along every run (learning curves, KL to the base, on-policy reward for both).
    "default": {"shared": dict(policy="default", max_steps=40, prompts_per_step=8, num_generations=4,
                               learning_rate=2e-4, guidance_scale=2.0,  # the default base's best weight (tiers.py)
                               probe_every=10),
                "grpo": dict(beta=0.01), "dpo": dict(beta=0.1)},
    # The paper's setting on Janus-Pro (below); "paper" is its 7B model.
    **{name: _janus_pro(checkpoint) for name, checkpoint in (("janus-pro-1b", "deepseek-community/Janus-Pro-1B"),
                                                            ("janus-pro-7b", "deepseek-community/Janus-Pro-7B"),
                                                            ("paper", "deepseek-community/Janus-Pro-7B"))},
}


def preset(name: str, algorithm: str, **overrides) -> RLConfig:
    """The config of `algorithm` ("grpo" or "dpo") in preset `name`, with overrides."""
    if algorithm not in CONFIGS:
        raise ValueError(f"unknown algorithm {algorithm!r}; known: {', '.join(CONFIGS)}")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    values = {**PRESETS[name]["shared"], **PRESETS[name][algorithm], **overrides}
    return CONFIGS[algorithm].from_dict(values)


# Chapter 3's arms (issue 18): what separates the loss from the data and from the policy definition. Each is an
# algorithm and the fields that make it; all four spend the same aligned budget.
ARMS: dict[str, tuple[str, dict]] = {
    "grpo": ("grpo", {}),                                # on-policy groups, conditional-branch log-probs (T2I-R1)
    "dpo": ("dpo", {"sampling": "offline"}),             # the paper's: pairs mined once from the base model
    "dpo-online": ("dpo", {"sampling": "online"}),       # pairs mined each step from the groups GRPO would sample
    "grpo-cfg": ("grpo", {"logprob_mode": "cfg"}),       # GRPO optimising the CFG distribution it samples from
}


def arm_preset(name: str, arm: str, **overrides) -> RLConfig:
    """The config of chapter 3's `arm` (a key of ARMS) in preset `name`, with overrides."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
    algorithm, fields = ARMS[arm]
    return preset(name, algorithm, **{**fields, **overrides})


def arm_of(cfg: RLConfig) -> str:
    """The arm a config belongs to: "dpo-online" for online DPO, "grpo-cfg" for GRPO with CFG log-probs, else its
    algorithm."""
    if cfg.algorithm == "dpo" and cfg.sampling == "online":
        return "dpo-online"
    if cfg.algorithm == "grpo" and cfg.logprob_mode == "cfg":
        return "grpo-cfg"
    return cfg.algorithm


def aligned(a: RLConfig, b: RLConfig) -> bool:
    """Whether two runs spend the same sampling and reward budget on the same prompts."""
    return all(getattr(a, k) == getattr(b, k) for k in ALIGNED_FIELDS)


__all__ = ["ALIGNED_FIELDS", "ARMS", "CONFIGS", "DPO_SAMPLINGS", "DPOConfig", "GRPOConfig", "PAIR_SELECTIONS", "PRESETS",
           "RLConfig", "aligned", "arm_of", "arm_preset", "describe_fields", "field_help", "preset"]
