"""Progress on stderr for `mha heatmap`: a rich bar in a terminal, shown once the work has
taken about a second; plain lines (messages only, no bar) when stderr is not a terminal.
Standard output never sees it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mha_cli.commands.output import note

DELAY_S = 1.0  # nothing is drawn for work shorter than this


@dataclass
class Reporter:
    """`say(text)` names the stage; `steps(done, total)` moves the bar."""

    say: Callable[[str], None]
    steps: Callable[[int, int], None]


@contextmanager
def stderr_progress(first: str = "rendering") -> Iterator[Reporter]:
    if not sys.stderr.isatty():
        yield Reporter(note, lambda done, total: None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    started = time.monotonic()
    state: dict[str, Any] = {"bar": None, "task": None, "text": first}

    def shown() -> Any:
        if state["bar"] is None and time.monotonic() - started >= DELAY_S:
            bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            bar.start()
            state["bar"], state["task"] = bar, bar.add_task(state["text"], total=None)
        return state["bar"]

    def say(text: str) -> None:
        state["text"] = text
        bar = shown()
        if bar is not None:
            bar.update(state["task"], description=text, total=None, completed=0)

    def steps(done: int, total: int) -> None:
        if state["text"] != "attention weights, one head at a time":
            say("attention weights, one head at a time")
        bar = shown()
        if bar is not None:
            bar.update(state["task"], total=total, completed=done)

    try:
        yield Reporter(say, steps)
    finally:
        if state["bar"] is not None:
            state["bar"].stop()
