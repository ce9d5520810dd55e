"""Where everything goes in a heatmap image, in inches, decided before anything is drawn.

`image` composes the panels into one picture and draws it; this module fixes the geometry
around it first, so the figure's size is known up front and every cell covers whole pixels:
the cell size, how the heads wrap (`GridPlan`), the margins, the text sizes and the wrapped
title and note. Big pictures get proportionally bigger text, so a 2,000-pixel grid viewed
to fit a screen still has readable labels. What is drawn by hand on the image (ticks, labels,
frames, the legend) is in `decor`.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

from mha_cli.heatmaps.data import GridPlan, HeatmapData, grid_plan, separator_cells

# Sizes in inches. Margins are fixed so the image size is known before drawing (no
# `bbox_inches="tight"`, which draws twice).
PANEL_IN = 1.6  # preferred side of a square panel in a grid
MAX_CELL = 0.3  # inches
FLAT_LONG = 2.5
SINGLE_PANEL_IN, SINGLE_MAX_CELL_IN = 4.0, 0.6  # a file of one panel: the panel is the picture
ANNOTATE_CELL_IN = 0.36  # room for "0.33" in each cell
MAX_IMAGE_IN = 22.0  # soft limit of the image's width and height
HARD_MAX_IMAGE_IN = 40.0  # limit even when that leaves a cell less than one pixel
ROW_MAX_IN = 16.0  # a row of heads wider than this wraps onto more rows
TARGET_ASPECT = 1.6  # the wrapped grid's width / height aimed at: a screen's shape
TEXT_REF_IN, MAX_TEXT_SCALE = 12.0, 4.0  # text grows with images wider than TEXT_REF_IN
MIN_FIG_W = 6.0
LEFT_IN, ROW_LABELS_IN, CBAR_GAP_IN, CBAR_W_IN, CBAR_LABELS_IN = 0.8, 0.95, 0.15, 0.15, 0.85
TITLE_LINE_IN, SUBTITLE_LINE_IN, HEAD_LABELS_IN = 0.24, 0.18, 0.3
TICKS_IN, XLABEL_IN, LEGEND_IN, NOTE_LINE_IN = 0.28, 0.22, 0.26, 0.17
MIN_CBAR_IN, MAX_CBAR_IN = 1.6, 4.0  # tall enough for its label, short enough to read
# Text sizes in points, before scaling.
TITLE_PT, SUBTITLE_PT, LABEL_PT, TICK_PT, NOTE_PT, LEGEND_PT = 12, 9, 10, 8, 8.5, 9


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in inches (and points for text); computed before any drawing."""

    plan: GridPlan
    cell: float
    image_w: float
    image_h: float
    fig_w: float
    fig_h: float
    left: float  # left edge of the image
    bottom: float  # bottom edge of the image
    text: float  # every font size and text margin is multiplied by this
    single: bool  # a file of one panel: its title names it, no head / example labels
    title_lines: list[str]
    subtitle_lines: list[str]
    note_lines: list[str]

    def points(self, size: float) -> float:
        return size * self.text


def _preferred_cell(q: int, k: int, single: bool, annotate: bool) -> float:
    """A panel of about PANEL_IN squared in area (so a flat one, one query by ten keys, is long
    rather than tiny), its longer side at most FLAT_LONG times PANEL_IN."""
    panel_in, max_cell = (SINGLE_PANEL_IN, SINGLE_MAX_CELL_IN) if single else (PANEL_IN, MAX_CELL)
    cell = min(panel_in / math.sqrt(q * k), FLAT_LONG * panel_in / max(q, k), max_cell)
    return max(cell, ANNOTATE_CELL_IN) if annotate else cell


def _cell_inches(grid_shape: tuple[int, int], preferred: float, dpi: int) -> float:
    rows, cols = grid_shape
    cell = min(preferred, MAX_IMAGE_IN / cols, MAX_IMAGE_IN / rows)
    # At least one pixel per cell where the figure stays sane, so no weight is averaged away.
    cell = max(cell, min(1 / dpi, HARD_MAX_IMAGE_IN / cols, HARD_MAX_IMAGE_IN / rows))
    # Whole pixels per cell: nearest-neighbour scaling then gives every cell the same size.
    return int(cell * dpi) / dpi if cell * dpi >= 1 else cell


def _heads_per_row(data: HeatmapData, cell: float) -> int:
    """All heads in one row, unless that row is wider than ROW_MAX_IN: then as many rows as
    bring the whole grid nearest a screen's shape, heads spread evenly over them."""
    b, h, q, k = data.weights.shape
    gap = separator_cells(data)
    panel_w, panel_h = (k + gap) * cell, (q + gap) * cell
    if h * panel_w <= ROW_MAX_IN:
        return h

    def misfit(rows: int) -> float:
        aspect = math.ceil(h / rows) * panel_w / (b * rows * panel_h)
        return abs(math.log(aspect / TARGET_ASPECT))

    return math.ceil(h / min(range(1, h + 1), key=misfit))


