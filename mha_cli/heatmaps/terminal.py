"""A quick look at the heatmap grid in a terminal: one coloured block per weight.

Each cell is two characters. Its glyph is a shade character (' ░▒▓█') drawn in the same colour
as its background: on a colour terminal the cell is a solid block of the scale's colour, and
without colour (NO_COLOR, a pipe, a CI log) the shade characters alone still draw the picture.
Masked cells are '··' in grey on no background. Every line fits the width given (the
terminal's): fewer heads per line, then fewer keys and queries, and a legend that breaks
between its entries. Pure: builds a renderable, prints nothing.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

from rich.color import Color
from rich.console import Group
from rich.style import Style
from rich.text import Text

from mha_cli.heatmaps.data import MASK_LABEL, ColourScale, HeatmapData, colour_scale

if TYPE_CHECKING:
    import numpy as np
    from rich.console import RenderableType

SHADES = " ░▒▓█"  # lowest weights to highest, five equal bands of the shared scale
MASK_GLYPH = "·"
CELL = 2  # characters per cell: two make a roughly square block
BORDER = "│"  # before each panel and after the last
MAX_QUERIES = 24  # rows per panel shown; the image files show every one
MIN_KEYS = 8  # rather wrap heads onto more lines than show fewer keys than this
MASK_STYLE = Style(color="grey50")
NAN_GLYPH = "!"  # a weight that is not a number (a float16 overflow): no place on the scale
NAN_STYLE = Style(color="red", bold=True)
NAN_LABEL = "not finite (overflow)"
# viridis, as in the image files, sampled at nine points.
VIRIDIS = tuple(
    Color.parse(c).get_truecolor()
    for c in (
        "#440154",
        "#472d7b",
        "#3b528b",
        "#2c728e",
        "#21918c",
        "#28ae80",
        "#5ec962",
        "#addc30",
        "#fde725",
    )
)


def _colour(fraction: float) -> Color:
    """The scale's colour at `fraction` (0..1), interpolated between the viridis stops."""
    position = min(max(fraction, 0.0), 1.0) * (len(VIRIDIS) - 1)
    low = min(int(position), len(VIRIDIS) - 2)
    t = position - low
    a, b = VIRIDIS[low], VIRIDIS[low + 1]
    return Color.from_rgb(*(x + (y - x) * t for x, y in zip(a, b, strict=True)))


def _cell(fraction: float, masked: bool) -> Text:
    """One weight at `fraction` (0..1) of the colour scale, or a masked cell."""
    if masked:
        return Text(MASK_GLYPH * CELL, MASK_STYLE)
    if not math.isfinite(fraction):
        return Text(NAN_GLYPH * CELL, NAN_STYLE)
    shade = SHADES[min(len(SHADES) - 1, int(fraction * len(SHADES)))]
    colour = _colour(fraction)
    # Same colour in front and behind: a solid block with colour, the shade glyph without.
    return Text(shade * CELL, Style(color=colour, bgcolor=colour))


