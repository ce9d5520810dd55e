"""What `mha_cli.heads()` returns: the plain record, and a face for people.

Printed in a terminal or displayed in a notebook, a `HeadsReport` shows as the ranking table;
`to_json()` and `to_markdown()` give the other formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mha_cli.importance.records import HeadsRecord
from mha_cli.render.display import Displayed

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult


@dataclass(frozen=True, eq=False)
class HeadsReport(HeadsRecord, Displayed):
    """Each head's measures, the pruning curve and the measures' agreement: see `HeadsRecord`."""

    def to_json(self) -> str:
        from mha_cli.render.json_out import envelope

        return envelope("mha.heads", self.to_dict())

    def to_markdown(self) -> str:
        from mha_cli.importance.text import heads_markdown

        return heads_markdown(self)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from mha_cli.importance.text import heads_renderable

        yield heads_renderable(self)
