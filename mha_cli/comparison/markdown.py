"""`mha compare` as GitHub-flavoured Markdown, for READMEs and CI summaries."""

from __future__ import annotations

from mha_cli.comparison import lines
from mha_cli.comparison.records import ComparisonRecord, HeadDifference, ImplementationResult


def compare_markdown(record: ComparisonRecord) -> str:
    parts = [f"**{lines.title(record)}**", "", _stage_table(record), "", lines.cell_legend(record)]
    with_heads = [r for r in record.compared if r.heads]
    if with_heads:
        parts += ["", _head_table(with_heads)]
    for heading, entries in lines.sections(record):
        parts += ["", f"**{heading}:**", "", *(f"- {entry}" for entry in entries)]
    return "\n".join(parts) + "\n"


def _stage_table(record: ComparisonRecord) -> str:
    columns = record.compared
    rows = [["stage", "compared as", "d2l vs float64", *(f"`{r.name}`" for r in columns)]]
    for stage in record.stages:
        reference = lines.number(stage.reference_error)
        if stage.reference_error:
            reference += f" at {stage.reference_where.short()}"
        cells = [f"`{stage.name}`", f"{stage.what} ({', '.join(stage.axes)})", reference]
        for result in columns:
            found = result.stage(stage.name)
            value, where = lines.cell(found)
            cells.append(f"{value} at {where}" if where else value)
        rows.append(cells)
    return _table(rows)


def _head_table(columns: list[ImplementationResult]) -> str:
    rows = [["head", *(f"`{r.name}`" for r in columns)]]
    for head in range(len(columns[0].heads)):
        rows.append([str(head), *(_head_cell(r.heads[head]) for r in columns)])
    return _table(rows)


def _head_cell(entry: HeadDifference) -> str:
    text = lines.number(entry.difference) + ("" if entry.agrees else f" {lines.FAIL}")
    return f"{text} ({entry.stage})" if entry.difference else text


def _table(rows: list[list[str]]) -> str:
    rows = [rows[0], ["---"] * len(rows[0]), *rows[1:]]
    return "\n".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows
    )
