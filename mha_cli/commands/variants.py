"""`mha variants`: variants of the same layer side by side, one column each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from mha_cli.commands.options import spec_options
from mha_cli.commands.output import FORMAT, Format, emit

VARIANT = Annotated[
    list[str] | None,
    typer.Option(
        "--variant",
        "-V",
        help="a column of your own: settings as NAME=VALUE separated by spaces, e.g. "
        "'kv-heads=2' or 'value-mode=full head-dim=32'; repeatable; compared with the layer "
        "as given",
        show_default="values split vs whole, kv heads = heads, about heads/4, and 1",
    ),
]


def variants(options: dict[str, Any], fmt: FORMAT = Format.table, variant: VARIANT = None) -> None:
    """Compare variants of the layer: shapes that differ, parameters, FLOPs, memory, kv cache."""
    from mha_cli.layer_variants.api import variants as compare

    comparison = compare(config=options.pop("config"), variant=variant, **options)
    emit(comparison, fmt)


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("variants")(user_errors(spec_options(variants)))
