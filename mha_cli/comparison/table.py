"""`mha compare` as rich renderables: a table of stages by implementation, a table of heads,
then the verdicts, the fully masked rows and the notes. Builds; never prints."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from mha_cli.comparison import lines
from mha_cli.comparison.records import ComparedStage, ComparisonRecord, ImplementationResult

GIVEN = "d2l's"  # SDPA starts from d2l's own projected heads: nothing of its own to compare
STAGE_WIDTH, COLUMN_WIDTH = 44, 19  # the stage column with its description; a number column
MHA, SHORT = "nn.MultiheadAttention", "nn.MHA"  # the long name and its narrow-console form


def wide_enough(record: ComparisonRecord, width: int | None) -> bool:
    """Room for each stage's description beside its name, and every column unsqueezed."""
    return width is None or width >= STAGE_WIDTH + COLUMN_WIDTH * (len(record.compared) + 1)


def stage_table(record: ComparisonRecord, width: int | None = None) -> Table:
    wide = wide_enough(record, width)
    table = Table(title=Text(lines.title(record)), title_justify="left", header_style="bold")
    if not wide:  # no vertical rules, one space between columns: every column keeps its room
        table.box, table.pad_edge, table.collapse_padding = box.SIMPLE_HEAD, False, True
        table.show_edge = False
    table.add_column("stage (compared as)", overflow="fold")
    table.add_column("d2l vs float64", justify="right", overflow="fold")
    columns = record.compared
    for result in columns:
        table.add_column(_heading(result, wide), justify="right", overflow="fold")
    for stage in record.stages:
        what = f"  {stage.what}" if wide else ""
        row: list[Text] = [
            Text.assemble((stage.name, "bold"), f"{what}\n", "(" + ", ".join(stage.axes) + ")"),
            _pair(lines.number(stage.reference_error), _where(stage.reference_error, stage), ""),
        ]
        for result in columns:
            found = result.stage(stage.name)
            if found is None:
                row.append(Text(GIVEN if _given(result, stage.name) else "—", style="dim"))
                continue
            value, where = lines.cell(found)
            row.append(_pair(value, where, "" if found.agrees else "bold red"))
        table.add_row(*row)
    return table


def head_table(record: ComparisonRecord, width: int | None = None) -> Table | None:
    """The largest difference of each head, for the implementations that show heads."""
    columns = [r for r in record.compared if r.heads]
    if not columns:
        return None
    table = Table(
        title=Text("largest |implementation - d2l| per head, over the stages with a heads axis"),
        title_justify="left",
        header_style="bold",
    )
    table.add_column("head", justify="right")
    for result in columns:
        table.add_column(_heading(result, wide_enough(record, width)), justify="right")
    for head in range(len(columns[0].heads)):
        row: list[Text | str] = [str(head)]
        for result in columns:
            entry = result.heads[head]
            mark = "" if entry.agrees else f" {lines.FAIL}"
            row.append(
                Text.assemble(
                    (lines.number(entry.difference) + mark, "" if entry.agrees else "bold red"),
                    (f" {entry.stage}" if entry.difference else "", "dim"),
                )
            )
        table.add_row(*row)
    return table


def compare_renderable(record: ComparisonRecord, width: int | None = None) -> RenderableType:
    """Everything `mha compare` prints; `width` is the console's, to choose the layout."""
    parts: list[RenderableType] = [stage_table(record, width), Text(lines.cell_legend(record))]
    if not wide_enough(record, width):
        parts.append(Text(f"{SHORT}: {MHA}; no weights: called with need_weights=False"))
    heads = head_table(record, width)
    if heads is not None:
        parts += [Text(""), heads]
    for heading, entries in lines.sections(record):
        parts += [Text(""), Text(f"{heading}:"), _indented(entries)]
    return Group(*parts)


def _indented(entries: list[str]) -> Padding:
    """Entries two spaces in, wrapped lines kept under their first line."""
    grid = Table.grid()
    grid.add_column()
    for entry in entries:
        failed = entry.startswith(lines.FAIL)
        grid.add_row(Text(entry, style="red" if failed else ""))
    return Padding(grid, (0, 0, 0, 2), expand=False)


def _given(result: ImplementationResult, stage: str) -> bool:
    """SDPA's projections are d2l's own tensors."""
    return result.key.startswith("sdpa") and stage in ("W_q", "W_k", "W_v")


def _where(value: float, stage: ComparedStage) -> str:
    return "" if value == 0 else stage.reference_where.short()


def _heading(result: ImplementationResult, wide: bool) -> str:
    """The name, wrapped at its comma; nn.MultiheadAttention shortened in a narrow console."""
    if wide:
        return result.name.replace(", ", "\n")
    return result.name.replace(MHA, SHORT).replace(", need_weights=False", "\nno weights")


def _pair(value: str, where: str, style: str) -> Text:
    if not where:
        return Text(value, style=style)
    return Text.assemble((value, style), "\n", (where, "dim"))
