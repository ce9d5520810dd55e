"""What `mha_cli.compare()` returns: the comparison's plain records, with a face for people.

Printed in a terminal or displayed in a notebook, a `Comparison` shows as `mha compare`'s
tables and verdicts; `to_json()` and `to_markdown()` give the other formats, and `agrees` says
whether every torch implementation that ran agrees with d2l's layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mha_cli.comparison.records import ComparisonRecord
from mha_cli.render.display import Displayed

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult


@dataclass(frozen=True, eq=False)
class Comparison(ComparisonRecord, Displayed):
    """d2l's layer against nn.MultiheadAttention and scaled_dot_product_attention."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from mha_cli.comparison.table import compare_renderable

        yield compare_renderable(self, width=options.max_width)

    def to_json(self) -> str:
        from mha_cli.render.json_out import envelope

        return envelope("mha.compare", self.to_dict())

    def to_markdown(self) -> str:
        from mha_cli.comparison.markdown import compare_markdown

        return compare_markdown(self)

    def failure_message(self) -> str:
        """One line naming each implementation that disagrees, the stage and the heads."""
        from mha_cli.comparison.lines import failure_message

        return failure_message(self)
