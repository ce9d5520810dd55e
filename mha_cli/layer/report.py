"""What `mha_cli.inspect()` returns: the run's plain records, its tensors, and a face for people.

Printed in a terminal or displayed in a notebook, a `Report` shows as the stage table (rich
renders in Jupyter too); `to_json()` and `to_markdown()` give the other formats, all through
`render/views.py`. The tensors
travel beside the records as plain attributes, for anyone who wants the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mha_cli.layer.records import RunRecord, select_stages
from mha_cli.render.display import Displayed


@dataclass(frozen=True, eq=False)
class Report(RunRecord, Displayed):
    """One recorded forward pass: `stages`, `summary`, `spec`, `source`, and the tensors."""

    tensors: dict[str, Any] = field(default_factory=dict, repr=False)  # stage name -> tensor
    attention_weights: Any = field(default=None, repr=False)  # (b, h, q, k), None on meta
    mask: Any = field(default=None, repr=False)  # (b, h, q, k) bool, True where masked
    parameters: dict[str, Any] = field(default_factory=dict, repr=False)  # d2l names

    @property
    def output_tensor(self) -> Any:
        """The layer's output (b, q, num_hiddens), None when nothing was computed (meta)."""
        return self.tensors.get(self.output.name)

    def showing(self, patterns: list[str]) -> StagesShown:
        """The table with only the stages `patterns` pick (names or prefixes such as `W_`)."""
        return StagesShown(self, select_stages(self.stages, patterns))


@dataclass(frozen=True)
class StagesShown(Displayed):
    """A report's table showing some of its stages (`mha inspect --stages`); its JSON is the
    whole report's."""

    report: Report
    names: list[str]
