"""The supported Hugging Face families as a rich renderable: one row each (model_type, the key
layout of its checkpoints, what mha reads of its config), then the families refused, and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

TITLE = "Hugging Face families (use with --weights MODEL_FOLDER or --config config.json)"


def families_renderable(table: Sequence[Any], refused: Mapping[str, str]) -> RenderableType:
    """`table`: the `Family` records; `refused`: model_type -> why mha does not read it."""
    supported = Table(title=TITLE, title_justify="left")
    for column in ("model_type", "keys", "what mha reads"):
        supported.add_column(column, overflow="fold")
    for family in table:
        supported.add_row(family.name, " or ".join(family.layouts), Text(family.reads))
    lines = [Text(f"not read: {name}: {why}") for name, why in refused.items()]
    return Group(supported, *lines)


def families_markdown(table: Sequence[Any], refused: Mapping[str, str]) -> str:
    """The same as a Markdown table, for the README."""
    rows = ["| model_type | keys | what mha reads |", "| --- | --- | --- |"]
    rows += [f"| {f.name} | {' or '.join(f.layouts)} | {f.reads} |" for f in table]
    rows += ["", *(f"- not read: {name}: {why}" for name, why in refused.items())]
    return "\n".join(rows) + "\n"
