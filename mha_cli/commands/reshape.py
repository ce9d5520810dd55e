"""`mha reshape`: where a reshape of attention weights puts each axis, as show_heatmaps draws it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mha_cli.commands.options import default_text
from mha_cli.commands.output import FORMAT, Format, emit, wrote

SHAPE = Annotated[
    str, typer.Option("--shape", "-s", help="shape of the attention weights, e.g. 2,1,10")
]
TO = Annotated[
    str, typer.Option("--to", "-t", help="the reshape's target, e.g. 1,1,2,10 (one -1 allowed)")
]
AXES = Annotated[
    str | None,
    typer.Option(
        "--axes",
        "-a",
        help='names of the source axes, e.g. "batch,queries,keys" or "(batch heads),queries,keys"'
        + default_text("batch,queries,keys for 3 axes, batch,heads,queries,keys for 4"),
        show_default=False,
    ),
]
BATCH = Annotated[
    int | None,
    typer.Option(
        "--batch", "-b", help="batch size, to split a folded (batch heads) axis", show_default=False
    ),
]
HEADS = Annotated[
    int | None,
    typer.Option(
        "--heads",
        "-n",
        help="number of heads, to split a folded (batch heads) axis",
        show_default=False,
    ),
]
RENDER = Annotated[
    Path | None,
    typer.Option(
        "--render",
        "-r",
        help="draw both layouts side by side from real weights (.png, .svg, .pdf)",
        show_default=False,
    ),
]


def reshape(
    shape: SHAPE = "2,1,10",
    to: TO = "1,1,2,10",
    axes: AXES = None,
    batch: BATCH = None,
    heads: HEADS = None,
    render: RENDER = None,
    fmt: FORMAT = Format.table,
) -> None:
    """Explain how a reshape of attention weights lays them out for show_heatmaps."""
    from mha_cli.reshape.api import explain_reshape

    explanation = explain_reshape(shape, to, axes, batch=batch, heads=heads, render=render)
    if render is not None:
        wrote(render)
    emit(explanation, fmt)


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("reshape")(user_errors(reshape))
