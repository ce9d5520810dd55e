"""The list of shipped presets as a rich renderable: a table where it fits, else one entry each.

A wide console (a pipe or CI log gets 160 columns) shows one table row per preset. A narrow
terminal cannot hold nine number columns and a description side by side (at 80 columns the
description was a column 4 characters wide); there each preset is the name, its sizes as words
on one line and its description under them, wrapped at spaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

TITLE = "presets (use with --config NAME)"
WIDE = 120  # from this width the table keeps its description column readable
COLUMNS = ("hiddens", "heads", "kv_heads", "queries", "kv", "batch", "causal", "device")

Presets = Sequence[tuple[str, dict[str, Any]]]


def presets_renderable(presets: Presets, width: int | None = None) -> RenderableType:
    """The table (`width` None or at least WIDE), or the narrow layout."""
    if width is None or width >= WIDE:
        return _table(presets)
    return _entries(presets)


def _table(presets: Presets) -> Table:
    table = Table(title=TITLE, title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in COLUMNS:
        table.add_column(column.replace("_", " "), justify="right")
    table.add_column("description")
    for name, values in presets:
        cells = [_cell(column, values) for column in COLUMNS]
        table.add_row(name, *cells, Text(values.get("description", "")))
    return table


def _entries(presets: Presets) -> RenderableType:
    """name   sizes as words
    description"""
    grid = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 1, 0))
    grid.add_column("name", no_wrap=True, style="bold")
    grid.add_column("what")
    for name, values in presets:
        sizes = ", ".join(_words(column, values) for column in COLUMNS if _words(column, values))
        grid.add_row(name, Text.assemble(sizes, "\n", (values.get("description", ""), "dim")))
    return Group(Text(TITLE), Text(""), grid)


def _words(column: str, values: dict[str, Any]) -> str:
    """One size in words, as the table's header and cell would say it: "12 heads"."""
    value = _cell(column, values)
    if column == "causal":
        return "causal" if value else ""
    if column == "device":
        return f"{value} device"
    if column == "batch":
        return f"batch {value}"
    one, many = {
        "hiddens": ("hidden", "hiddens"),
        "heads": ("head", "heads"),
        "kv_heads": ("kv head", "kv heads"),
        "queries": ("query", "queries"),
        "kv": ("kv pair", "kv pairs"),
    }[column]
    return f"{value} {one if value == '1' else many}"


def _cell(column: str, values: dict[str, Any]) -> str:
    if column == "kv_heads":
        return str(values.get("kv_heads", values.get("heads", "")))
    if column == "causal":
        return "yes" if values.get("causal") else ""
    if column == "device":
        return str(values.get("device", "cpu"))
    value = values.get(column, "")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
