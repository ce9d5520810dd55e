"""`mha compare` as rich renderables: a table of stages by implementation, a table of heads,
then the verdicts, the fully masked rows and the notes. Builds; never prints."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from mha_cli.comparison import ComparedStage, ComparisonRecord, ImplementationResult
from mha_cli.render.compare import lines

GIVEN = "d2l's"  # SDPA starts from d2l's own projected heads: nothing of its own to compare


def stage_table(record: ComparisonRecord) -> Table:
    table = Table(title=Text(lines.title(record)), title_justify="left", header_style="bold")
    table.add_column("stage (compared as)")
    table.add_column("d2l vs float64", justify="right")
    columns = record.compared
    for result in columns:
        table.add_column(_heading(result), justify="right")
    for stage in record.stages:
        row: list[Text] = [
            Text.assemble(
                (stage.name, "bold"), f"  {stage.what}\n", ("(" + ", ".join(stage.axes) + ")")
            ),
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


def head_table(record: ComparisonRecord) -> Table | None:
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
        table.add_column(_heading(result), justify="right")
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


def compare_renderable(record: ComparisonRecord) -> RenderableType:
    parts: list[RenderableType] = [stage_table(record), Text(lines.cell_legend(record))]
    heads = head_table(record)
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


def _heading(result: ImplementationResult) -> str:
    return result.name.replace(", ", "\n")


def _pair(value: str, where: str, style: str) -> Text:
    if not where:
        return Text(value, style=style)
    return Text.assemble((value, style), "\n", (where, "dim"))
