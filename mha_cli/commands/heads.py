"""`mha heads`: how much each head matters: ablation, entropy, confidence, gradient importance,
a greedy pruning curve, and how far those measures agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mha_cli.commands.options import DPI, out_option, spec_options
from mha_cli.commands.output import FORMAT, Format, emit, wrote
from mha_cli.commands.text_options import text_options

ABLATION = Annotated[
    str,
    typer.Option(
        "--ablation",
        help="zero: a removed head's slice of the concatenation before W_o is set to 0; mean: "
        "replaced by its mean over examples and queries",
    ),
]
TARGETS = Annotated[
    Path | None,
    typer.Option(
        "--targets",
        help="a .pt/.safetensors file with a tensor 'output' (batch, queries, hiddens): adds "
        "gradient importance (Michel et al. 2019) against its mean squared error",
        show_default=False,
    ),
]
OUT = Annotated[
    str | None,
    out_option(
        help="image (.png, .svg, .pdf) of the pruning curve and the per-head measures",
        show_default=False,
    ),
]


def heads(
    options: dict[str, Any],
    fmt: FORMAT = Format.table,
    ablation: ABLATION = "zero",
    targets: TARGETS = None,
    out: OUT = None,
    dpi: DPI = 100,
) -> None:
    """Rank the heads by how much the output changes without each; name one that could go first
    only when it stands out beyond noise.

    One forward pass over the spec's inputs (or --inputs); every ablated variant comes from it.
    Each figure comes with ± 1.96 standard errors over the (example, query) rows.
    """
    from mha_cli.importance.api import heads as measure

    report = measure(
        config=options.pop("config"),
        ablation=ablation,
        targets=targets,
        out=out,
        dpi=dpi,
        **options,
    )
    emit(report, fmt)
    if out is not None:
        wrote(out)


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("heads")(user_errors(spec_options(text_options(heads))))
