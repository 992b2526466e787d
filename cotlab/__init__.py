"""cotlab: DPO vs GRPO for autoregressive image generation, reproduced as a notebook-driven research book."""

__version__ = "0.1.0"
