"""What `mha_cli.weights()` returns: the plain record, and a face for people.

Printed in a terminal or displayed in a notebook, a `WeightsReport` shows as the per-head table
(rich renders in Jupyter too); `to_json()` and `to_markdown()` give the other formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mha_cli.circuits.records import WeightsRecord
from mha_cli.render.display import Displayed

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult


@dataclass(frozen=True, eq=False)
class WeightsReport(WeightsRecord, Displayed):
    """Per head of a layer (or `stat` per layer and head): see `WeightsRecord`."""

    def to_json(self) -> str:
        from mha_cli.render.json_out import envelope

        return envelope("mha.weights", self.to_dict())

    def to_markdown(self) -> str:
        from mha_cli.circuits.text import weights_markdown

        return weights_markdown(self)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from mha_cli.circuits.text import weights_renderable

        yield weights_renderable(self)
