"""Draw a `Diagram` with matplotlib alone (no Graphviz): boxes, arrows, and on every arrow the
shape and axes of the tensor it carries.

The picture reads top to bottom, in the order of the stage table. One axes covers the figure
and its data units are inches, so sizes below are inches and fonts points. Every shape label
is a text artist whose SVG group id is `shape-STAGE` (and `axes-STAGE` for its axis names):
with `svg.fonttype` none the words stay text, and a test reads them back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mha_cli.messages import shape_text
from mha_cli.render.diagram.model import MAIN_LANE, Box, Diagram, Edge, Group

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLUMN = 2.75  # between the centres of two lanes
BOX_W, BOX_H = 2.2, 0.5
ROW = 1.1  # between the tops of two rows; the gap holds the arrow's two-line label
LEFT, RIGHT = 0.75, 1.2  # margins: a group's label on the left, the last lane's labels right
LABEL_W = 2.15  # from an arrow to the end of its longest label
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
INK, EDGE_INK, AXES_INK, STACK_INK, GROUP_INK = (
    "#222222",
    "#555555",
    "#666666",
    "#674ea7",
    "#999999",
)


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
    ax.text(
        LEFT - 0.4,
        y - 0.3,
        "each arrow carries the tensor of one row of `mha inspect`: its shape and axes; "
        "stacked boxes keep the heads apart",
        fontsize=8.5,
        color=AXES_INK,
        family=SANS,
        va="center",
    )


def _box(ax: Axes, box: Box, layout: Layout) -> None:
    from matplotlib.patches import FancyBboxPatch

    left, bottom, right, top = layout.extent(box)
    face = COLOURS.get(box.kind, COLOURS["compute"])
    rounding = "round,pad=0,rounding_size=0.22" if box.kind in ("input", "output") else None
    style = rounding or "round,pad=0,rounding_size=0.05"
    cards = min(box.stack - 1, MAX_CARDS)
    for i in range(cards, 0, -1):  # the cards behind, up and to the right
        ax.add_patch(
            FancyBboxPatch(
                (left + i * CARD, bottom + i * CARD),
                right - left,
                top - bottom,
                boxstyle=style,
                facecolor=face,
                edgecolor=STACK_INK,
                linewidth=0.7,
            )
        )
    edge = STACK_INK if cards else EDGE_INK
    ax.add_patch(
        FancyBboxPatch(
            (left, bottom),
            right - left,
            top - bottom,
            boxstyle=style,
            facecolor=face,
            edgecolor=edge,
            linewidth=1.0,
        )
    )
    middle, centre = top - BOX_H / 2, (left + right) / 2
    room = right - left - 0.12
    if box.detail:
        ax.text(
            centre,
            middle + 0.09,
            box.title,
            ha="center",
            va="center",
            fontsize=fitted(box.title, room, 10, "bold"),
            weight="bold",
            family=SANS,
            color=INK,
        )
        ax.text(
            centre,
            middle - 0.03,
            box.detail,
            ha="center",
            va="top",
            fontsize=fitted(box.detail, room, 8),
            family=SANS,
            color=INK,
            linespacing=1.25,
        )
    else:
        ax.text(
            centre,
            middle,
            box.title,
            ha="center",
            va="center",
            fontsize=fitted(box.title, room, 10.5, "bold"),
            weight="bold",
            family=SANS,
            color=INK,
        )
    if box.stack_label:  # a tag on the top left corner: how many heads the stack holds
        ax.text(
            left + 0.06,
            top,
            box.stack_label,
            ha="left",
            va="center",
            fontsize=7,
            color="white",
            family=SANS,
            weight="bold",
            bbox={"boxstyle": "round,pad=0.18", "facecolor": STACK_INK, "linewidth": 0},
        )


def fitted(text: str, width: float, size: float, weight: str = "normal") -> float:
    """The font size, at most `size` points, at which the longest line of `text` fits in
    `width` inches (measured on the font's own glyph outlines)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    font = FontProperties(family=SANS, weight=weight)
    longest = max(
        TextPath((0, 0), line or " ", size=size, prop=font).get_extents().width
        for line in text.split("\n")
    )
    return min(size, size * width * 72 / longest) if longest > 0 else size


def _edge(ax: Axes, edge: Edge, source: Box, target: Box, layout: Layout) -> None:
    from matplotlib.patches import FancyArrowPatch

    _, s_bottom, s_right, _ = layout.extent(source)
    t_left, _, _, t_top = layout.extent(target)
    if source.row == target.row:  # the mask, beside the softmax: a horizontal arrow
        y = t_top - BOX_H / 2
        start, end = (s_right, y), (t_left, y)
        ax.text(
            (s_right + t_left) / 2,
            y + 0.06,
            edge.note,
            ha="center",
            va="bottom",
            fontsize=7.5,
            color=AXES_INK,
            family=SANS,
        )
    else:
        # From a narrow box straight down; from a wide box, down to the narrow one below it.
        x = layout.lanes[target.lane] if source.span is not None else layout.lanes[source.lane]
        start, end = (x, s_bottom), (x, t_top)
        if edge.shape is not None and edge.stage is not None:
            y = s_bottom - 0.05  # just below the box it leaves, clear of the stack below
            shape = ax.text(
                x + 0.08,
                y,
                shape_text(edge.shape),
                ha="left",
                va="top",
                fontsize=9,
                family=MONO,
                color=INK,
                weight="bold",
            )
            shape.set_gid(f"shape-{edge.stage}")
            axes = ax.text(
                x + 0.08,
                y - 0.17,
                ", ".join(edge.axes),
                ha="left",
                va="top",
                fontsize=8,
                family=SANS,
                color=AXES_INK,
            )
            axes.set_gid(f"axes-{edge.stage}")
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=11,
            color=EDGE_INK,
            linewidth=1.1,
            shrinkA=0,
            shrinkB=1,
        )
    )


