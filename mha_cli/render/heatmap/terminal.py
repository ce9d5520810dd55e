"""A quick look at the heatmap grid in a terminal: one coloured block per weight.

Each cell is two characters. Its glyph is a shade character (' ░▒▓█') drawn in the same colour
as its background: on a colour terminal the cell is a solid block of the scale's colour, and
without colour (NO_COLOR, a pipe, a CI log) the shade characters alone still draw the picture.
Masked cells are '··' in grey on no background. Pure: builds a renderable, prints nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.color import Color
from rich.console import Group
from rich.style import Style
from rich.text import Text

from mha_cli.render.heatmap.data import MASK_LABEL, HeatmapData, shared_vmax

if TYPE_CHECKING:
    from rich.console import RenderableType

SHADES = " ░▒▓█"  # lowest weights to highest, five equal bands of the shared scale
MASK_GLYPH = "·"
CELL = 2  # characters per cell: two make a roughly square block
BORDER = "│"  # before each panel and after the last
MAX_QUERIES = 24  # rows per panel shown; the image files show every one
MIN_KEYS = 8  # rather wrap heads onto more lines than show fewer keys than this
MASK_STYLE = Style(color="grey50")
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


def _cell(value: float, masked: bool, vmax: float) -> Text:
    if masked:
        return Text(MASK_GLYPH * CELL, MASK_STYLE)
    fraction = value / vmax
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


def _header(heads: range, keys: int, label_width: int) -> Text:
    line = Text(" " * label_width)
    for head in heads:
        name = f"head {head}" if len(f"head {head}") <= keys * CELL else f"h{head}"
        line.append(" " + name[: keys * CELL].ljust(keys * CELL))
    return line


def _panel_rows(
    data: HeatmapData, heads: range, shown: tuple[int, int], label_width: int, vmax: float
) -> list[Text]:
    queries, keys = shown
    lines: list[Text] = []
    for example in range(data.weights.shape[0]):
        for query in range(queries):
            label = f"example {example}" if query == 0 else ""
            line = Text(label.ljust(label_width))
            for head in heads:
                line.append(BORDER)
                for key in range(keys):
                    line.append_text(
                        _cell(
                            float(data.weights[example, head, query, key]),
                            bool(data.masked[example, head, query, key]),
                            vmax,
                        )
                    )
            line.append(BORDER)
            lines.append(line)
    return lines


def _legend(vmax: float) -> Text:
    line = Text("scale, shared by all panels: ")
    for band in range(len(SHADES)):
        line.append_text(_cell((band + 0.5) / len(SHADES) * vmax, False, vmax))
        line.append(f" ≥{band / len(SHADES) * vmax:.2f}  ")
    line.append(f"(max {vmax:.2f})   ")
    line.append_text(_cell(0.0, True, vmax))
    line.append(f" {MASK_LABEL}")
    return line


def terminal_grid(data: HeatmapData, max_width: int = 120) -> RenderableType:
    """The grid as coloured blocks: examples down, heads across, queries by keys per panel."""
    b, h, q, k = data.weights.shape
    label_width = len(f"example {b - 1}") + 1
    queries, keys, per_line = _fit(data, max_width, label_width)
    vmax = shared_vmax(data)
    parts: list[Text] = [Text(data.title, style="bold")]
    for first in range(0, h, per_line):
        heads = range(first, min(h, first + per_line))
        parts.append(_header(heads, keys, label_width))
        parts.extend(_panel_rows(data, heads, (queries, keys), label_width, vmax))
    parts.append(Text(f"rows: {data.query_label}, columns: {data.key_label}, one cell per weight"))
    if (queries, keys) != (q, k):
        parts.append(
            Text(
                f"showing {data.query_label} 0-{queries - 1} of {q} and "
                f"{data.key_label} 0-{keys - 1} of {k} in each panel; "
                "the image files show every cell"
            )
        )
    parts.append(_legend(vmax))
    return Group(*parts)
