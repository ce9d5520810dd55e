"""`mha inspect`: build the layer, run one forward pass, print the stage table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mha_cli.commands.options import spec_options
from mha_cli.commands.output import FORMAT, Format, emit, wrote
from mha_cli.commands.text_options import text_options

EXPECT = Annotated[
    list[str] | None,
    typer.Option(
        "--expect",
        "-e",
        help="assert a shape (output=2,4,100, scores=10,4,6) or a figure (params=40000); "
        "exit 1 if it fails, after printing the output; repeatable",
        show_default=False,
    ),
]
STAGES = Annotated[
    str | None,
    typer.Option(
        "--stages",
        "-s",
        help="show only these stages in the table: names or prefixes, comma-separated "
        "(W_ for every projection, queries. for the queries' transpose_qkv)",
        show_default=False,
    ),
]
EXPORT = Annotated[
    Path | None,
    typer.Option(
        "--export",
        help="save attention_weights (b, h, q, k), output and every stage's tensor "
        "to .pt or .safetensors",
        show_default=False,
    ),
]


def inspect(
    options: dict[str, Any],
    fmt: FORMAT = Format.table,
    expect: EXPECT = None,
    export: EXPORT = None,
    stages: STAGES = None,
) -> None:
    """Build the layer, run one forward pass, print every stage: shape, axes, params, FLOPs."""
    from mha_cli.layer.api import parse_expectations, run
    from mha_cli.layer.expectations import check, raise_if_failed

    expectations = parse_expectations(expect)
    report = run(options.pop("config"), options, export=export)
    if export is not None:
        wrote(export)
    results = check(expectations, report)
    shown = report.showing([p.strip() for p in stages.split(",") if p.strip()]) if stages else None
    emit(shown or report, fmt, expectations=results)  # JSON always holds every stage
    raise_if_failed(results)


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("inspect")(user_errors(spec_options(text_options(inspect))))
