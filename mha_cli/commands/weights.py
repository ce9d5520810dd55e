"""`mha weights`: per head of a layer, the norms of its slices, its W_QK and W_OV circuits,
flags, and how alike the heads are. Reads the weights; never runs the layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from mha_cli.circuits.records import DEFAULT_STAT, STATS
from mha_cli.commands.options import DPI, out_option, spec_options
from mha_cli.commands.output import FORMAT, Format, emit, note, wrote

STAT = Annotated[
    str | None,
    typer.Option(
        "--stat",
        help=f"with --layer all: the figure of the layers x heads table: {', '.join(STATS)}",
        show_default=DEFAULT_STAT,
    ),
]
SIMILARITY = Annotated[
    bool | None,
    typer.Option(
        "--similarity/--no-similarity",
        help="cosine similarity between the heads' circuits (costs four full Gram matrices)",
        show_default="when cheap (up to 2e10 FLOPs; always with --out for one layer)",
    ),
]
OUT = Annotated[
    str | None,
    out_option(
        help="image (.png, .svg, .pdf): the heads' similarity; with --layer all, the --stat "
        "heatmap of layers x heads",
        show_default=False,
    ),
]


def weights(
    options: dict[str, Any],
    fmt: FORMAT = Format.table,
    stat: STAT = None,
    similarity: SIMILARITY = None,
    out: OUT = None,
    dpi: DPI = 100,
) -> None:
    """Per head: slice norms, W_QK and W_OV (singular values, ranks), flags, similarity.

    Loads --weights (or the seeded random layer); --layer all reads every layer of a checkpoint.
    A head is flagged for its circuit norms only when it lies beyond the spread of the others.
    """
    from mha_cli.circuits.api import weights as compute

    report = compute(
        config=options.pop("config"),
        stat=stat,
        similarity=similarity,
        out=out,
        dpi=dpi,
        progress=note,
        **options,
    )
    emit(report, fmt)
    if out is not None:
        wrote(out)


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("weights")(user_errors(spec_options(weights)))