def _fit(data: HeatmapData, max_width: int, label_width: int) -> tuple[int, int, int]:
    """(queries shown, keys shown, heads per line) so that every line fits `max_width`."""
    _, h, q, k = data.weights.shape
    room = max(max_width - label_width - len(BORDER), CELL + len(BORDER))
    keys = min(k, (room // h - len(BORDER)) // CELL)  # all heads side by side
    if keys < min(k, MIN_KEYS):  # too narrow: fewer heads per line, more keys each
        keys = max(1, min(k, MIN_KEYS, (room - len(BORDER)) // CELL))
    per_line = max(1, room // (keys * CELL + len(BORDER)))
    return min(q, MAX_QUERIES), keys, per_line


def _header(heads: range, keys: int, label_width: int, data: HeatmapData) -> Text:
    """Each head's name over its panel, with its role ("head 3: prev 0.91") where it fits."""
    line = Text(" " * label_width)
    for head in heads:
        names = (f"head {head}{data.role_text(head)}", f"head {head}", f"h{head}")
        name = next((n for n in names if len(n) <= keys * CELL), names[-1])
        line.append(" " + name[: keys * CELL].ljust(keys * CELL))
    return line


TOKEN_WIDTH = 8  # a token's label beside its query row (--text)


def _row_labels(data: HeatmapData, queries: int) -> list[list[str]] | None:
    """Each example's token labels for its first `queries` rows, right-aligned, or None."""
    if data.tokens is None:
        return None
    from mha_cli.render.token_labels import labels

    rows = []
    for tokens in data.tokens:
        shown = labels(list(tokens), TOKEN_WIDTH)
        rows.append(
            [(shown[i] if i < len(shown) else "").rjust(TOKEN_WIDTH) for i in range(queries)]
        )
    return rows


def _panel_rows(
    data: HeatmapData, heads: range, fractions: np.ndarray, label_width: int
) -> list[Text]:
    """One line per (example, query) shown; `fractions` (b, h, queries, keys) are the shown
    cells' positions on the colour scale."""
    _, _, queries, keys = fractions.shape
    lines: list[Text] = []
    rows = _row_labels(data, queries)
    for example in range(data.weights.shape[0]):
        for query in range(queries):
            label = f"{data.row_name} {example}" if query == 0 else ""
            if rows is not None:  # --text: each query row names its token
                label = label.ljust(label_width - TOKEN_WIDTH - 1) + rows[example][query]
            line = Text(label.ljust(label_width))
            for head in heads:
                line.append(BORDER)
                for key in range(keys):
                    masked = bool(data.masked[example, head, query, key])
                    line.append_text(_cell(float(fractions[example, head, query, key]), masked))
            line.append(BORDER)
            lines.append(line)
    return lines


def _number(value: float, scale: ColourScale) -> str:
    return f"{value:.2f}" if scale.kind == "linear" and scale.vmax >= 0.1 else f"{value:.2g}"


def _legend(
    scale: ColourScale, masked: bool, max_width: int, non_finite: bool = False
) -> list[Text]:
    """The shades and the weights where each band starts, then the masked glyph, in lines
    that break between entries, never inside one."""
    kind = "log scale" if scale.kind == "log" else "scale"
    entries = []
    for band in range(len(SHADES)):
        swatch = _cell((band + 0.5) / len(SHADES), False)
        edge = scale.value_at(band / len(SHADES))
        entries.append(Text.assemble(swatch, f" ≥{_number(edge, scale)}"))
    entries.append(Text(f"(max {_number(scale.vmax, scale)})"))
    if scale.even is not None:
        entries.append(Text(f"spread evenly: 1/{scale.keys} = {_number(scale.even, scale)}"))
    if masked:
        entries.append(Text.assemble(_cell(0.0, True), f" {MASK_LABEL}"))
    if non_finite:
        entries.append(Text.assemble(_cell(math.nan, False), f" {NAN_LABEL}"))
    lines = [Text(f"{kind}, shared by all panels:")]
    for entry in entries:
        if lines[-1].cell_len + 2 + entry.cell_len <= max_width:
            lines[-1].append("  ")
            lines[-1].append_text(entry)
        else:
            lines.append(entry)
    return lines


def _prose(text: str, max_width: int, style: str = "") -> list[Text]:
    """Sentences wrapped at spaces to `max_width`, so no line relies on the terminal's wrap."""
    return [Text(line, style=style) for line in textwrap.wrap(text, max(max_width, 20))]


def _span(start: int, shown: int, step: int, cells: int) -> str:
    """'0-7 of 12' in positions: cells of `step` positions each, from `start`."""
    if step == 1 and start == 0:
        return f"0-{shown - 1} of {cells}"
    return f"{start}-{start + shown * step - 1} of {start}-{start + cells * step - 1}"


def terminal_grid(data: HeatmapData, max_width: int = 120, scale: str = "auto") -> RenderableType:
    """The grid as coloured blocks: examples down, heads across, queries by keys per panel;
    every line at most `max_width` characters. `scale`: auto, linear or log, as the images."""
    import numpy as np

    b, h, q, k = data.weights.shape
    label_width = len(f"{data.row_name} {b - 1}") + 1
    if data.tokens is not None:
        label_width += TOKEN_WIDTH + 1
    queries, keys, per_line = _fit(data, max_width, label_width)
    colours = colour_scale(data, scale)
    fractions = colours.fraction(data.weights[:, :, :queries, :keys])  # (b, h, queries, keys)
    parts = _prose(data.title, max_width, "bold")
    for first in range(0, h, per_line):
        heads = range(first, min(h, first + per_line))
        parts.append(_header(heads, keys, label_width, data))
        parts.extend(_panel_rows(data, heads, fractions, label_width))
    steps = (data.query_step, data.key_step)
    per_cell = "weight" if steps == (1, 1) else f"{steps[0]} x {steps[1]} weights (see the title)"
    what = f"rows: {data.query_label}, columns: {data.key_label}, one cell per {per_cell}"
    if (queries, keys) != (q, k):
        what += (
            f"; showing {data.query_label} {_span(data.query_start, queries, data.query_step, q)}"
            f" and {data.key_label} {_span(data.key_start, keys, data.key_step, k)} in each "
            "panel (the image files show every cell)"
        )
    parts.extend(_prose(what, max_width))
    undefined = not bool(np.isfinite(fractions[~data.masked[:, :, :queries, :keys]]).all())
    parts.extend(_legend(colours, bool(data.masked.any()), max_width, undefined))
    return Group(*parts)
