"""Where command output goes: a console made when the command runs, never at import."""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


class Format(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


def stdout_console() -> Console:
    """Full width in a terminal; 160 columns in a pipe or CI log, so the table is not squeezed.

    rich drops colour and control codes by itself when stdout is not a terminal or NO_COLOR is set.
    """
    from rich.console import Console

    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
    return Console(width=width, highlight=False)


def note(message: str) -> None:
    """Side messages (files written) go to stderr, so stdout stays parseable JSON."""
    sys.stderr.write(message + "\n")
