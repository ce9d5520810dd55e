"""The `mha` command line: parse options, call the Python API, hand the results to a renderer.

No arithmetic here and no heavy imports at module level: `mha --help` stays instant.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mha_cli import __version__
from mha_cli.errors import EXIT_IO, AssumptionNote, MhaError

# typer bundles its own click; reach its exception base through the public BadParameter.
_USAGE_ERROR: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class OneLineErrors(TyperGroup):
    """Usage mistakes that typer itself catches (unknown option, bad choice, missing value)
    come out as one line on stderr with exit code 2, like mha's own errors."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        except _USAGE_ERROR as error:
            if not standalone_mode:
                raise
            if type(error).__name__ == "NoArgsIsHelpError":  # plain `mha`: show the help
                typer.echo(error.format_message())
                sys.exit(0)
            context = getattr(error, "ctx", None)
            where = context.command_path if context is not None else "mha"
            message = " ".join(error.format_message().split()).rstrip(".")  # one line
            sys.stderr.write(f"{where}: {message}; see '{where} --help'\n")
            sys.exit(error.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            sys.stderr.write("mha: interrupted\n")
            sys.exit(130)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


app = typer.Typer(
    name="mha",
    cls=OneLineErrors,
    help="Shape and weight inspector for multi-head attention, as Dive into Deep Learning "
    "writes it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mha {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """mha builds d2l's attention layer, runs it, and shows every stage."""


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """A user's mistake becomes one line on stderr and its exit code, never a traceback.

    Set MHA_DEBUG=1 to see the traceback of a real bug.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", AssumptionNote)
                warnings.showwarning = functools.partial(_show_note, set())
                return command(*args, **kwargs)
        except MhaError as error:
            if os.environ.get("MHA_DEBUG"):
                raise
            # A value may hold a newline (a path, say): escape it, the message stays one line.
            message = str(error).replace("\r", "\\r").replace("\n", "\\n")
            sys.stderr.write(f"mha: {message}\n")
            raise typer.Exit(error.exit_code) from None

    return wrapper


def _show_note(shown: set[str], message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    """An `AssumptionNote` as one line on stderr, once (`--layer all` reads layer after layer);
    other warnings as Python shows them."""
    if issubclass(category, AssumptionNote):
        if str(message) not in shown:
            shown.add(str(message))
            sys.stderr.write(f"mha: note: {message}\n")
    else:
        sys.stderr.write(warnings.formatwarning(message, category, *args[:2]))


def _register() -> None:
    """Every command of `registry.COMMANDS`, in its order (the order of `mha --help`)."""
    import importlib

    from mha_cli.registry import COMMANDS

    for command in COMMANDS:
        importlib.import_module(command.shell).register(app, user_errors)


_register()


class _ClosedStdout:
    """Stands in for a standard output that was closed before mha started (`mha ... >&-`):
    writing to it fails as writing to a closed file descriptor does."""

    def write(self, _: str) -> int:
        raise OSError(9, "standard output is closed")

    def flush(self) -> None:
        """Nothing is ever buffered here; a failing flush would only repeat the message."""

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(9, "standard output is closed")


def main() -> None:
    """The `mha` entry point: start-up tricks for this process only, then the command."""
    from mha_cli import fast_start

    fast_start.enable()
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()  # type: ignore[assignment]
    try:
        app()
    except OSError as error:  # output that click or typer wrote outside mha's own guard
        sys.stderr.write(f"mha: cannot write to standard output: {error.strerror or error}\n")
        sys.exit(EXIT_IO)
