"""Fixtures shared by several test files: tiny random checkpoints built in code and saved to disk."""
import pytest

from cotlab.experiments.paper_scale import tiny_clip


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A random CLIP (hidden 32, 2 layers, 32 px images in 8 px patches) with a letter-level CLIP tokenizer; its seed
    gives cosines of both signs on the CLIPScore tests' prompts."""
    return tiny_clip(tmp_path_factory.mktemp("clip"))
