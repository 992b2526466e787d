"""Janus policies through transformers: tokenizers, configurations, the CFG sampler and token log-probs."""
from .configs import JANUS_PRO_SHAPED, SHAPEWORLD_SIZES, JanusSize, janus_config
from .janus import LOGPROB_MODES, JanusPolicy, PolicySpec, Rollout
from .shapeworld import build_janus_pro_shaped_policy, build_shapeworld_policy, shapeworld_processor
from .tokenizers import ImageTokenizer, JanusVQTokenizer, build_text_tokenizer

__all__ = [
    "JANUS_PRO_SHAPED", "LOGPROB_MODES", "SHAPEWORLD_SIZES", "ImageTokenizer", "JanusPolicy", "JanusSize",
    "JanusVQTokenizer", "PolicySpec", "Rollout", "build_janus_pro_shaped_policy", "build_shapeworld_policy",
    "build_text_tokenizer", "janus_config", "shapeworld_processor",
]
