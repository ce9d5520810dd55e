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
from mha_cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_IO,
    EXIT_TERMINATED,
    EXIT_USAGE,
    AssumptionNote,
    MhaError,
)

# typer bundles its own click; reach its exception base through the public BadParameter.
_USAGE_ERROR: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class OneLineErrors(TyperGroup):
    """Usage mistakes that typer itself catches (unknown option, bad choice, missing value)
    come out as one line on stderr with exit code 2, like mha's own errors."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:  # type: ignore[override]
        was_devnull = _stdout_is_devnull()
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        except SystemExit as exiting:
            # A broken pipe in click's or typer's own output (help, version) ends in a silent
            # exit 1: click wraps stdout in its PacifyFlushWrapper, rich (typer's help) points
            # stdout at /dev/null. Either is help cut short.
            broke = _click_saw_broken_pipe() or (_stdout_is_devnull() and not was_devnull)
            if standalone_mode and exiting.code == 1 and broke:
                _help_cut_short()
            raise
        except _USAGE_ERROR as error:
            if not standalone_mode:
                raise
            if type(error).__name__ == "NoArgsIsHelpError":  # plain `mha`: show the help
                try:
                    typer.echo(error.format_message())
                except BrokenPipeError:
                    _help_cut_short()
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
            sys.exit(EXIT_INTERRUPTED)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


def _click_saw_broken_pipe() -> bool:
    return type(sys.stdout).__name__ == "PacifyFlushWrapper"


def _stdout_is_devnull() -> bool:
    try:
        return os.path.samestat(os.fstat(1), os.stat(os.devnull))
    except (OSError, ValueError):
        return False


def _help_cut_short() -> None:
    """Help or version text whose reader went away (`mha --help | head -1`): exit 0 without a
    word, as most command-line tools do (see EXIT_BROKEN_PIPE in mha_cli.errors)."""
    try:  # Python flushes stdout once more at exit: let that write nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (OSError, ValueError, AttributeError):
        pass
    sys.exit(0)


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
        except (MemoryError, RuntimeError) as error:
            # The memory check estimates; the system decides (an address-space limit, other
            # programs' memory): an allocation that fails is one line too.
            if os.environ.get("MHA_DEBUG") or not _allocation_failed(error):
                raise
            sys.stderr.write(
                "mha: out of memory: an allocation failed"
                f"{_allocation_size(error)}; use smaller sizes (--batch, --heads, --queries, "
                "--kv, --hiddens) or close other programs\n"
            )
            raise typer.Exit(EXIT_USAGE) from None

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


def _allocation_failed(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return any(
        phrase in text
        for phrase in ("can't allocate memory", "out of memory", "not enough memory", "bad_alloc")
    )


def _allocation_size(error: BaseException) -> str:
    """How much the failed allocation asked for, where the message says it."""
    import re

    found = re.search(r"allocate (\d+) bytes", str(error))
    if not found:
        return ""
    from mha_cli.messages import size_text

    return f" (it asked for {size_text(int(found.group(1)))})"


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


class Terminated(BaseException):
    """SIGTERM arrived. Raised where the program is, like KeyboardInterrupt for Ctrl-C, so every
    `finally` runs: a write in progress removes its temporary file (`files.atomic`). A
    BaseException, so that no `except Exception` of the core swallows it."""


_SIGTERM_SEEN: list[bool] = []  # set once SIGTERM arrived


def _on_sigterm(signum: int, frame: Any) -> None:
    _SIGTERM_SEEN.append(True)
    raise Terminated


def _catch_sigterm() -> None:
    import signal

    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # leave a parent's choice alone
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main thread, or no SIGTERM on this system
        pass


def main() -> None:
    """The `mha` entry point: start-up tricks for this process only, then the command."""
    from mha_cli import fast_start

    fast_start.enable()
    _catch_sigterm()
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()  # type: ignore[assignment]
    try:
        app()
    except Terminated:
        sys.stderr.write("mha: terminated\n")
        sys.exit(EXIT_TERMINATED)
    except Exception:
        # Terminated raised inside a C extension's import or callback comes back as another
        # exception ("ImportError: initialization failed" from matplotlib's Agg backend): once
        # SIGTERM has arrived, whatever ends the run is the termination, not a bug to show.
        if not _SIGTERM_SEEN:
            raise
        sys.stderr.write("mha: terminated\n")
        sys.exit(EXIT_TERMINATED)
    except BrokenPipeError:  # help or usage text that typer wrote, its reader gone
        _help_cut_short()
    except OSError as error:  # output that click or typer wrote outside mha's own guard
        sys.stderr.write(f"mha: cannot write to standard output: {error.strerror or error}\n")
        sys.exit(EXIT_IO)
