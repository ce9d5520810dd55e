"""`mha presets`: the shipped configurations and their key sizes. Never imports torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from mha_cli.commands.output import guarded_stdout, stdout_console

_COLUMNS = ("hiddens", "heads", "kv_heads", "queries", "kv", "batch", "causal", "device")


def presets() -> None:
    """List the shipped configurations; use one with --config NAME."""
    from rich.table import Table
    from rich.text import Text

    from mha_cli.spec.configs import preset_descriptions

    table = Table(title="presets (use with --config NAME)", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in _COLUMNS:
        table.add_column(column.replace("_", " "), justify="right")
    table.add_column("description")
    for name, values in preset_descriptions():
        cells = [_cell(column, values) for column in _COLUMNS]
        table.add_row(name, *cells, Text(values.get("description", "")))
    with guarded_stdout():
        stdout_console().print(table)


def _cell(column: str, values: dict[str, Any]) -> str:
    if column == "kv_heads":
        return str(values.get("kv_heads", values.get("heads", "")))
    if column == "causal":
        return "yes" if values.get("causal") else ""
    if column == "device":
        return str(values.get("device", "cpu"))
    value = values.get(column, "")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("presets")(user_errors(presets))
