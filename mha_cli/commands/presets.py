"""`mha presets`: the shipped configurations and their key sizes. Never imports torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from mha_cli.commands.output import guarded_stdout, stdout_console


def presets() -> None:
    """List the shipped configurations; use one with --config NAME."""
    from mha_cli.render.presets import presets_renderable
    from mha_cli.spec.configs import preset_descriptions

    console = stdout_console()
    with guarded_stdout():
        console.print(presets_renderable(preset_descriptions(), console.width))


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("presets")(user_errors(presets))
