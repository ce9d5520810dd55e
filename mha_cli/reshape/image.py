"""Draw the same attention weights in several reshape layouts, as d2l's show_heatmaps would.

Each layout is a column: its reshape and verdict on top, its grid of panels (grid rows x grid
columns, each panel rows x columns, one shared colour scale, masked keys hatched as in the
heatmaps), and under the grid the same words the text output prints: what each target axis is
made of, the verdict with its reason, and the fix. Columns are top-aligned and sized by their
own grids, so a short layout beside a tall one leaves its space to its caption, not to a
stretched spacer. Every size is decided in inches before drawing (no constrained layout), so
the picture has the size it needs and no more.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.heatmaps.data import MASK_FACE, MASK_HATCH
from mha_cli.messages import shape_text
from mha_cli.render.images import format_of_path, save_figure
from mha_cli.reshape.columns import (
    AXIS_LABEL_W,
    CAPTION_LINE,
    CAPTION_PT,
    CBAR_AREA,
    CBAR_W,
    COLUMN_GAP,
    HEADER_H,
    HEADER_PT,
    LINE_IN,
    MARGIN,
    MAX_CBAR_H,
    MAX_TICKS,
    SMALL_PT,
    TITLE_PT,
    Column,
    caption_height,
    caption_lines,
    place_captions,
    plan_columns,
    row_label,
    wrap,
)
from mha_cli.reshape.explain import ReshapeExplanation
from mha_cli.spec.axes import KV_PAIRS

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

CMAP = "Reds"  # show_heatmaps' colormap


def render_layouts(
    weights: np.ndarray,
    expls: Sequence[ReshapeExplanation],
    path: Path,
    *,
    masked: np.ndarray | None = None,
    dpi: int = 100,
) -> Path:
    """Write one image with every explained layout of `weights` side by side; returns `path`.

    `weights` has the explanations' source shape; `masked` (the same shape) marks masked keys,
    drawn hatched so they do not look like small weights.
    """
    path = Path(path)
    format_of_path(path, "--render")
    return save_figure(layouts_figure(weights, expls, masked=masked), path, dpi=dpi)


def layouts_figure(
    weights: np.ndarray, expls: Sequence[ReshapeExplanation], *, masked: np.ndarray | None = None
) -> Figure:
    """The layouts side by side as one matplotlib Figure (see `render_layouts`)."""
    import numpy as np
    from matplotlib.figure import Figure

    if not expls:
        raise MhaError("no layout to draw; give at least one target shape such as 2,1,1,10")
    for expl in expls:
        if len(expl.target_shape) != 4:
            raise MhaError(
                f"cannot draw {shape_text(expl.target_shape)}: show_heatmaps layouts have 4 "
                "axes (grid rows, grid columns, panel rows, panel columns)"
            )
    values = np.asarray(weights, dtype=float)
    hidden = np.zeros(values.shape, dtype=bool) if masked is None else np.asarray(masked, bool)
    columns = plan_columns(expls)
    width = 2 * MARGIN + sum(c.width for c in columns) + COLUMN_GAP * (len(columns) - 1)
    width += CBAR_AREA
    title = [
        f"the same attention weights {shape_text(values.shape)}, "
        f"source axes: {expls[0].source_pattern}",
    ]
    subtitle = wrap(
        "each layout as d2l's show_heatmaps draws it; one colour scale; hatched cells are "
        "masked keys",
        width - 2 * MARGIN,
        SMALL_PT,
    )
    top_h = MARGIN + LINE_IN[TITLE_PT] * len(title) + LINE_IN[SMALL_PT] * len(subtitle) + 0.15
    placement = place_captions(columns)
    height = (
        top_h
        + MARGIN
        + max(
            c.grid_part + sum(caption_height(c, led) for led in placement.get(i, []))
            for i, c in enumerate(columns)
        )
    )
    fig = Figure(figsize=(width, height))
    fig.text(0.5, 1 - MARGIN / height, "\n".join(title), ha="center", va="top", size=TITLE_PT)
    y = (MARGIN + LINE_IN[TITLE_PT] * len(title)) / height
    fig.text(0.5, 1 - y, "\n".join(subtitle), ha="center", va="top", size=SMALL_PT, color="#444")
    limits = (float(np.nanmin(values)), float(np.nanmax(values)))
    left = MARGIN
    for i, column in enumerate(columns):
        grid = np.ma.MaskedArray(values, mask=hidden).reshape(column.expl.target_shape)
        _draw_column(fig, column, grid, (left, height - top_h), limits)
        corner = (left, height - top_h - column.grid_part)
        _draw_captions(fig, placement.get(i, []), corner, column.width)
        left += column.width + COLUMN_GAP
    _colorbar(fig, limits, (left - COLUMN_GAP + 0.2, height - top_h - HEADER_H), columns)
    return fig


def _draw_column(
    fig: Figure,
    column: Column,
    grid: np.ma.MaskedArray,
    corner: tuple[float, float],
    limits: tuple[float, float],
) -> None:
    """Header, panels, axis labels and caption of one layout; `corner` = its top left, inches."""
    import numpy as np

    expl = column.expl
    g0, _g1, n_rows, n_cols = expl.target_shape
    fig_w, fig_h = fig.get_size_inches()
    x0, top = corner
    fig.text(
        x0 / fig_w,
        top / fig_h,
        column.header,
        va="top",
        size=HEADER_PT,
        color=column.colour,
        weight="bold",
    )
    grid_top = top - HEADER_H
    for panel in column.panels:
        r, c = panel.grid
        labelled = c == 0 or column.labels_everywhere
        left, bottom, width, height = column.panel_box(r, c, (x0 + AXIS_LABEL_W, grid_top))
        ax = fig.add_axes((left / fig_w, bottom / fig_h, width / fig_w, height / fig_h))
        if np.ma.getmaskarray(grid[r, c]).any():  # masked keys: hatched, as in the heatmaps
            _hatch_background(ax, (n_rows, n_cols))
        ax.imshow(grid[r, c], cmap=CMAP, vmin=limits[0], vmax=limits[1], aspect="auto", zorder=1)
        ax.set_title(panel.title or f"panel [{r}, {c}]", fontsize=SMALL_PT, pad=2)
        if n_rows <= MAX_TICKS:
            ax.set_yticks(range(n_rows), list(panel.rows) if labelled else [""] * n_rows)
        else:
            ticks = range(0, n_rows, _step(column.cell, SMALL_PT * 1.4 / 72))
            ax.set_yticks(ticks, [str(t) for t in ticks] if labelled else [""] * len(ticks))
        ticks = range(0, n_cols, _step(column.cell, _label_w(n_cols)))
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.tick_params(labelsize=SMALL_PT - 1, labelbottom=r == g0 - 1, length=2, pad=1.5)
    _draw_row_label(fig, column, (x0, grid_top))
    grid_bottom = grid_top - column.grid_h
    x_mid = x0 + AXIS_LABEL_W + column.label_w + (column.grid_w - column.label_w) / 2
    keys = "keys (kv pairs)" if expl.made_of[3] == KV_PAIRS else f"columns: {expl.made_of[3]}"
    fig.text(x_mid / fig_w, (grid_bottom - 0.22) / fig_h, keys, ha="center", va="top", size=9)


def _draw_captions(
    fig: Figure, captions: list[tuple[Column, bool]], corner: tuple[float, float], width: float
) -> None:
    """The captions placed under one column, from its top left `corner` down (inches)."""
    fig_w, fig_h = fig.get_size_inches()
    x, y = corner
    line = CAPTION_LINE
    for column, headed in captions:
        if headed:  # away from its grid: say which layout it explains
            fig.text(
                x / fig_w,
                y / fig_h,
                column.header,
                va="top",
                size=CAPTION_PT,
                color=column.colour,
                weight="bold",
            )
            y -= line
        lines = caption_lines(column, width)
        fig.text(
            x / fig_w,
            y / fig_h,
            "\n".join(lines),
            va="top",
            size=CAPTION_PT,
            color="#222222",
            linespacing=1.3,
        )
        y -= len(lines) * line + (0.15 if headed else 0)


def _draw_row_label(fig: Figure, column: Column, corner: tuple[float, float]) -> None:
    """What the panel rows run over: beside the grid, turned, where it fits its height; else
    level, over the row labels of the first panel."""
    fig_w, fig_h = fig.get_size_inches()
    x0, grid_top = corner
    label = row_label(column)
    if len(label) * (SMALL_PT + 1) * 0.55 / 72 <= column.grid_h:
        y = (grid_top - column.grid_h / 2) / fig_h
        fig.text(x0 / fig_w, y, label, rotation=90, va="center", size=SMALL_PT + 1)
    else:
        x = (x0 + AXIS_LABEL_W + column.label_w - 0.05) / fig_w
        fig.text(x, (grid_top - 0.03) / fig_h, label, ha="right", va="top", size=SMALL_PT)


def _step(cell: float, label_in: float) -> int:
    """Smallest 1-2-5 step between integer ticks whose labels do not collide."""
    step = 1
    while step * cell < 1.5 * label_in:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    return step


def _label_w(count: int) -> float:
    return len(str(count - 1)) * (SMALL_PT - 1) * 0.6 / 72


def _hatch_background(ax: Any, shape: tuple[int, int]) -> None:
    """A hatched grey box behind the panel: masked cells are transparent and show it."""
    import matplotlib
    from matplotlib.patches import Rectangle

    rows, cols = shape
    # rcParams, not `hatchcolor=` (matplotlib 3.11+): the declared floor is 3.8.
    with matplotlib.rc_context({"hatch.color": MASK_HATCH}):
        box = Rectangle((-0.5, -0.5), cols, rows, facecolor=MASK_FACE, hatch="////", lw=0, zorder=0)
    ax.add_patch(box)


def _colorbar(
    fig: Figure, limits: tuple[float, float], corner: tuple[float, float], columns: list[Column]
) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig_w, fig_h = fig.get_size_inches()
    x, top = corner
    bar_h = min(MAX_CBAR_H, max(max(c.grid_h for c in columns), 1.2))
    cax = fig.add_axes((x / fig_w, (top - bar_h) / fig_h, CBAR_W / fig_w, bar_h / fig_h))
    bar = fig.colorbar(ScalarMappable(Normalize(*limits), CMAP), cax=cax)
    bar.set_label("attention weight", size=9)
    bar.ax.tick_params(labelsize=SMALL_PT)
