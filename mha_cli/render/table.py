"""The stage table and its summary as a rich renderable. Builds; never prints.

Wide consoles (a pipe or CI log gets 160 columns) show every column. A narrow terminal gets a
layout that still reads: the d2l code moves under the stage's name, and the value ranges
(the least needed column) are left to `--format markdown`/`json`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mha_cli.layer.records import RunRecord, Stage
from mha_cli.messages import shape_text
from mha_cli.render import numbers
from mha_cli.render.summary_lines import summary_lines
from mha_cli.spec.spec import FinalSpec

if TYPE_CHECKING:
    from mha_cli.layer.report import StagesShown

WIDE = 150  # columns from which the full table fits without squeezing the code column


def stage_table(
    report: RunRecord, width: int | None = None, only: Collection[str] | None = None
) -> Table:
    """Every stage, or those named in `only` (each keeps its number in the whole table)."""
    wide = width is None or width >= WIDE
    table = Table(
        title=Text(layer_title(report)), title_justify="left", show_footer=True, header_style="bold"
    )
    summary = report.summary
    rows = [_cells(index, stage) for index, stage in enumerate(report.stages)]
    footers = ["", "total", "", "", numbers.count(summary.total_params)]
    footers += [numbers.count(summary.total_flops), numbers.size(summary.activation_bytes)]
    if wide:
        _wide_columns(table, footers)
        for index, stage in _shown(report, only):
            row = rows[index]
            table.add_row(row[0], Text(stage.name), Text(stage.code), *row[2:], _values(stage))
        return table
    fixed = _narrow_columns(table, footers, rows, width or WIDE)
    for index, stage in _shown(report, only):
        shape = Text.assemble(str(rows[index][2]), "\n", (", ".join(stage.axes), "dim"))
        table.add_row(rows[index][0], _name_and_code(stage, fixed), shape, *rows[index][4:])
    return table


def _shown(report: RunRecord, only: Collection[str] | None) -> list[tuple[int, Stage]]:
    return [(i, s) for i, s in enumerate(report.stages) if only is None or s.name in only]


def _cells(index: int, stage: Stage) -> list[str | Text]:
    """#, (name), shape, axes, params, FLOPs, bytes: what both layouts show alike."""
    return [
        str(index),
        stage.name,
        shape_text(stage.shape),
        Text(", ".join(stage.axes)),
        numbers.count(stage.params),
        numbers.count(stage.flops) if stage.flops else "",
        "view" if stage.view else numbers.size(stage.bytes),
    ]


def _wide_columns(table: Table, footers: list[str]) -> None:
    table.add_column("#", justify="right", footer=footers[0])
    table.add_column("stage", footer=footers[1], no_wrap=True)
    table.add_column("d2l code", style="cyan", overflow="fold")
    table.add_column("shape", no_wrap=True)
    table.add_column("axes")
    for header, footer in zip(("params", "FLOPs", "bytes"), footers[4:], strict=True):
        table.add_column(header, justify="right", footer=footer)
    table.add_column("values", justify="right")


def _narrow_columns(
    table: Table, footers: list[str], rows: list[list[str | Text]], width: int
) -> int:
    """Columns for a narrow terminal: no vertical rules, the axes under the shape, the numbers
    whole, and the room left to the stage with its code under it, pre-wrapped to fit.
    Returns the width the code is wrapped to."""
    table.box, table.pad_edge, table.collapse_padding = box.SIMPLE_HEAD, False, True
    headers = ("#", "stage / d2l code", "shape / axes", "", "params", "FLOPs", "bytes")

    def widest(column: int) -> int:
        texts = [str(row[column]) for row in rows] + [headers[column], footers[column]]
        return max(len(text) for text in texts)

    # rich counts a column's width without its padding; between columns the box's blank rule
    # and one space of padding (collapsed), and a blank at each edge: 2 per column in all.
    exact = {k: widest(k) for k in (0, 4, 5, 6)}
    left = width - sum(exact.values()) - 2 * 6  # for the stage/code and the shape/axes
    shape_width = max(widest(2), min(34, left * 2 // 5))
    code_width = max(16, left - shape_width)
    table.add_column("#", justify="right", width=exact[0], footer=footers[0])
    table.add_column(headers[1], footer=footers[1], width=code_width)
    table.add_column(headers[2], width=shape_width)
    for k in (4, 5, 6):
        table.add_column(headers[k], justify="right", width=exact[k], footer=footers[k])
    return code_width


def inspect_renderable(
    report: RunRecord, width: int | None = None, only: Collection[str] | None = None
) -> RenderableType:
    """The table and the lines below it; `width` is the console's, to choose the layout."""
    lines = [Text(line) for line in summary_lines(report)]
    if only is not None:
        shown = f"showing {len(only)} of {len(report.stages)} stages (--stages); the totals are "
        lines.insert(0, Text(shown + "the whole layer's", style="dim"))
    if width is not None and width < WIDE:
        lines.append(
            Text(
                f"(value ranges and a code column: a terminal of {WIDE}+ columns, "
                "or --format markdown)",
                style="dim",
            )
        )
    return Group(stage_table(report, width, only), *lines)


def shown_renderable(shown: StagesShown, width: int | None = None) -> RenderableType:
    """`mha inspect --stages`: the table of some stages."""
    return inspect_renderable(shown.report, width, only=shown.names)


def _name_and_code(stage: Stage, width: int) -> Text:
    """The stage's name, and under it its d2l code (unless that only repeats the name), broken
    at spaces or commas so that a call such as `self.W_q(queries)` stays whole."""
    if stage.code == stage.name:
        return Text(stage.name)
    return Text.assemble(stage.name, "\n", (_wrap_code(stage.code, width), "cyan"))


def _wrap_code(code: str, width: int) -> str:
    """Lines of at most `width`, broken at spaces (rich would cut a long call anywhere)."""
    import textwrap

    return "\n".join(textwrap.wrap(code, width, break_on_hyphens=False))


def _values(stage: Stage) -> Text:
    text = numbers.value_range(stage.value_range)
    return Text(text, style="dim" if stage.value_range is None else "")


def layer_title(report: RunRecord) -> str:
    """The layer and its sizes, as the table and the diagram title them."""
    spec = report.spec
    return (
        f"{_layer_name(spec)}: batch {spec.batch}, {spec.queries} queries, "
        f"{spec.kv} key-value pairs, {spec.hiddens} hiddens, {spec.heads} heads"
    )


def _layer_name(spec: FinalSpec) -> str:
    if spec.score == "additive":
        return "AdditiveAttention"
    if spec.kv_heads != spec.heads:
        kind = "grouped-query" if spec.kv_heads > 1 else "multi-query"
        return f"MultiHeadAttention ({kind})"
    return "MultiHeadAttention"
