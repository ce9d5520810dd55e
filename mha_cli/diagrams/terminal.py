"""The diagram in a terminal: a rich tree with one branch per lane (queries, keys, values, the
mask) and one where they meet, each step followed by the shape and axes it hands on.

Builds a renderable; prints nothing. Every text is a `Text`, never markup: `[3, 2]` and
`(batch heads)` must not be read as styles.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from mha_cli.diagrams.model import MAIN_LANE, MASK_LANE, Box, Diagram, Edge
from mha_cli.messages import shape_text
from mha_cli.render import numbers

LANE_NAMES = {
    MASK_LANE: "mask",
    "queries": "queries",
    "keys": "keys",
    "values": "values",
    MAIN_LANE: "where they meet: scores, softmax, weighted sum, then the heads concatenated",
}


def terminal_diagram(diagram: Diagram) -> RenderableType:
    """The tree, its legend and the notes under it."""
    tree = Tree(Text(diagram.title, style="bold"), guide_style="dim")
    outgoing = {edge.source: edge for edge in diagram.edges}
    incoming: dict[str, list[Edge]] = {}
    for edge in diagram.edges:
        incoming.setdefault(edge.target, []).append(edge)
    # the inputs' lanes first, the mask beside the main lane it feeds
    lanes = [lane for lane in diagram.lanes if lane != MASK_LANE] + [MASK_LANE, MAIN_LANE]
    for lane in lanes:
        boxes = sorted((b for b in diagram.boxes if b.lane == lane), key=lambda b: b.row)
        if not boxes:
            continue
        branch = tree.add(Text(LANE_NAMES.get(lane, lane), style="bold underline"))
        width = max(len(b.title) for b in boxes)
        for box in boxes:
            sources = [e.source for e in incoming.get(box.key, []) if _lane(diagram, e) != lane]
            branch.add(_node(box, outgoing.get(box.key), sources, width, _group(diagram, box)))
    legend = Text(
        "each step is followed by the tensor it hands on: → shape, axes (the rows of "
        "mha inspect); ×N heads: heads kept apart",
        style="dim",
    )
    notes = [Text(line) for line in diagram.notes]
    return Group(tree, legend, *notes)


def _node(box: Box, edge: Edge | None, sources: list[str], width: int, group: str) -> Text:
    more = box.detail or box.params or box.stack_label or sources or group
    line = Text(box.title.ljust(width) if more else box.title, style="bold")
    if box.detail:
        line.append("  " + box.detail.replace("\n", "; "), style="")
    if box.params:
        line.append(f"  {numbers.count(box.params)} params", style="blue")
    if box.stack_label:
        line.append(f"  {box.stack_label}", style="magenta")
    if sources:
        line.append(f"  ← {', '.join(sources)}", style="yellow")
    if group:
        line.append(f"  ({group})", style="dim")
    if edge is not None and edge.shape is not None:
        line.append("\n→ ", style="cyan")
        line.append(shape_text(edge.shape), style="bold cyan")
        line.append(f"  {', '.join(edge.axes)}", style="cyan")
    return line


def _lane(diagram: Diagram, edge: Edge) -> str:
    return diagram.box(edge.source).lane


def _group(diagram: Diagram, box: Box) -> str:
    """The d2l function (transpose_qkv, transpose_output) the box is a step of, if any."""
    for group in diagram.groups:
        lanes = diagram.lanes if group.lanes[1] != MAIN_LANE else (MAIN_LANE,)
        first = lanes.index(group.lanes[0]) if group.lanes[0] in lanes else 0
        inside = lanes[first : lanes.index(group.lanes[1]) + 1]
        if box.lane in inside and group.rows[0] <= box.row <= group.rows[1]:
            return group.label
    return ""


def diagram_markdown(diagram: Diagram) -> str:
    """The terminal's tree as a Markdown code block."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None, highlight=False).print(
        terminal_diagram(diagram)
    )
    return f"```text\n{buffer.getvalue()}```\n"
