"""The stage table and its summary as a rich renderable. Builds; never prints.

Wide consoles (a pipe or CI log gets 160 columns) show every column. A narrow terminal gets a
layout that still reads: the d2l code moves under the stage's name, the axes under the shape
(so the code keeps a column wide enough for a line of code at 80 columns), and the value
ranges (the least needed column) are left to `--format markdown`/`json`.
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mha_cli.messages import shape_text
from mha_cli.records import RunRecord, Stage
from mha_cli.render import numbers
from mha_cli.render.summary_lines import summary_lines

WIDE = 150  # columns from which the full table fits without squeezing the code column


def stage_table(report: RunRecord, width: int | None = None) -> Table:
    wide = width is None or width >= WIDE
    table = Table(
        title=Text(_title(report)), title_justify="left", show_footer=True, header_style="bold"
    )
    if not wide:  # no vertical rules, one space between columns: every column keeps its room
        table.box, table.pad_edge, table.collapse_padding = box.SIMPLE_HEAD, False, True
    summary = report.summary
    table.add_column("#", justify="right", footer="")
    if wide:
        table.add_column("stage", footer="total", no_wrap=True)
        table.add_column("d2l code", style="cyan", overflow="fold")
    else:
        table.add_column("stage / d2l code", footer="total", overflow="fold", min_width=14)
    if wide:
        table.add_column("shape", no_wrap=True)
        table.add_column("axes", min_width=10)
    else:
        table.add_column("shape / axes", min_width=13)
    table.add_column("params", justify="right", footer=numbers.count(summary.total_params))
    table.add_column("FLOPs", justify="right", footer=numbers.count(summary.total_flops))
    table.add_column("bytes", justify="right", footer=numbers.size(summary.activation_bytes))
    if wide:
        table.add_column("values", justify="right")
    for index, stage in enumerate(report.stages):
        name: list[Text] = (
            [Text(stage.name), Text(stage.code)]  # Text, not markup: `[...]` must not vanish
            if wide
            else [_name_and_code(stage)]
        )
        axes = Text(", ".join(stage.axes))
        shape: list[Text | str] = (
            [shape_text(stage.shape), axes]
            if wide
            else [Text.assemble(shape_text(stage.shape), "\n", (axes.plain, "dim"))]
        )
        cells = [
            str(index),
            *name,
            *shape,
            numbers.count(stage.params),
            numbers.count(stage.flops) if stage.flops else "",
            "view" if stage.view else numbers.size(stage.bytes),
        ]
        if wide:
            cells.append(_values(stage))
        table.add_row(*cells)
    return table


def inspect_renderable(report: RunRecord, width: int | None = None) -> RenderableType:
    """The table and the lines below it; `width` is the console's, to choose the layout."""
    lines = [Text(line) for line in summary_lines(report)]
    if width is not None and width < WIDE:
        lines.append(
            Text(
                f"(value ranges and a code column: a terminal of {WIDE}+ columns, "
                "or --format markdown)",
                style="dim",
            )
        )
    return Group(stage_table(report, width), *lines)


def _name_and_code(stage: Stage) -> Text:
    """The stage's name, and under it its d2l code unless that only repeats the name."""
    if stage.code == stage.name:
        return Text(stage.name)
    return Text.assemble(stage.name, "\n", (stage.code, "cyan"))


def _values(stage: Stage) -> Text:
    text = numbers.value_range(stage.value_range)
    return Text(text, style="dim" if stage.value_range is None else "")


def _title(report: RunRecord) -> str:
    spec = report.spec
    return (
        f"{_layer_name(spec)}: batch {spec['batch']}, {spec['queries']} queries, "
        f"{spec['kv']} key-value pairs, {spec['hiddens']} hiddens, {spec['heads']} heads"
    )


def _layer_name(spec: dict) -> str:  # type: ignore[type-arg]
    if spec["score"] == "additive":
        return "AdditiveAttention"
    if spec["kv_heads"] != spec["heads"]:
        kind = "grouped-query" if spec["kv_heads"] > 1 else "multi-query"
        return f"MultiHeadAttention ({kind})"
    return "MultiHeadAttention"
