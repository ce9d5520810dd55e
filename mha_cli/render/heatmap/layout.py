"""Where everything goes in a heatmap image: sizes in inches, panel positions, ticks, labels.

`heatmap` composes the panels into one image and draws it; this module decides the geometry
around it before anything is drawn (so the figure's size is known up front and every cell covers
whole pixels) and adds what is drawn by hand on that one Axes: integer ticks per panel, the
"head h" / "example b" labels, the frame and hatched box of each panel, the masked-cell legend
and the note under the image.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mha_cli.render.heatmap.data import (
    MASK_FACE,
    MASK_HATCH,
    MASK_LABEL,
    HeatmapData,
    panel_slices,
    separator_cells,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


# Sizes in inches. Margins are fixed so the image size is known before drawing (no
# `bbox_inches="tight"`, which draws twice).
PANEL_IN = 1.6  # preferred size of a panel's longer side
MAX_CELL_IN = 0.3
ANNOTATE_CELL_IN = 0.36  # room for "0.33" in each cell
MAX_IMAGE_IN = 22.0  # soft limit of the image's width and height
HARD_MAX_IMAGE_IN = 40.0  # limit even when that leaves a cell less than one pixel
MIN_FIG_W = 6.0
LEFT_IN, ROW_LABELS_IN, CBAR_GAP_IN, CBAR_W_IN, CBAR_LABELS_IN = 0.8, 0.95, 0.15, 0.15, 0.85
TITLE_LINE_IN, HEAD_LABELS_IN = 0.24, 0.3
TICKS_IN, XLABEL_IN, LEGEND_IN, NOTE_LINE_IN = 0.28, 0.22, 0.26, 0.16
MIN_CBAR_IN, MAX_CBAR_IN = 1.6, 4.0  # tall enough for its label, short enough to read


@dataclass(frozen=True)
class _Layout:
    """Where everything goes, in inches; computed before any drawing."""

    cell: float
    image_w: float
    image_h: float
    fig_w: float
    fig_h: float
    left: float  # left edge of the image
    bottom: float  # bottom edge of the image
    title_lines: list[str]
    note_lines: list[str]


def _cell_inches(grid_shape: tuple[int, int], side: int, dpi: int, annotate: bool) -> float:
    rows, cols = grid_shape
    cell = min(PANEL_IN / side, MAX_CELL_IN)
    if annotate:
        cell = max(cell, ANNOTATE_CELL_IN)
    cell = min(cell, MAX_IMAGE_IN / cols, MAX_IMAGE_IN / rows)
    # At least one pixel per cell where the figure stays sane, so no weight is averaged away.
    cell = max(cell, min(1 / dpi, HARD_MAX_IMAGE_IN / cols, HARD_MAX_IMAGE_IN / rows))
    # Whole pixels per cell: nearest-neighbour scaling then gives every cell the same size.
    return int(cell * dpi) / dpi if cell * dpi >= 1 else cell


def _wrap(text: str, width_in: float, points: float) -> list[str]:
    chars = max(20, int(width_in * 72 / (points * 0.55)))  # ~0.55 em per character
    return [part for line in text.splitlines() for part in textwrap.wrap(line, chars) or [""]]


def compute_layout(
    data: HeatmapData, grid_shape: tuple[int, int], dpi: int, annotate: bool, note: str
) -> _Layout:
    _, _, q, k = data.weights.shape
    cell = _cell_inches(grid_shape, max(q, k), dpi, annotate)
    image_w, image_h = grid_shape[1] * cell, grid_shape[0] * cell
    right = ROW_LABELS_IN + CBAR_GAP_IN + CBAR_W_IN + CBAR_LABELS_IN
    fig_w = max(MIN_FIG_W, LEFT_IN + image_w + right)
    title_lines = _wrap(data.title, fig_w - 0.4, 12)
    note_lines = _wrap(note, fig_w - 0.4, 8)
    # A flat image (one query) still gets a colorbar tall enough for its label: room above and
    # below the image for the part of the colorbar that sticks out.
    pad = max(0.0, MIN_CBAR_IN - image_h) / 2
    bottom = TICKS_IN + XLABEL_IN + LEGEND_IN + NOTE_LINE_IN * len(note_lines) + 0.1 + pad
    top = TITLE_LINE_IN * len(title_lines) + HEAD_LABELS_IN + 0.15 + pad
    left = LEFT_IN + (fig_w - (LEFT_IN + image_w + right)) / 2  # centre a narrow image

    def whole(inches: float) -> float:  # the image's edges on pixel boundaries
        return round(inches * dpi) / dpi

    return _Layout(
        cell,
        image_w,
        image_h,
        whole(fig_w),
        whole(bottom + image_h + top),
        whole(left),
        whole(bottom),
        title_lines,
        note_lines,
    )


def image_rect(lay: _Layout) -> tuple[float, float, float, float]:
    """The image Axes as (left, bottom, width, height), in fractions of the figure."""
    return (
        lay.left / lay.fig_w,
        lay.bottom / lay.fig_h,
        lay.image_w / lay.fig_w,
        lay.image_h / lay.fig_h,
    )


def colorbar_rect(lay: _Layout) -> tuple[float, float, float, float]:
    """The colorbar Axes, right of the row labels and centred on the image, in figure fractions."""
    cbar_h = min(max(lay.image_h, MIN_CBAR_IN), MAX_CBAR_IN)
    return (
        (lay.left + lay.image_w + ROW_LABELS_IN + CBAR_GAP_IN) / lay.fig_w,
        (lay.bottom + (lay.image_h - cbar_h) / 2) / lay.fig_h,
        CBAR_W_IN / lay.fig_w,
        cbar_h / lay.fig_h,
    )


def _tick_step(cell_in: float, count: int, label_in: float) -> int:
    """Smallest 1-2-5 step whose tick labels do not collide (spacing >= 1.8 labels)."""
    step, decade = 1, 1
    while step < count and step * cell_in < 1.8 * label_in:
        step = {1: 2, 2: 5, 5: 10}[step // decade] * decade
        decade = step if step // decade == 10 else decade
    return step


def _ticks(count: int, panels: int, offset: int, step: int) -> tuple[list[int], list[str]]:
    """Tick positions and labels: 0, step, 2*step... inside each panel along one axis."""
    inner = range(0, count, step)
    positions = [p * offset + i for p in range(panels) for i in inner]
    return positions, [str(i) for i in inner] * panels


def label_panels(
    ax: Axes, data: HeatmapData, ids: tuple[list[int], list[int]], cell: float
) -> None:
    """Integer ticks per panel, "head h" above each column, "example b" right of each row."""
    _, _, q, k = data.weights.shape
    gap = separator_cells(data)
    x_step = _tick_step(cell, k, (len(str(k - 1)) + 1) * 8 * 0.6 / 72)
    y_step = _tick_step(cell, q, 8 * 1.3 / 72)
    ax.set_xticks(*_ticks(k, len(ids[1]), k + gap, x_step))
    ax.set_yticks(*_ticks(q, len(ids[0]), q + gap, y_step))
    ax.tick_params(labelsize=8, length=2.5, pad=1.5)
    ax.set_xlabel(data.key_label, fontsize=10)
    ax.set_ylabel(data.query_label, fontsize=10)
    for i, head in enumerate(ids[1]):
        ax.annotate(
            f"head {head}",
            (i * (k + gap) + (k - 1) / 2, 1),
            xycoords=ax.get_xaxis_transform(),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=10,
        )
    for i, example in enumerate(ids[0]):
        ax.annotate(
            f"example {example}",
            (1, i * (q + gap) + (q - 1) / 2),
            xycoords=ax.get_yaxis_transform(),
            xytext=(6, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=10,
        )


def draw_panel_boxes(ax: Axes, data: HeatmapData) -> None:
    """A hatched grey box behind each panel (shows through masked cells) and a thin frame."""
    import matplotlib

    # The hatch colour from rcParams, read when a patch is made: `hatchcolor=` needs
    # matplotlib 3.11, and this works from 3.8 on.
    with matplotlib.rc_context({"hatch.color": MASK_HATCH}):
        _draw_boxes(ax, data)


def _draw_boxes(ax: Axes, data: HeatmapData) -> None:
    from matplotlib.patches import Rectangle

    b, h, q, k = data.weights.shape
    for example in range(b):
        for head in range(h):
            rows, cols = panel_slices(data, example, head)
            xy = (cols.start - 0.5, rows.start - 0.5)
            if data.masked[example, head].any():
                ax.add_patch(
                    Rectangle(
                        xy,
                        k,
                        q,
                        facecolor=MASK_FACE,
                        hatch="////",
                        linewidth=0,
                        zorder=0,
                    )
                )
            ax.add_patch(
                Rectangle(xy, k, q, fill=False, edgecolor="#555555", linewidth=0.6, zorder=3)
            )


def draw_footer(fig: Figure, data: HeatmapData, layout: _Layout) -> None:
    """The legend entry for masked cells and the note about the shared colour scale."""
    import matplotlib
    from matplotlib.patches import Patch

    x = 0.2 / layout.fig_w
    y = NOTE_LINE_IN * len(layout.note_lines) + 0.1
    if data.masked.any():
        with matplotlib.rc_context({"hatch.color": MASK_HATCH}):
            patch = Patch(
                facecolor=MASK_FACE,
                hatch="////",
                edgecolor="#555555",
                linewidth=0.6,
                label=MASK_LABEL,
            )
        fig.legend(
            handles=[patch],
            loc="lower left",
            bbox_to_anchor=(x, y / layout.fig_h),
            frameon=False,
            fontsize=9,
            borderaxespad=0,
            handlelength=2.2,
        )
    fig.text(
        x,
        0.08 / layout.fig_h,
        "\n".join(layout.note_lines),
        fontsize=8,
        color="#333333",
        ha="left",
        va="bottom",
    )
