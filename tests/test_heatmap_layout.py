"""Heatmaps that read at their default size: the geometry, the colour scale, the wrapped grid,
and terminal lines that fit. The numbers here come from numpy, never from mha's own output."""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from svg_text import svg_texts

from mha_cli.heatmaps.data import HeatmapData, colour_scale, compose_grid, grid_plan
from mha_cli.heatmaps.image import render_grid
from mha_cli.heatmaps.layout import compute_layout
from mha_cli.heatmaps.terminal import terminal_grid


def softmax_data(shape: tuple[int, int, int, int], seed: int = 0) -> HeatmapData:
    """Softmax of unit-normal scores over the keys, nothing masked."""
    scores = np.random.default_rng(seed).normal(size=shape)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return HeatmapData(weights / weights.sum(-1, keepdims=True), np.zeros(shape, bool), "random")


def flat_data(shape: tuple[int, int, int, int]) -> HeatmapData:
    """Geometry only: weights of that shape without allocating them."""
    return HeatmapData(
        np.broadcast_to(np.float32(1 / shape[-1]), shape),
        np.broadcast_to(False, shape),
        "attention weights, scaled dot-product, 12 heads, valid_lens none, inputs randn",
    )


def test_a_one_panel_file_is_mostly_its_panel() -> None:
    chapter = flat_data((2, 5, 4, 6)).panel(1, 3)
    lay = compute_layout(chapter, 100, False, "note")
    assert lay.title_lines == ["example 1, head 3"]  # one short line; the run goes under it
    assert lay.image_w * lay.image_h > 0.3 * lay.fig_w * lay.fig_h  # was 155 x 105 of 600 x 395
    assert lay.single and not lay.plan.wrapped


def test_bert_base_grid_wraps_into_a_screen_shape_with_whole_pixel_cells() -> None:
    lay = compute_layout(flat_data((1, 12, 512, 512)), 100, False, "a note " * 20)
    assert lay.plan.heads_per_row in (3, 4, 6) and lay.plan.wrapped  # was 12 across, 4290 x 487
    assert 1.0 <= lay.fig_w / lay.fig_h <= 2.2
    assert lay.cell * 100 >= 1  # every weight keeps its own pixel
    assert lay.text >= 1.5  # text grows with the picture, so it reads when shown to fit a screen


def test_the_chapter_grid_stays_one_row_of_heads_at_normal_text_size() -> None:
    lay = compute_layout(flat_data((2, 5, 4, 6)), 100, False, "note")
    assert lay.plan.heads_per_row == 5 and lay.text == 1.0


def test_wrapped_grid_holds_every_panel_once_and_masks_the_rest() -> None:
    data = softmax_data((2, 5, 3, 4))
    plan = grid_plan(data, heads_per_row=2, row_gap=3, example_gap=3)  # 3 rows of heads each
    grid = compose_grid(data, plan)
    inside = np.zeros(grid.shape, bool)
    for example, head in itertools.product(range(2), range(5)):
        rows, cols = plan.slices(example, head)
        np.testing.assert_array_equal(grid.data[rows, cols], data.weights[example, head])
        assert not inside[rows, cols].any()  # no two panels overlap
        inside[rows, cols] = True
    assert np.ma.getmaskarray(grid)[~inside].all()  # gaps and the empty sixth slot
    # Examples stand further apart than rows of one example.
    assert plan.slices(1, 0)[0].start - plan.slices(0, 4)[0].stop == 3 + 3
    assert plan.slices(0, 2)[0].start - plan.slices(0, 0)[0].stop == 3


def test_wrapped_grid_names_each_panel_once(tmp_path: Path) -> None:
    texts = svg_texts(render_grid(softmax_data((2, 12, 4, 6)), tmp_path / "g.svg"))
    heads = [t for t in texts if re.fullmatch(r"head \d+", t)]
    assert sorted(heads) == sorted(f"head {h}" for h in range(12) for _ in range(2))
    assert [t for t in texts if t.startswith("example")] == ["example 0", "example 1"]


def test_unwrapped_grid_names_heads_once_over_the_columns(tmp_path: Path) -> None:
    texts = svg_texts(render_grid(softmax_data((2, 5, 4, 6)), tmp_path / "g.svg"))
    assert sorted(t for t in texts if t.startswith("head ")) == [f"head {h}" for h in range(5)]


def _bulk_span(fractions: np.ndarray) -> float:
    """How much of the colormap the middle 90 % of the weights cover."""
    low, high = np.quantile(fractions, [0.05, 0.95])
    return float(high - low)


def test_attention_over_512_keys_gets_a_log_scale_that_spreads_it() -> None:
    data = softmax_data((1, 2, 64, 512))
    linear, auto = colour_scale(data, "linear"), colour_scale(data)
    assert auto.kind == "log" and auto.label() == "attention weight, log scale"
    assert _bulk_span(linear.fraction(data.weights)) < 0.2  # nearly all one colour
    assert _bulk_span(auto.fraction(data.weights)) > 0.3
    assert auto.vmax == pytest.approx(data.weights.max())
    assert auto.even == pytest.approx(1 / 512) and "1/512" in auto.note("panels")


def test_weights_spread_over_the_scale_stay_linear() -> None:
    data = softmax_data((2, 5, 4, 6))
    scale = colour_scale(data)
    assert scale.kind == "linear" and scale.vmin == 0
    assert scale.vmax == pytest.approx(data.weights.max())


@pytest.mark.parametrize("kind", ["linear", "log"])
def test_value_at_undoes_fraction(kind: str) -> None:
    scale = colour_scale(softmax_data((1, 1, 8, 512)), kind)
    for fraction in (0.0, 0.3, 0.77, 1.0):
        assert scale.fraction(np.array(scale.value_at(fraction))) == pytest.approx(fraction)


def test_masked_cells_stay_out_of_the_scale() -> None:
    data = softmax_data((1, 1, 4, 6))
    masked = np.zeros((1, 1, 4, 6), bool)
    masked[..., 0] = True
    weights = data.weights.copy()
    weights[..., 0] = 50.0  # a masked cell's number must not stretch the scale
    scale = colour_scale(HeatmapData(weights, masked, "masked"))
    assert scale.vmax == pytest.approx(data.weights[..., 1:].max())
    assert scale.even is None  # with masked keys, even attention is not 1/keys


def _terminal_lines(data: HeatmapData, width: int) -> list[str]:
    # A console far wider than `width`: any line that fits only because rich wrapped it fails.
    console = Console(file=io.StringIO(), width=1000, color_system=None)
    console.print(terminal_grid(data, max_width=width))
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("shape", "width"),
    list(itertools.product([(1, 1, 1, 6), (2, 5, 4, 6), (11, 32, 3, 512)], [40, 80, 200])),
)
def test_terminal_lines_fit_the_width_by_themselves(shape, width) -> None:
    data = softmax_data(shape)
    lines = _terminal_lines(data, width)
    assert max(len(line) for line in lines) <= width
    assert "spread evenly" in " ".join(lines)  # the legend's entries survive, whole
    assert any(re.search(r"█+ ≥\d", line) for line in lines)
