"""The geometry of `mha reshape --render`, in inches, and the words under each layout.

Pure Python: one `Column` per layout (its grid's size, its tick-label room, its caption as
paragraphs), one cell size for all layouts, and where the captions go. The captions say what
the text output says: what each target axis is made of, the verdict with its reason, the size-1
axes left out and the fix.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from mha_cli.messages import shape_text
from mha_cli.reshape.explain import PanelMap, ReshapeExplanation, Verdict, index_map

MAX_TICKS = 12  # beyond this many rows, per-row tick labels become unreadable
CELL_IN, PANEL_IN, MAX_FIG_W = 0.3, 4.0, 16.0  # cell, longest panel side, figure width
MARGIN, COLUMN_GAP, PANEL_GAP, ROW_GAP = 0.3, 0.5, 0.15, 0.1  # inches
MIN_COLUMN_W = 3.4  # room for a caption that reads
AXIS_LABEL_W, PANEL_TITLE_H, HEADER_H, XAXIS_H = 0.3, 0.22, 0.32, 0.45
TITLE_PT, HEADER_PT, CAPTION_PT, SMALL_PT = 12, 11, 9, 8
LINE_IN = {TITLE_PT: 0.24, SMALL_PT: 0.15}
CAPTION_LINE = CAPTION_PT * 1.3 / 72  # inches, at linespacing 1.3
CBAR_W, CBAR_AREA, MAX_CBAR_H = 0.15, 1.0, 3.0


@dataclass(frozen=True)
class Column:
    """One layout's geometry, in inches."""

    expl: ReshapeExplanation
    panels: tuple[PanelMap, ...]
    cell: float
    label_w: float  # tick labels left of a panel
    labels_everywhere: bool  # rows differ between panels of a grid row: label every panel
    slot_w: float  # a panel, or its title where that is wider
    width: float
    grid_w: float  # the panels and their tick labels
    grid_h: float
    caption: list[str]

    @property
    def panel_size(self) -> tuple[float, float]:
        return self.expl.target_shape[3] * self.cell, self.expl.target_shape[2] * self.cell

    def panel_box(self, r: int, c: int, corner: tuple[float, float]) -> tuple[float, ...]:
        """(left, bottom, width, height) of panel [r, c], in inches; `corner` is the grid's
        top left."""
        x0, top = corner
        panel_w, panel_h = self.panel_size
        labels = c + 1 if self.labels_everywhere else 1
        left = x0 + labels * self.label_w + c * (self.slot_w + PANEL_GAP)
        left += (self.slot_w - panel_w) / 2
        bottom = top - (r + 1) * (PANEL_TITLE_H + panel_h) - r * ROW_GAP
        return left, bottom, panel_w, panel_h

    @property
    def grid_part(self) -> float:
        """Height of the header, the panels and the keys axis, without the caption."""
        return HEADER_H + self.grid_h + XAXIS_H

    @property
    def header(self) -> str:
        expl = self.expl
        shapes = f"{shape_text(expl.source_shape)} -> {shape_text(expl.target_shape)}"
        return f"{shapes}: {expl.verdict.value}"

    @property
    def colour(self) -> str:
        return "darkgreen" if self.expl.verdict is Verdict.OK else "firebrick"


# Where captions go: under the grid of the column at each index, led by their column's header
# where they are not under their own grid.
Placement = dict[int, list[tuple[Column, bool]]]


def plan_columns(expls: Sequence[ReshapeExplanation]) -> list[Column]:
    """One cell size for every layout (so their cells compare), shrunk to fit MAX_FIG_W."""
    cell = min(CELL_IN, *(PANEL_IN / max(e.target_shape[2:]) for e in expls))
    columns = [_column(e, cell) for e in expls]
    fixed = 2 * MARGIN + COLUMN_GAP * (len(expls) - 1) + CBAR_AREA
    grids = sum(c.width for c in columns)
    if fixed + grids > MAX_FIG_W:
        cell *= max(0.1, (MAX_FIG_W - fixed) / grids)
        columns = [_column(e, cell) for e in expls]
    return columns


def _column(expl: ReshapeExplanation, cell: float) -> Column:
    g0, g1, n_rows, n_cols = expl.target_shape
    panels = index_map(expl, max_panels=g0 * g1, max_rows=n_rows)
    first = {p.grid[0]: p.rows for p in panels if p.grid[1] == 0}
    everywhere = any(p.rows != first[p.grid[0]] for p in panels)
    longest = max((len(r) for p in panels for r in p.rows), default=2) if n_rows <= MAX_TICKS else 4
    label_w = _text_w(longest) + 0.12
    title = max((len(p.title or "panel [0, 0]") for p in panels), default=0)
    slot_w = max(n_cols * cell, _text_w(title) + 0.05)
    grid_w = g1 * slot_w + (g1 - 1) * PANEL_GAP + label_w * (g1 if everywhere else 1)
    width = max(MIN_COLUMN_W, AXIS_LABEL_W + grid_w)
    grid_h = g0 * (PANEL_TITLE_H + n_rows * cell) + (g0 - 1) * ROW_GAP
    return Column(
        expl, panels, cell, label_w, everywhere, slot_w, width, grid_w, grid_h, _caption(expl)
    )


def _text_w(chars: int, points: float = SMALL_PT) -> float:
    return chars * points * 0.6 / 72


def _caption(expl: ReshapeExplanation) -> list[str]:
    """The words of the text output, one paragraph each: what each axis is made of, the
    verdict and its reason, the size-1 axes left out, the fix."""
    axes = ", ".join(
        f"{role} = {words}" for role, words in zip(expl.target_roles, expl.made_of, strict=True)
    )
    paragraphs = [axes, f"{expl.verdict.value}: {expl.message}"]
    if expl.dropped:
        paragraphs.append(f"size-1 axes with no place of their own: {', '.join(expl.dropped)}")
    if expl.suggestion:
        paragraphs.append(f"fix: {expl.suggestion}")
    return paragraphs


def caption_lines(column: Column, width: float) -> list[str]:
    return [line for text in column.caption for line in wrap(text, width, CAPTION_PT)]


def caption_height(home: Column, led: tuple[Column, bool]) -> float:
    column, headed = led
    lines = len(caption_lines(column, home.width)) + (1 if headed else 0)
    return lines * CAPTION_LINE + (0.15 if headed else 0)


def place_captions(columns: list[Column]) -> Placement:
    """Each caption under its own grid; but where one layout is much shorter than another
    (a 5 x 2 grid beside a 2 x 5 one), every caption goes under the shortest, each led by its
    layout's header, so that space holds the words instead of staying empty."""
    own: Placement = {i: [(c, False)] for i, c in enumerate(columns)}
    if len(columns) < 2:
        return own
    home_index = min(range(len(columns)), key=lambda i: columns[i].grid_part)
    home = columns[home_index]
    free = max(c.grid_part for c in columns) - home.grid_part
    gathered = [(c, True) for c in columns]  # away from their grids: each says which
    if free < sum(caption_height(home, led) for led in gathered):
        return own
    return {home_index: gathered}


def wrap(text: str, width_in: float, points: float) -> list[str]:
    # Whole words only: joined with spaces, the lines give back the text exactly.
    chars = max(24, int(width_in * 72 / (points * 0.55)))
    return textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False)


def row_label(column: Column) -> str:
    # "example 1, query 0" -> "example x query": the axes the panel rows really run over
    rows = column.panels[0].rows if column.panels else ()
    kinds = " x ".join(part.rsplit(" ", 1)[0] for part in rows[0].split(", ")) if rows else ""
    if kinds in ("query", ""):
        return "queries"
    return f"rows: {kinds}"
