"""The variants side by side: a rich table, Markdown and JSON, one column per variant, and
under it one sentence per difference. Builds; never prints."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mha_cli.layer_variants.compare import Column, VariantsComparison
from mha_cli.messages import shape_text
from mha_cli.render import numbers

Row = tuple[str, list[str]]


def comparison_rows(comparison: VariantsComparison) -> list[Row]:
    """(row name, one cell per column): settings, the stages that differ, then the figures."""
    columns = comparison.columns
    spec = comparison.spec

    def row(name: str, cell: Callable[[Column], str]) -> Row:
        return name, [cell(c) for c in columns]

    rows = [
        row("kv heads", lambda c: str(c.record.summary.num_kv_heads)),
        row("values", lambda c: _values(c.record.spec.value_mode)),
    ]
    for name in comparison.differing_stages():
        rows.append(row(name, functools.partial(_shape, name=name)))
    rows += [
        row("parameters", lambda c: numbers.count(c.record.summary.total_params)),
        row("FLOPs", lambda c: numbers.count(c.record.summary.total_flops)),
        row("activations", lambda c: numbers.size(c.record.summary.activation_bytes)),
        row("kv cache per token", lambda c: numbers.size(c.kv_cache_per_token)),
        row(
            f"kv cache, {spec.kv} tokens × batch {spec.batch}",
            lambda c: numbers.size(c.kv_cache),
        ),
    ]
    return rows


def _values(mode: str) -> str:
    return "split across heads" if mode == "split" else "whole per head"


def _shape(column: Column, name: str) -> str:
    stage = next((s for s in column.record.stages if s.name == name), None)
    return "—" if stage is None else shape_text(stage.shape)


def _title(comparison: VariantsComparison) -> str:
    spec = comparison.spec
    return (
        f"variants of one layer: batch {spec.batch}, {spec.queries} queries, "
        f"{spec.kv} key-value pairs, {spec.hiddens} hiddens, {spec.heads} heads, "
        f"{spec.dtype}; traced on the meta device"
    )


def _footer(comparison: VariantsComparison, mark: str) -> list[str]:
    reference = comparison.columns[comparison.reference].label + mark
    lines = [
        "stages listed: only those whose shape differs between the columns (— : no such stage)",
        "kv cache: the outputs of W_k and W_v that decoding keeps for every past token (one layer)",
        f"compared with {reference}:",
    ]
    return lines


def variants_renderable(comparison: VariantsComparison) -> RenderableType:
    table = Table(title=Text(_title(comparison)), title_justify="left", header_style="bold")
    table.add_column("")
    for index, column in enumerate(comparison.columns):
        mark = " *" if index == comparison.reference else ""
        table.add_column(Text(column.label + mark), justify="right")
    for name, cells in comparison_rows(comparison):
        table.add_row(Text(name), *(Text(cell) for cell in cells))
    sentences = comparison.sentences() or ["no difference in any figure"]
    lines = [Text(line, style="dim") for line in _footer(comparison, " (*)")]
    lines += [Text(f"  - {s}") for s in sentences]
    lines += [Text(f"note: {n}") for n in comparison.notes]
    return Group(table, Text(""), *lines)


def variants_markdown(comparison: VariantsComparison) -> str:
    header = [""] + [
        c.label + (" (reference)" if i == comparison.reference else "")
        for i, c in enumerate(comparison.columns)
    ]
    rows = [header, ["---"] * len(header)]
    stages = set(comparison.differing_stages())
    rows += [
        [f"`{name}`" if name in stages else name, *cells]
        for name, cells in comparison_rows(comparison)
    ]
    table = "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows)
    lines = [f"- {s}" for s in comparison.sentences() or ["no difference in any figure"]]
    notes = [f"- note: {n}" for n in comparison.notes]
    footer = "\n".join(_footer(comparison, ""))
    return f"**{_title(comparison)}**\n\n{table}\n\n{footer}\n\n" + "\n".join(lines + notes) + "\n"


def variants_json(comparison: VariantsComparison) -> str:
    from mha_cli.render.json_out import envelope

    payload: dict[str, Any] = comparison.to_dict()
    return envelope("mha.variants", payload)