def _group(ax: Axes, group: Group, layout: Layout) -> None:
    """A dashed frame around the boxes of one d2l function, named on its left side."""
    from matplotlib.patches import FancyBboxPatch

    left = layout.lanes[group.lanes[0]] - BOX_W / 2 - 0.18
    right = layout.lanes[group.lanes[1]] + LABEL_W  # the arrows' labels inside
    top = layout.top(group.rows[0]) + 0.21  # above the stacked cards and their tag
    bottom = layout.top(group.rows[1]) - BOX_H - 0.44  # below the last box's arrow label
    ax.add_patch(
        FancyBboxPatch(
            (left, bottom),
            right - left,
            top - bottom,
            boxstyle="round,pad=0,rounding_size=0.1",
            facecolor="none",
            edgecolor=GROUP_INK,
            linewidth=1.0,
            linestyle=(0, (4, 3)),
        )
    )
    ax.text(
        left - 0.08,
        (top + bottom) / 2,
        group.label,
        rotation=90,
        ha="right",
        va="center",
        fontsize=9,
        family=MONO,
        color=GROUP_INK,
    )


def _footer(ax: Axes, diagram: Diagram, layout: Layout) -> None:
    from matplotlib.patches import Rectangle

    y = layout.footer - 0.25
    x = LEFT - 0.4
    for kind, words in LEGEND:
        ax.add_patch(
            Rectangle(
                (x, y - 0.07),
                0.22,
                0.14,
                facecolor=COLOURS[kind],
                edgecolor=EDGE_INK,
                linewidth=0.7,
            )
        )
        ax.text(x + 0.3, y, words, fontsize=8, va="center", family=SANS, color=INK)
        x += 0.3 + 0.062 * len(words) + 0.3  # about the width of an 8 pt character
    for line in diagram.notes:
        y -= NOTE_LINE
        ax.text(LEFT - 0.4, y, line, fontsize=8.5, va="center", family=SANS, color=INK)