def _wrap(text: str, width_in: float, points: float) -> list[str]:
    chars = max(20, int(width_in * 72 / (points * 0.55)))  # ~0.55 em per character
    return [part for line in text.splitlines() for part in textwrap.wrap(line, chars) or [""]]


def compute_layout(data: HeatmapData, dpi: int, annotate: bool, note: str) -> Layout:
    """The geometry of the picture of `data`: a grid, or one panel when `data.panel_title`."""
    _, _, q, k = data.weights.shape
    single = bool(data.panel_title)
    preferred = _preferred_cell(q, k, single, annotate)
    left_in, ticks_in = LEFT_IN, TICKS_IN
    if data.tokens is not None:  # --text: cells tall enough for a token each, room for them
        from mha_cli.heatmaps.token_axes import TOKEN_CELL_IN, token_room

        preferred = max(preferred, TOKEN_CELL_IN)
        left_in, ticks_in = token_room(data, LEFT_IN, TICKS_IN)
    plan = grid_plan(data, _heads_per_row(data, max(preferred, 1 / dpi)))
    cell = _cell_inches(plan.grid_shape, preferred, dpi)
    image_w = plan.grid_shape[1] * cell
    text = min(max(image_w / TEXT_REF_IN, 1.0), MAX_TEXT_SCALE)
    if plan.wrapped:  # room between panel rows for the "head h" labels of the row below,
        # and as much again between examples
        row_gap = max(math.ceil(HEAD_LABELS_IN * text / cell), plan.row_gap)
        plan = grid_plan(data, plan.heads_per_row, row_gap=row_gap, example_gap=row_gap)
    image_h = plan.grid_shape[0] * cell
    right = (0 if single else ROW_LABELS_IN) + CBAR_GAP_IN + CBAR_W_IN + CBAR_LABELS_IN
    right *= text
    fig_w = max(MIN_FIG_W * text, left_in * text + image_w + right)
    if single:
        title_lines = [data.panel_title]
        subtitle_lines = _wrap(data.title, fig_w - 0.4, SUBTITLE_PT * text)
    else:
        title_lines, subtitle_lines = _wrap(data.title, fig_w - 0.4, TITLE_PT * text), []
    note_lines = _wrap(note, fig_w - 0.4, NOTE_PT * text)
    # A flat image (one query) still gets a colorbar tall enough for its label: room above and
    # below the image for the part of the colorbar that sticks out.
    pad = max(0.0, MIN_CBAR_IN * text - image_h) / 2
    legend = LEGEND_IN if data.masked.any() else 0.0  # the masked-cell legend, where needed
    bottom = (ticks_in + XLABEL_IN + legend + NOTE_LINE_IN * len(note_lines) + 0.1) * text
    top = TITLE_LINE_IN * len(title_lines) + SUBTITLE_LINE_IN * len(subtitle_lines) + 0.15
    top = (top + (0 if single else HEAD_LABELS_IN)) * text
    left = left_in * text + (fig_w - (left_in * text + image_w + right)) / 2  # centre it

    def whole(inches: float) -> float:  # the image's edges on pixel boundaries
        return round(inches * dpi) / dpi

    return Layout(
        plan=plan,
        cell=cell,
        image_w=image_w,
        image_h=image_h,
        fig_w=whole(fig_w),
        fig_h=whole(bottom + pad + image_h + pad + top),
        left=whole(left),
        bottom=whole(bottom + pad),
        text=text,
        single=single,
        title_lines=title_lines,
        subtitle_lines=subtitle_lines,
        note_lines=note_lines,
    )


def image_rect(lay: Layout) -> tuple[float, float, float, float]:
    """The image Axes as (left, bottom, width, height), in fractions of the figure."""
    return (
        lay.left / lay.fig_w,
        lay.bottom / lay.fig_h,
        lay.image_w / lay.fig_w,
        lay.image_h / lay.fig_h,
    )


def colorbar_rect(lay: Layout) -> tuple[float, float, float, float]:
    """The colorbar Axes, right of the row labels and centred on the image, in figure fractions."""
    cbar_h = min(max(lay.image_h, MIN_CBAR_IN * lay.text), MAX_CBAR_IN * lay.text)
    labels = 0 if lay.single else ROW_LABELS_IN
    return (
        (lay.left + lay.image_w + (labels + CBAR_GAP_IN) * lay.text) / lay.fig_w,
        (lay.bottom + (lay.image_h - cbar_h) / 2) / lay.fig_h,
        CBAR_W_IN * lay.text / lay.fig_w,
        cbar_h / lay.fig_h,
    )
