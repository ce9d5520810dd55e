"""What one head does, in words: the record `layer/head_roles.py` fills and the renderers, the
heads report and the text record read. Plain data, no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class HeadRole:
    """What one head attends to, from the run's attention weights: shares of its attention on
    the first key (a sink), on the previous position, on its own position, and its mean
    distance |query position - key position|, averaged over the valid query rows of the batch.
    None where a figure does not apply (cross-attention has no query at a key's position)."""

    head: int
    sink: float | None
    previous: float | None
    itself: float | None
    distance: float | None
    kind: str  # "sink", "previous", "itself", "spread", or "n/a" (no valid query row)
    role: str  # in words: "previous token 0.91", "spread (mean distance 3.2)"
    layer: int | None = None  # set in the model view (--layer all): "head 3.5" is layer 3's 5

    def describe(self) -> str:
        """ "head 3.5: previous token 0.91 (sink 0.04, previous 0.91, itself 0.02, mean
        distance 1.1)": the role, then every figure that applies."""
        name = str(self.head) if self.layer is None else f"{self.layer}.{self.head}"
        figures = [
            f"{label} {value:.{digits}f}"
            for label, value, digits in (
                ("sink", self.sink, 2),
                ("previous", self.previous, 2),
                ("itself", self.itself, 2),
                ("mean distance", self.distance, 1),
            )
            if value is not None
        ]
        return f"head {name}: {self.role}" + (f" ({', '.join(figures)})" if figures else "")

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if self.layer is None:  # one layer's run: its layer is the report's
            del record["layer"]
        return record


def short_role(role: str) -> str:
    """A role in the per-head table's words, for a narrow column or a panel title: "prev 0.91",
    "sink 0.78", "self 0.85", "spread"."""
    if role.startswith("spread"):
        return "spread"
    for long, short in (
        ("first token (sink)", "sink"),
        ("previous token", "prev"),
        ("itself", "self"),
    ):
        role = role.replace(long, short)
    return role
