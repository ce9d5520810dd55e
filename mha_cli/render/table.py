"""The stage table and its summary as a rich renderable. Builds; never prints."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mha_cli.messages import shape_text
from mha_cli.records import Report
from mha_cli.render import numbers
from mha_cli.render.summary_lines import summary_lines


def stage_table(report: Report) -> Table:
    spec = report.spec
    title = (
        f"{_layer_name(spec)}: batch {spec['batch']}, {spec['queries']} queries, "
        f"{spec['kv']} key-value pairs, {spec['hiddens']} hiddens, {spec['heads']} heads"
    )
    table = Table(title=Text(title), title_justify="left", show_footer=True, header_style="bold")
    table.add_column("#", justify="right", footer="")
    table.add_column("stage", footer="total", no_wrap=True)
    table.add_column("d2l code", style="cyan", overflow="fold")
    table.add_column("shape", no_wrap=True)
    table.add_column("axes")
    table.add_column("params", justify="right", footer=numbers.count(report.summary.total_params))
    table.add_column("FLOPs", justify="right", footer=numbers.count(report.summary.total_flops))
    table.add_column("bytes", justify="right", footer=numbers.size(report.summary.activation_bytes))
    table.add_column("values", justify="right")
    for index, stage in enumerate(report.stages):
        table.add_row(
            str(index),
            stage.name,
            Text(stage.code),  # Text, not markup: `[...]` in code must not vanish
            shape_text(stage.shape),
            Text(", ".join(stage.axes)),
            numbers.count(stage.params),
            numbers.count(stage.flops) if stage.flops else "",
            "view" if stage.view else numbers.size(stage.bytes),
            Text(
                numbers.value_range(stage.value_range),
                style="dim" if stage.value_range is None else "",
            ),
        )
    return table


def inspect_renderable(report: Report) -> RenderableType:
    lines = [Text(line) for line in summary_lines(report)]
    return Group(stage_table(report), *lines)


def _layer_name(spec: dict) -> str:  # type: ignore[type-arg]
    if spec["score"] == "additive":
        return "AdditiveAttention"
    if spec["kv_heads"] != spec["heads"]:
        return (
            "MultiHeadAttention (grouped-query)"
            if spec["kv_heads"] > 1
            else "MultiHeadAttention (multi-query)"
        )
    return "MultiHeadAttention"
