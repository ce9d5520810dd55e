"""Draw a `Diagram` with matplotlib alone (no Graphviz): boxes, arrows, and on every arrow the
shape and axes of the tensor it carries.

The picture reads top to bottom, in the order of the stage table. One axes covers the figure
and its data units are inches, so sizes below are inches and fonts points. Every shape label
is a text artist whose SVG group id is `shape-STAGE` (and `axes-STAGE` for its axis names):
with `svg.fonttype` none the words stay text, and a test reads them back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mha_cli.diagrams.model import MAIN_LANE, Box, Diagram, Edge, Group
from mha_cli.messages import shape_text
from mha_cli.render import numbers

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLUMN = 2.75  # between the centres of two lanes
BOX_W, BOX_H = 2.2, 0.5
ROW = 1.1  # between the tops of two rows; the gap holds the arrow's two-line label
LEFT = 0.75  # left margin: room for a group's label (the right one is LABEL_W, for the shapes)
LABEL_W = 2.3  # from an arrow to the end of its longest label
HEADER, NOTE_LINE = 0.95, 0.22
DETAIL_LINE = 0.16
CARD = 0.05  # offset of each card behind a stacked box
MAX_CARDS = 3
SANS, MONO = "DejaVu Sans", "DejaVu Sans Mono"
COLOURS = {
    "input": "#ececec",
    "weight": "#cfe2f3",
    "reshape": "#fff2cc",
    "compute": "#d9ead3",
    "mask": "#f4cccc",
    "output": "#ececec",
}
LEGEND = (
    ("weight", "has parameters"),
    ("reshape", "reshape / permute (no arithmetic)"),
    ("compute", "computation"),
    ("mask", "mask"),
)
PARAM_INK = "#3d6fa5"
INK, EDGE_INK, AXES_INK, GROUP_INK = "#222222", "#555555", "#666666", "#999999"
STACK_INK = "#674ea7"


class Layout:
    """Where each lane and row is, in inches from the bottom left."""

    def __init__(self, diagram: Diagram) -> None:
        self.lanes = {lane: LEFT + BOX_W / 2 + i * COLUMN for i, lane in enumerate(diagram.lanes)}
        self.lanes[MAIN_LANE] = (self.lanes["queries"] + self.lanes["keys"]) / 2
        self.width = max(self.lanes.values()) + LABEL_W + 0.3
        self.footer = (len(diagram.notes) + 1) * NOTE_LINE + 0.35
        self.height = HEADER + diagram.rows * ROW + self.footer

    def top(self, row: int) -> float:
        return self.height - HEADER - row * ROW

    def extent(self, box: Box) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the box."""
        if box.span is not None:
            left = self.lanes[box.span[0]] - BOX_W / 2
            right = self.lanes[box.span[1]] + BOX_W / 2
        else:
            left = self.lanes[box.lane] - BOX_W / 2
            right = left + BOX_W
        top = self.top(box.row)
        extra = DETAIL_LINE * (box.detail.count("\n"))  # the mask's lines: it grows downwards
        return left, top - BOX_H - extra, right, top


def diagram_figure(diagram: Diagram, *, dpi: int = 100) -> Figure:
    """The whole picture as a matplotlib Figure (no pyplot: no global state, no GUI)."""
    from matplotlib.figure import Figure

    layout = Layout(diagram)
    fig = Figure(figsize=(layout.width, layout.height), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, layout.width)
    ax.set_ylim(0, layout.height)
    ax.set_axis_off()
    _header(ax, diagram, layout)
    for group in diagram.groups:
        _group(ax, group, layout)
    boxes = {box.key: box for box in diagram.boxes}
    for box in diagram.boxes:
        _box(ax, box, layout)
    for edge in diagram.edges:
        _edge(ax, edge, boxes[edge.source], boxes[edge.target], layout)
    _footer(ax, diagram, layout)
    return fig


def _header(ax: Axes, diagram: Diagram, layout: Layout) -> None:
    y = layout.height - 0.35
    ax.text(LEFT - 0.4, y, diagram.title, fontsize=13, weight="bold", family=SANS, va="center")
    stacks = (
        "; stacked boxes keep the heads apart" if any(b.stack > 1 for b in diagram.boxes) else ""
    )
    words = SUBTITLE + stacks
    ax.text(LEFT - 0.4, y - 0.3, words, fontsize=8.5, color=AXES_INK, family=SANS, va="center")


SUBTITLE = "each arrow carries the tensor of one row of `mha inspect`: its shape and axes"
CENTRED: dict[str, Any] = {"ha": "center", "va": "center", "family": SANS, "color": INK}
TAG: dict[str, Any] = {
    "va": "center",
    "fontsize": 7,
    "color": "white",
    "family": SANS,
    "weight": "bold",
}


