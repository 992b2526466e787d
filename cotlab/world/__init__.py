"""ShapeWorld: a compositional image world with exact ground truth, the embedded testbed of cotlab.

Scenes of a few objects (shape, colour, texture, size, grid position) render to 64x64 images made of 64 patches;
a designed codebook makes every image exactly 64 tokens. Two prompt suites mirror T2I-CompBench (in-domain) and
GenEval (out-of-domain), and an exact scorer reads objects back from pixels and scores prompts as both benchmarks do.
"""
from .captions import CaptionConfig, caption, captioned_scene, sample_captions
from .holdout import HOLDOUTS, HoldOut, check_holdout, meaning, meaning_twins, twin_overlap
from .language import (
    Entity, Prompt, PromptError, PromptSpec, Relation, parse_prompt, phrase_text, tokenize, vocabulary,
)
from .render import (
    CODEBOOK_SIZE, NUM_TOKENS, PatchReading, PatchTokenizer, code_table, codebook, decode_arrays, describe_code, parse,
    read_patch_batch, read_patches, render, render_array, scene_codes, to_array,
)
from .scene import (
    BACKGROUND, CANVAS, COLOR_NAMES, COLORS, GRID, PATCH, SHAPES, SIZES, TEXTURES, Obj, Scene, as_rng, random_scene,
)
from .scoring import (
    FACTS, Score, SuiteReport, aggregate, facts_named, metric_family, perturb, relation_holds, relative_position,
    satisfies, scene_for, score, score_batch, score_scene,
)
from .suites import (
    COMPBENCH_CATEGORIES, GENEVAL_TASKS, HELDOUT_SPLITS, SPLITS, SUITES, evenly_spaced, examples_per_category, load_suite,
)

__all__ = [
    "BACKGROUND", "CANVAS", "CaptionConfig", "caption", "captioned_scene", "sample_captions", "CODEBOOK_SIZE", "COLOR_NAMES", "COLORS",
    "COMPBENCH_CATEGORIES", "Entity", "FACTS", "GENEVAL_TASKS", "GRID", "HELDOUT_SPLITS", "HOLDOUTS", "HoldOut",
    "NUM_TOKENS", "Obj", "PATCH", "PatchReading", "PatchTokenizer", "Prompt", "PromptError", "PromptSpec", "Relation",
    "SHAPES", "SIZES", "SPLITS", "SUITES", "Scene", "Score", "SuiteReport", "TEXTURES", "aggregate", "as_rng",
    "check_holdout", "code_table", "codebook", "decode_arrays", "describe_code", "evenly_spaced",
    "examples_per_category", "facts_named", "load_suite",
    "meaning", "meaning_twins", "metric_family", "parse", "parse_prompt", "perturb", "phrase_text", "random_scene",
    "read_patch_batch", "read_patches", "relation_holds", "relative_position", "render", "render_array", "satisfies",
    "scene_codes", "scene_for", "score", "score_batch", "score_scene", "to_array", "tokenize", "twin_overlap",
    "vocabulary",
]
