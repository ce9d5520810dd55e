"""`mha compare`: the same weights through d2l's layer, nn.MultiheadAttention and SDPA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from mha_cli.commands.options import spec_options
from mha_cli.commands.output import FORMAT, Format, emit
from mha_cli.errors import ImplementationsDisagree


def compare(options: dict[str, Any], fmt: FORMAT = Format.table) -> None:
    """Run the same weights and inputs through nn.MultiheadAttention and
    scaled_dot_product_attention (each backend); print the largest difference per stage and per
    head; exit 1 if one disagrees beyond the tolerance."""
    from mha_cli.comparison.api import compare as run_compare
    from mha_cli.comparison.lines import failure_message

    comparison = run_compare(**options)
    emit(comparison, fmt)
    if not comparison.agrees:
        raise ImplementationsDisagree(failure_message(comparison))


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("compare")(user_errors(spec_options(compare)))
