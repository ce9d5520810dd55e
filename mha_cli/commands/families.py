"""`mha families`: the Hugging Face model families mha reads, and what it reads of each.
Never imports torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from mha_cli.commands.output import guarded_stdout, stdout_console


def families() -> None:
    """List the Hugging Face model families mha reads exactly (--weights MODEL_FOLDER,
    --config config.json), what it reads of each, and the families it refuses and why."""
    from mha_cli.hf.families import TABLE, UNSUPPORTED
    from mha_cli.render.families import families_renderable

    console = stdout_console()
    with guarded_stdout():
        console.print(families_renderable(TABLE, UNSUPPORTED))


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("families")(user_errors(families))
