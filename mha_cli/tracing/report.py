"""What `mha_cli.trace()` returns: the traced rows, what `--check` found, and the tensors.

Printed in a terminal or displayed in a notebook, a `TraceReport` shows as the traced table;
`to_json()` and `to_markdown()` give the other formats. The module's own attention weights
(b, h, q, k) and output travel beside the records, for heatmaps and anyone who wants them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mha_cli.render.display import Displayed
from mha_cli.tracing.records import TraceRecord


@dataclass(frozen=True, eq=False)
class TraceReport(TraceRecord, Displayed):
    attention_weights: Any = field(default=None, repr=False)  # (b, h, q, k), the softmax recorded
    output_tensor: Any = field(default=None, repr=False)  # what forward returned (its first tensor)
    values: dict[int, Any] = field(default_factory=dict, repr=False)  # step -> copy of its values
