"""`mha diagram`: the layer's dataflow with the shapes of this configuration on every arrow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from mha_cli.commands.options import DPI, out_option, spec_options
from mha_cli.commands.output import emit, wrote

OUT = Annotated[
    str | None,
    out_option(
        help="image file (.png, .svg with searchable text, .pdf), or an existing folder",
        show_default="./diagram.png",
    ),
]
TERMINAL = Annotated[
    bool,
    typer.Option(
        "--terminal", help="draw the diagram in the terminal instead of a file (unless --out)"
    ),
]


def diagram(
    options: dict[str, Any],
    out: OUT = None,
    terminal: TERMINAL = False,
    dpi: DPI = 100,
) -> None:
    """Draw the layer's dataflow, as the book's figure, with every arrow's shape and axes.

    The book's figure was drawn by hand (in OmniGraffle); this one is generated from a run of
    the layer: the shapes are those `mha inspect` records, traced on the meta device (nothing
    allocated).
    """
    from mha_cli.diagrams.api import save_diagram

    files = save_diagram(
        out=out,
        dpi=dpi,
        draw=not (terminal and out is None),
        config=options.pop("config"),
        **options,
    )
    if terminal:
        emit(files.diagram)
    for path in files.written:
        wrote(path)


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("diagram")(user_errors(spec_options(diagram)))
