"""Stand-ins for what paper scale downloads, so that its whole path runs anywhere (chapter 8 and the tests): a
Janus-Pro-format checkpoint decoding through its own VQ, a CLIP checkpoint for CLIPScore, and T2I-CompBench-format
prompt files. All are tiny, random and built in code; they check the plumbing, not the science. Every stand-in of
the paper tier (HPS, ImageReward, the judge, the benchmarks' scorers too) is built by `cotlab.experiments.stand_ins`;
this module keeps chapter 8's names.
"""
from __future__ import annotations

from cotlab.experiments.stand_ins import TINY_JANUS, tiny_clip, tiny_compbench, tiny_janus_pro

__all__ = ["TINY_JANUS", "tiny_clip", "tiny_compbench", "tiny_janus_pro"]
