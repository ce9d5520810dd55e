"""The traced table as a rich renderable and as markdown. Builds; never prints.

The same look as `mha inspect`'s stage table (`table.py`): one row per step, with the user's
source line where inspect shows d2l's code, and group rows for submodules. Wide consoles get
a column each; a narrow terminal gets the source under the step's name, as inspect does.
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mha_cli.messages import shape_text
from mha_cli.render import numbers
from mha_cli.render.table import WIDE
from mha_cli.tracing.lines import trace_lines
from mha_cli.tracing.records import INPUT, TraceGroup, TraceRecord, TraceStep

INDENT = "  "


def trace_table(record: TraceRecord, width: int | None = None) -> Table:
    wide = width is None or width >= WIDE
    checked = record.check is not None
    summary = record.summary
    title = Text(_title(record))
    # The totals are the figures' (FLOPs, bytes): --check shows the reference column instead.
    table = Table(title=title, title_justify="left", show_footer=not checked, header_style="bold")
    if not wide:
        table.box, table.pad_edge, table.collapse_padding = box.SIMPLE_HEAD, False, True
    table.add_column("#", justify="right", footer="")
    if wide:
        table.add_column("step", footer="total", no_wrap=True)
        table.add_column("source (your code)", overflow="fold", ratio=1, min_width=30)
    else:
        table.add_column("step / source", footer="total", overflow="fold", min_width=24, ratio=1)
    table.add_column("shape", no_wrap=True)
    table.add_column("axes", min_width=10, max_width=36 if wide else 20)
    # With --check, the reference column takes the place of the figures (shown without it).
    if wide and not checked:
        table.add_column("FLOPs", justify="right", footer=numbers.count(summary.total_flops))
    if not checked:
        table.add_column("bytes", justify="right", footer=numbers.size(summary.activation_bytes))
    if wide and not checked:
        table.add_column("values", justify="right", no_wrap=True)
    if checked:
        table.add_column("= reference", max_width=32 if wide else 18)
    for row in record.rows:
        if isinstance(row, TraceGroup):
            table.add_row(*_group_cells(row, wide, checked))
        else:
            table.add_row(*_step_cells(row, wide, checked))
    return table


def trace_renderable(record: TraceRecord, width: int | None = None) -> RenderableType:
    lines = [Text(line) for line in trace_lines(record)]
    return Group(trace_table(record, width), *lines)


def _step_cells(step: TraceStep, wide: bool, checked: bool) -> list[str | Text]:
    name = Text(INDENT * step.depth + step.stage.name, style="dim" if step.kind == INPUT else "")
    source = _source(step)
    cells: list[str | Text] = [str(step.index)]
    if wide:
        cells += [name, source]
    else:
        cells.append(Text.assemble(name, "\n", source) if source.plain else name)
    cells += [shape_text(step.stage.shape), Text(", ".join(step.axis_labels()))]
    if checked:
        return [*cells, _reference(step)]
    if wide:
        cells.append(numbers.count(step.stage.flops) if step.stage.flops else "")
    cells.append("view" if step.stage.view else numbers.size(step.stage.bytes))
    if wide:
        cells.append(numbers.value_range(step.stage.value_range))
    return cells


def _group_cells(group: TraceGroup, wide: bool, checked: bool) -> list[str | Text]:
    """A submodule: its name where steps have theirs, its class and parameters as its source."""
    name = Text(INDENT * group.depth + group.module, style="bold")
    params = f", {numbers.count(group.params)} parameters" if group.params else ""
    kind = Text(f"{group.type_name}{params}", style="bold")
    cells: list[str | Text] = ["", name, kind] if wide else ["", Text.assemble(name, "  ", kind)]
    # shape and axes, then the reference, or (FLOPs), bytes and (values)
    rest = 2 + (1 if checked else 1 + (2 if wide else 0))
    return cells + [""] * rest


def _source(step: TraceStep) -> Text:
    if not step.location:
        return Text("")
    return Text.assemble((step.location, "dim"), "\n", (step.stage.code, "cyan"))


def _reference(step: TraceStep) -> Text:
    if step.how in ("differs", "first to differ"):
        return Text(f"✗ {step.how}", style="bold red" if step.how != "differs" else "red")
    if not step.reference:
        return Text("")
    return Text(step.reference + (f" ({step.how})" if step.how else ""), style="green")


def _title(record: TraceRecord) -> str:
    spec, summary = record.spec, record.summary
    return (
        f"trace of {summary.module} ({record.target}): batch {spec.batch}, "
        f"{spec.queries} queries, {spec.kv} key-value pairs, {spec.hiddens} hiddens, "
        f"{spec.heads} heads"
    )


_HEADER = ("#", "step", "source", "shape", "axes", "FLOPs", "bytes", "values")


def trace_markdown(record: TraceRecord) -> str:
    header = _HEADER + (("= reference",) if record.check is not None else ())
    rows = [header, tuple("---" for _ in header)]
    for row in record.rows:
        if isinstance(row, TraceGroup):
            params = f", {numbers.count(row.params)} parameters" if row.params else ""
            cells = ["", f"**{row.module}**", f"{row.type_name}{params}"]
            rows.append(tuple(cells + [""] * (len(header) - len(cells))))
            continue
        source = f"{row.location} `{row.stage.code}`" if row.location else ""
        cells = [
            str(row.index),
            f"`{row.stage.name}`",
            source,
            shape_text(row.stage.shape),
            ", ".join(row.axis_labels()),
            numbers.count(row.stage.flops) if row.stage.flops else "",
            "view" if row.stage.view else numbers.size(row.stage.bytes),
            numbers.value_range(row.stage.value_range),
        ]
        if record.check is not None:
            cells.append(_reference(row).plain)
        rows.append(tuple(cells))
    table = "\n".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows
    )
    notes = "\n".join(f"- {line.strip()}" for line in trace_lines(record) if line.strip())
    return f"# {_title(record)}\n\n{table}\n\n{notes}\n"
