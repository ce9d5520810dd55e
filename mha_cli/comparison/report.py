"""What `mha_cli.compare()` returns: the comparison's plain records, with a face for people.

Printed in a terminal or displayed in a notebook, a `Comparison` shows as `mha compare`'s
tables and verdicts; `to_json()` and `to_markdown()` give the other formats, and `agrees` says
whether every torch implementation that ran agrees with d2l's layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from mha_cli.comparison.records import ComparisonRecord
from mha_cli.render.display import Displayed


@dataclass(frozen=True, eq=False)
class Comparison(ComparisonRecord, Displayed):
    """d2l's layer against nn.MultiheadAttention and scaled_dot_product_attention."""