def _box(ax: Axes, box: Box, layout: Layout) -> None:
    from matplotlib.patches import FancyBboxPatch

    left, bottom, right, top = layout.extent(box)
    face = COLOURS.get(box.kind, COLOURS["compute"])
    rounding = 0.22 if box.kind in ("input", "output") else 0.05
    shape: dict[str, Any] = {
        "boxstyle": f"round,pad=0,rounding_size={rounding}",
        "facecolor": face,
    }
    cards = min(box.stack - 1, MAX_CARDS)
    for i in range(cards, -1, -1):  # the cards behind, up and to the right, then the box
        corner = (left + i * CARD, bottom + i * CARD)
        ink, width = (STACK_INK if cards else EDGE_INK), (0.7 if i else 1.0)
        patch = FancyBboxPatch(corner, right - left, top - bottom, edgecolor=ink, **shape)
        patch.set_linewidth(width)
        ax.add_patch(patch)
    middle, centre = top - BOX_H / 2, (left + right) / 2
    room = right - left - 0.12
    title_size = fitted(box.title, room, 10 if box.detail else 10.5, "bold")
    title_y = middle + (0.09 if box.detail else 0)
    ax.text(centre, title_y, box.title, fontsize=title_size, weight="bold", **CENTRED)
    if box.detail:
        detail: dict[str, Any] = {**CENTRED, "va": "top", "linespacing": 1.25}
        ax.text(centre, middle - 0.03, box.detail, fontsize=fitted(box.detail, room, 8), **detail)
    if box.params:  # a tag on the top right corner: the weights' size
        words = f"{numbers.count(box.params)} params"
        ax.text(right - 0.06, top, words, ha="right", bbox=_tag(PARAM_INK), **TAG)
    if box.stack_label:  # a tag on the top left corner: how many heads the stack holds
        ax.text(left + 0.06, top, box.stack_label, ha="left", bbox=_tag(STACK_INK), **TAG)


def _tag(colour: str) -> dict[str, Any]:
    return {"boxstyle": "round,pad=0.18", "linewidth": 0, "facecolor": colour}


def fitted(text: str, width: float, size: float, weight: str = "normal") -> float:
    """The font size, at most `size` points, at which the longest line of `text` fits in
    `width` inches (measured with the font's own advances)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    font = FontProperties(family=SANS, weight=weight, size=size)
    longest = max(
        text_to_path.get_text_width_height_descent(line, font, ismath=False)[0]
        for line in text.split("\n")
    )
    return min(size, size * width * 72 / longest) if longest > 0 else size


def _edge(ax: Axes, edge: Edge, source: Box, target: Box, layout: Layout) -> None:
    from matplotlib.patches import FancyArrowPatch

    _, s_bottom, s_right, _ = layout.extent(source)
    t_left, _, _, t_top = layout.extent(target)
    small: dict[str, Any] = {"family": SANS, "color": AXES_INK, "ha": "left", "va": "top"}
    if source.row == target.row:  # the mask, beside the softmax: a horizontal arrow
        y = t_top - BOX_H / 2
        start, end = (s_right, y), (t_left, y)
        above: dict[str, Any] = {**small, "ha": "center", "va": "bottom"}
        ax.text((s_right + t_left) / 2, y + 0.06, edge.note, fontsize=7.5, **above)
    else:
        # From a narrow box straight down; from a wide box, down to the narrow one below it.
        x = layout.lanes[target.lane] if source.span is not None else layout.lanes[source.lane]
        start, end = (x, s_bottom), (x, t_top)
        if edge.shape is not None and edge.stage is not None:
            y = s_bottom - 0.05  # just below the box it leaves, clear of the stack below
            bold: dict[str, Any] = {**small, "family": MONO, "color": INK, "weight": "bold"}
            shape = ax.text(x + 0.08, y, shape_text(edge.shape), fontsize=9, **bold)
            shape.set_gid(f"shape-{edge.stage}")
            axes = ax.text(x + 0.08, y - 0.17, ", ".join(edge.axes), fontsize=8, **small)
            axes.set_gid(f"axes-{edge.stage}")
    head: dict[str, Any] = {"arrowstyle": "-|>", "mutation_scale": 11, "shrinkA": 0, "shrinkB": 1}
    arrow = FancyArrowPatch(start, end, color=EDGE_INK, linewidth=1.1, **head)
    ax.add_patch(arrow)


def _group(ax: Axes, group: Group, layout: Layout) -> None:
    """A dashed frame around the boxes of one d2l function, named on its left side."""
    from matplotlib.patches import FancyBboxPatch

    left = layout.lanes[group.lanes[0]] - BOX_W / 2 - 0.18
    right = layout.lanes[group.lanes[1]] + LABEL_W  # the arrows' labels inside
    top = layout.top(group.rows[0]) + 0.21  # above the stacked cards and their tag
    bottom = layout.top(group.rows[1]) - BOX_H - 0.44  # below the last box's arrow label
    frame = FancyBboxPatch((left, bottom), right - left, top - bottom, facecolor="none")
    frame.set(boxstyle="round,pad=0,rounding_size=0.1", edgecolor=GROUP_INK)
    frame.set(linewidth=1.0, linestyle=(0, (4, 3)))
    ax.add_patch(frame)
    side = {**CENTRED, "ha": "right", "family": MONO, "color": GROUP_INK, "rotation": 90}
    ax.text(left - 0.08, (top + bottom) / 2, group.label, fontsize=9, **side)


def _footer(ax: Axes, diagram: Diagram, layout: Layout) -> None:
    """The colours used, then the notes: totals, shared heads, masked keys."""
    from matplotlib.patches import Rectangle

    y, x = layout.footer - 0.25, LEFT - 0.4
    kinds = {box.kind for box in diagram.boxes}
    for kind, words in (entry for entry in LEGEND if entry[0] in kinds):
        swatch = Rectangle((x, y - 0.07), 0.22, 0.14, facecolor=COLOURS[kind], edgecolor=EDGE_INK)
        ax.add_patch(swatch)
        ax.text(x + 0.3, y, words, fontsize=8, **{**CENTRED, "ha": "left"})
        x += 0.3 + 0.062 * len(words) + 0.3  # about the width of an 8 pt character
    for line in diagram.notes:
        y -= NOTE_LINE
        ax.text(LEFT - 0.4, y, line, fontsize=8.5, **{**CENTRED, "ha": "left"})
