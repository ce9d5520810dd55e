"""Where command output goes: a console made when the command runs, never at import.

Standard output carries the command's answer (a table, JSON, Markdown, a terminal picture);
standard error carries everything else: the files written (`wrote PATH`), notes and progress.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mha_cli.errors import EXIT_BROKEN_PIPE, EXIT_IO, OutputError

if TYPE_CHECKING:
    from rich.console import Console


class Format(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


FORMAT = Annotated[Format, typer.Option("--format", "-f", help="table, json or markdown")]


def stdout_console() -> Console:
    """The terminal's width in a terminal (or $COLUMNS); 160 columns in a pipe or CI log, so
    tables are not squeezed. rich drops colour and control codes by itself when stdout is not a
    terminal or NO_COLOR is set."""
    from rich.console import Console

    class StdoutConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit with status 1 and no word; `guarded_stdout` says what happened.
            self.quiet = True
            raise BrokenPipeError

    terminal = sys.stdout.isatty()
    width = None if terminal or "COLUMNS" in os.environ else 160
    # In a pipe, rich writes through `write_stdout`, which notices a reader that went away.
    file = None if terminal else _WholeWrites()
    return StdoutConsole(width=width, highlight=False, file=file)  # type: ignore[arg-type]


class _WholeWrites:
    """A text stream onto standard output whose writes are whole or raise (`write_stdout`)."""

    def write(self, text: str) -> int:
        write_stdout(text)
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return sys.stdout.fileno()

    @property
    def encoding(self) -> str:
        return getattr(sys.stdout, "encoding", None) or "utf-8"


def write_stdout(text: str) -> None:
    """All of `text` on standard output, or an exception (BrokenPipeError when the reader went
    away). Python's buffered writer drops the rest of a large write silently when a pipe's
    reader closes midway (the system call reports the part written, not the error), so a real
    file descriptor is written here directly, until every byte is out or the write fails."""
    stream = sys.stdout
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):  # not a real file: a test's capture, say
        stream.write(text)
        return
    stream.flush()  # what was written before, first
    encoding = getattr(stream, "encoding", None) or "utf-8"
    errors = getattr(stream, "errors", None) or "strict"
    view = memoryview(text.encode(encoding, errors))
    while view:
        view = view[os.write(fd, view) :]


def emit(result: Any, fmt: Format = Format.table, **json_extra: Any) -> None:
    """The answer on stdout in the chosen format, through the one dispatch (render/views.py):
    the result's rich renderable for `table`; `json_extra` goes into its JSON document."""
    from mha_cli.render import views

    with guarded_stdout():
        if fmt is Format.json:
            write_stdout(views.json_text(result, **json_extra) + "\n")
        elif fmt is Format.markdown:
            write_stdout(views.markdown(result))
        else:
            console = stdout_console()
            console.print(views.renderable(result, width=console.width))


def note(message: str) -> None:
    """Side messages (files written, notes) go to stderr, so stdout stays parseable."""
    sys.stderr.write(message + "\n")


def wrote(path: Any) -> None:
    """Every command reports each file it wrote the same way: `wrote PATH` on stderr."""
    note(f"wrote {path}")


@contextmanager
def guarded_stdout() -> Iterator[None]:
    """Writing to stdout, and flushing it: a closed, full or broken stdout becomes one line and
    a meaningful exit code (`OutputError`), never a traceback."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()  # Python flushes stdout once more at exit: let that write nowhere
        raise OutputError(
            "standard output was closed before the output was written (broken pipe)",
            EXIT_BROKEN_PIPE,
        ) from None
    except (OSError, ValueError) as error:  # ValueError: I/O on a closed file
        _silence_stdout()
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise OutputError(f"cannot write to standard output: {reason}", EXIT_IO) from None


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the process exits
