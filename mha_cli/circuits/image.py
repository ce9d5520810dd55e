"""`mha weights --out`: how alike the heads' circuits are (one layer), or one figure per layer
and head (`--layer all`). matplotlib's object API only: no pyplot, no global state."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from mha_cli.circuits.records import LayerWeights, WeightsRecord, stat_label
from mha_cli.circuits.text import number, similarity_summary, title

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

ANNOTATE_UP_TO = 12  # heads (or layers x heads cells per side) up to which cells show numbers
MISSING = "#bdbdbd"  # NaN cells: a head with non-finite or zero weights
READING = (
    "near 0: different circuits (random heads start so); 1: the same circuit "
    "(a head copied, or a constant initialisation)"
)
PANEL_TITLES = {
    "qk": "W_QK = W_qᵀ W_k\nwhat a query looks for in a key",
    "ov": "W_OV = W_o W_v\nwhat a head writes for what it reads",
}


def _ticks(ax: Axes, count: int, axis: str) -> None:
    step = max(1, math.ceil(count / 16))
    positions = list(range(0, count, step))
    if axis == "x":
        ax.set_xticks(positions)
    else:
        ax.set_yticks(positions)


def _annotate(
    ax: Axes,
    values: list[list[float]],
    dark: Callable[[float], bool],
    text: Callable[[float], str] = number,
) -> None:
    """Each cell's value, white where `dark(value)` says the colour under it is dark."""
    for row, line in enumerate(values):
        for col, value in enumerate(line):
            if not math.isnan(value):
                colour = "white" if dark(value) else "black"
                ax.text(col, row, text(value), ha="center", va="center", fontsize=8, color=colour)


def similarity_figure(report: WeightsRecord) -> Figure:
    """Two heatmaps, heads x heads: the cosine similarity of W_QK and of W_OV."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    layer = report.layer
    assert layer.similarity is not None
    h = len(layer.heads)
    side = min(7.0, max(3.2, 0.32 * h + 1.2))
    fig = Figure(figsize=(2 * side + 1.4, side + 1.9), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad=MISSING)
    images = []
    for ax, circuit in zip(axes, ("qk", "ov"), strict=True):
        values = layer.similarity[circuit]
        image = ax.imshow(
            np.ma.masked_invalid(np.array(values)), cmap=cmap, vmin=-1, vmax=1, aspect="equal"
        )
        images.append(image)
        ax.set_title(PANEL_TITLES[circuit], fontsize=10)
        ax.set_xlabel("head")
        ax.set_ylabel("head")
        _ticks(ax, h, "x")
        _ticks(ax, h, "y")
        if h <= ANNOTATE_UP_TO:
            # RdBu is dark at both ends
            _annotate(ax, values, lambda v: abs(v) > 0.6, lambda v: f"{v:.2f}")
    bar = fig.colorbar(images[0], ax=list(axes), shrink=0.8)
    bar.set_label("cosine similarity\n1 same, 0 unrelated, −1 opposite", fontsize=9)
    fig.suptitle(
        f"How alike the heads' circuits are (layer {layer.layer})\n{title(report)}", fontsize=11
    )
    summary = [similarity_summary(layer, circuit) for circuit in ("qk", "ov")]
    fig.supxlabel("\n".join([*summary, READING]), fontsize=9)
    return fig


def _layer_label(layer: LayerWeights) -> str:
    return f"{layer.layer} {layer.kind.split(' ')[0]}" if layer.kind else str(layer.layer)


def layers_figure(report: WeightsRecord) -> Figure:
    """layers x heads heatmap of `report.stat`."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    assert report.stat is not None
    grid = np.array(report.stat_grid(), dtype=float)  # (layers, heads)
    layers, heads = grid.shape
    width = min(14.0, max(8.0, 0.42 * heads + 2.5))  # 8 inches: room for the title
    height = min(11.0, max(2.8, 0.36 * layers + 2.0))
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=MISSING)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    _ticks(ax, heads, "x")
    _ticks(ax, layers, "y")
    ax.set_yticklabels(
        [_layer_label(report.layers[i]) for i in ax.get_yticks().astype(int)]
    )  # "3 local" where the model's layers differ (Gemma 2/3)
    if heads <= ANNOTATE_UP_TO and layers <= 2 * ANNOTATE_UP_TO:
        finite = grid[np.isfinite(grid)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        middle = (low + high) / 2
        _annotate(ax, grid.tolist(), lambda v: v < middle)  # viridis is dark at the low end
    bar = fig.colorbar(image, ax=ax)
    bar.set_label(report.stat, fontsize=9)
    fig.suptitle(f"{stat_label(report.stat)} per layer and head\n{title(report)}", fontsize=10)
    return fig
