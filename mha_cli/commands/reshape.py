"""`mha reshape`: where a reshape of attention weights puts each axis, as show_heatmaps draws it."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mha_cli.commands.output import Format, stdout_console

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
        help='names of the source axes, e.g. "batch,queries,keys" or "(batch heads),queries,keys"',
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
FORMAT = Annotated[Format, typer.Option("--format", "-f", help="table, json or markdown")]


def reshape(
    shape: SHAPE = "2,1,10",
    to: TO = "1,1,2,10",
    axes: AXES = None,
    batch: BATCH = None,
    heads: HEADS = None,
    render: RENDER = None,
    fmt: FORMAT = Format.table,
) -> None:
    """Explain how a reshape of attention weights lays them out for show_heatmaps (seed Q4, Q7)."""
    from mha_cli.reshape.explain import explain_reshape

    sizes = {
        name: value for name, value in (("batch", batch), ("heads", heads)) if value is not None
    }
    explanation = explain_reshape(shape, to, axes, sizes=sizes)
    if render is not None:
        from mha_cli.fast_start import import_heavy

        import_heavy("torch", "mha_cli.attention.run", "matplotlib.figure")
        from mha_cli.attention.plot_data import weights_of_shape
        from mha_cli.render.reshape.image import render_layouts

        weights = weights_of_shape([(a.name, a.size) for a in explanation.source_axes])
        layouts = [explanation.target_shape]
        if explanation.suggested_shape is not None:
            layouts.append(explanation.suggested_shape)
        render_layouts(weights.reshape(explanation.source_shape), layouts, render)
        typer.echo(str(render), err=True)
    if fmt is Format.json:
        sys.stdout.write(
            json.dumps({"schema": "mha.reshape", "version": 1, **explanation.to_dict()}, indent=2)
            + "\n"
        )
    elif fmt is Format.markdown:
        from mha_cli.render.reshape.text import reshape_markdown

        sys.stdout.write(reshape_markdown(explanation))
    else:
        from mha_cli.render.reshape.text import reshape_renderable

        stdout_console().print(reshape_renderable(explanation))


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("reshape")(user_errors(reshape))
