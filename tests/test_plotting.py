"""The book's figures (`cotlab.plotting`) on constructed data: what each draws, and where."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cotlab.plotting import image_grid, scaling_plot, spread_plot, sweep_plot


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_image_grid_lays_out_images_with_wrapped_titles():
    images = [np.full((4, 4, 3), i * 20, dtype=np.uint8) for i in range(7)]
    titles = ["a red circle to the left of a blue square", None, *[f"image {i}" for i in range(2, 7)]]
    fig = image_grid(images, titles, ncols=3, wrap=20, suptitle="samples")
    assert len(fig.axes) == 9 and all(not ax.axison for ax in fig.axes)  # 3 x 3, the last two empty
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 7
    for ax, image in zip(shown, images):
        assert np.array_equal(ax.images[0].get_array(), image)
    assert shown[0].get_title() == "a red circle to the\nleft of a blue\nsquare"  # lines of at most 20
    assert shown[1].get_title() == "" and shown[6].get_title() == "image 6"
    assert fig._suptitle.get_text() == "samples"
    assert len(image_grid(images[:2], ncols=6).axes) == 2  # no more columns than images


def test_image_grid_refuses_no_images_and_mismatched_titles():
    with pytest.raises(ValueError, match="at least one image"):
        image_grid([])
    with pytest.raises(ValueError, match="2 images and 1 titles"):
        image_grid([np.zeros((2, 2))] * 2, ["one"])


def sweep_results() -> pd.DataFrame:
    rows = [{"algorithm": "base", "suite": s, "category": "overall", "value": v, "G": np.nan, "seed": None}
            for s, v in (("compbench", 0.3), ("geneval", 0.2))]
    for algorithm, offset in (("grpo", 0.1), ("dpo", 0.0)):
        for g in (2, 8):
            for seed in range(3):
                for suite in ("compbench", "geneval"):
                    rows.append({"algorithm": algorithm, "suite": suite, "category": "overall", "G": g, "seed": seed,
                                 "value": 0.4 + offset + 0.01 * g + 0.01 * seed + (suite == "geneval") * 0.05})
    rows.append({"algorithm": "grpo", "suite": "compbench", "category": "color", "value": 0.0, "G": 2, "seed": 0})
    return pd.DataFrame(rows)


def test_sweep_plot_draws_each_algorithms_seed_means_and_the_base_per_suite():
    fig = sweep_plot(sweep_results(), "G", title="group size", xlabel="G (samples per prompt)")
    assert [ax.get_title() for ax in fig.axes] == ["group size: in domain (CompBench-style val)",
                                                   "group size: out of domain (GenEval-style)"]
    for ax, (base, shift) in zip(fig.axes, ((0.3, 0.0), (0.2, 0.05))):
        assert ax.get_xlabel() == "G (samples per prompt)" and ax.get_ylabel() == "overall score"
        (base_line,) = [line for line in ax.lines if line.get_label() == "base"]
        assert list(base_line.get_ydata()) == [base, base] and base_line.get_linestyle() == ":"
        means = {tuple(np.round(line.get_ydata(), 6)) for line in ax.lines
                 if len(line.get_xdata()) == 2 and line.get_xdata()[0] != line.get_xdata()[1]
                 and line.get_label() != "base"}  # the estimate lines (error bars are vertical)
        # seeds 0-2 average to +0.01; the category row is not plotted
        assert means == {tuple(np.round([0.53 + shift, 0.59 + shift], 6)),
                         tuple(np.round([0.43 + shift, 0.49 + shift], 6))}
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["grpo", "dpo", "base"]


def test_scaling_plot_draws_each_axis_log_log_with_the_linear_line_through_the_first_point():
    rows = [{"axis": "num_generations", "value": v, "seconds": 1.5 * v, "sampling": v, "update": 0.5 * v}
            for v in (2, 4, 8)]
    rows += [{"axis": "image_tokens", "value": v, "seconds": 0.01 * v ** 1.5, "sampling": 0.01 * v, "update": 0.0}
             for v in (16, 64)]
    fig = scaling_plot({"rows": rows})
    assert [ax.get_title() for ax in fig.axes] == ["GRPO step vs num generations", "GRPO step vs image tokens"]
    first = fig.axes[0]
    assert first.get_xscale() == first.get_yscale() == "log"
    lines = {line.get_label(): line for line in first.lines}
    assert list(lines) == ["step", "sampling", "update", "linear"]
    assert list(lines["step"].get_ydata()) == [3.0, 6.0, 12.0]
    assert np.allclose(lines["linear"].get_ydata(), lines["step"].get_ydata())  # linear growth lies on it
    assert [t.get_text() for t in first.get_xticklabels()] == ["2", "4", "8"]
    second = {line.get_label(): line for line in fig.axes[1].lines}
    assert np.allclose(second["linear"].get_ydata(), [0.64, 2.56])  # 0.01 x 16^1.5 x (64 / 16)


def test_spread_plot_draws_each_model_with_its_bar_between_the_two_picks():
    table = pd.DataFrame({"seeds": [0, 3, 2, 0], "ood best-of-4": [0.4, 0.45, 0.55, 0.6],
                          "ood best-of-4 ±": [0.0, 0.02, np.nan, 0.0]},
                         index=pd.Index(["random pick", "judge[id]", "preference[id]", "oracle pick"],
                                        name="reward model"))
    ax = spread_plot(table)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["judge[id]", "preference[id]"]
    assert {line.get_label(): line.get_xdata()[0] for line in ax.lines if line.get_label().endswith("pick")} == {
        "random pick": 0.4, "oracle pick": 0.6}
    assert ax.get_xlabel() == "out-of-domain best-of-4"
    points = ax.collections[0].get_segments()  # the 95% bars: a missing half-width draws none
    assert [tuple(np.round(s[:, 0], 3)) for s in points] == [(0.43, 0.47), (0.55, 0.55)]
