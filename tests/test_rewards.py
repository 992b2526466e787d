"""Reward composition and caching against hand-computed values."""
import re

import pytest
import torch
from PIL import Image

from cotlab import rewards
from cotlab.rewards import CachedReward, CompositeReward, MetricReward, get
from cotlab.rewards.compose import normalize


class Fixed:
    """Returns preset values and counts what it was asked to score."""

    def __init__(self, name, values):
        self.name, self.values, self.scored = name, torch.tensor(values), []

    def __call__(self, prompts, images, metadata=None):
        self.scored.extend(prompts)
        return self.values[:len(prompts)].clone()


def images(n):
    return [Image.new("RGB", (4, 4), (10 * i, 0, 0)) for i in range(n)]


def test_normalisations():
    x = torch.tensor([1.0, 3.0, 3.0, 5.0])
    assert torch.equal(normalize(x, "raw"), x)
    z = normalize(x, "zscore")
    assert z.mean().abs() < 1e-6 and z.std(unbiased=False) == pytest.approx(1.0, abs=1e-5)
    assert normalize(x, "rank").tolist() == [0.0, 0.5, 0.5, 1.0]  # ties share their mean rank
    assert normalize(torch.tensor([2.0]), "zscore").item() == 0.0 and normalize(torch.tensor([2.0]), "rank").item() == 0.5
    with pytest.raises(ValueError, match="known: raw, zscore, rank"):
        normalize(x, "minmax")


def test_composite_is_a_weighted_sum_of_normalised_components_and_logs_raw_values():
    a, b = Fixed("a", [1.0, 2.0, 3.0]), Fixed("b", [10.0, 0.0, 5.0])
    rm = CompositeReward([(a, 2.0, "raw"), (b, 1.0, "rank")])
    out = rm(["p"] * 3, images(3))
    assert out.tolist() == pytest.approx([2 + 1.0, 4 + 0.0, 6 + 0.5])
    assert rm.last_components["b"].tolist() == [10.0, 0.0, 5.0] and rm.name == "2*a+1*rank(b)"
    with pytest.raises(ValueError, match="distinct names"):
        CompositeReward([(a, 1.0, "raw"), (a, 1.0, "raw")])
    with pytest.raises(ValueError, match="unknown normalization 'max' for reward model 'a'"):
        CompositeReward([(a, 1.0, "max")])


def test_composite_from_the_registry():
    rm = get("composite", components=[{"name": "metric", "weight": 0.5, "normalization": "zscore"}])
    assert isinstance(rm, CompositeReward) and isinstance(rm.components[0][0].rm, MetricReward)  # cached
    assert rm.name == "0.5*zscore(metric)"
    # every registered name (the experiments layer may register more, e.g. the paper tier's metric reward)
    with pytest.raises(ValueError, match=re.escape(f"unknown reward model 'pickscore'; available: "
                                                   f"{', '.join(rewards.available())}")):
        get("composite", components=[{"name": "pickscore"}])
    with pytest.raises(ValueError, match="a composite component is"):
        get("composite", components=[{"name": "metric", "scale": 2}])
    assert "composite" in rewards.available()


def test_cache_scores_each_distinct_pair_once():
    inner = Fixed("a", [0.1, 0.2, 0.3, 0.4])
    rm = CachedReward(inner)
    ims = images(3)
    first = rm(["x", "y", "x"], [ims[0], ims[1], ims[0]])  # the third row repeats the first
    assert first.tolist() == pytest.approx([0.1, 0.2, 0.1]) and inner.scored == ["x", "y"]
    again = rm(["y", "x", "x"], [ims[1], ims[0], ims[2]])  # one new pair: ("x", image 2)
    assert again.tolist() == pytest.approx([0.2, 0.1, 0.1]) and inner.scored == ["x", "y", "x"]
    assert (rm.hits, rm.misses) == (3, 3)
    with pytest.raises(ValueError, match="normalises over the batch"):
        CachedReward(CompositeReward([(inner, 1.0, "zscore")]))
