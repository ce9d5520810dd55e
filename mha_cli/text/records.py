"""What a run on real text keeps of the text: the texts, their tokens, and the check against
the model's own attention. Plain data: the renderers read it without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class HeadPattern:
    """Where one head's attention goes on the texts, averaged over their real queries."""

    head: int
    # shares of attention, over the queries after the first:
    first: float  # on the first token (a sink)
    previous: float  # on the previous token
    itself: float  # on the query's own token
    distance: float  # mean |query - key| position, weighted by attention
    pattern: str  # in words: "previous token 0.91", or "spread" when no share passes 0.5
    layer: int | None = None  # set in the model view (--layer all): "head 3.5" is layer 3's 5

    def describe(self) -> str:
        name = str(self.head) if self.layer is None else f"{self.layer}.{self.head}"
        return (
            f"head {name}: {self.pattern} (first token {self.first:.2f}, previous "
            f"{self.previous:.2f}, itself {self.itself:.2f}, mean distance {self.distance:.1f})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TextRecord:
    """The texts a run was given (`--text`), one per batch example."""

    texts: list[str]
    tokens: list[list[str]]  # each example's tokens as the tokenizer wrote them, padding left out
    valid_lens: list[int]  # tokens per example; the batch is padded on the right to the longest
    model: str  # the model folder whose tokenizer and layers made the inputs
    layer: int
    # the largest |mha - model| over the exported attention weights, None when not checked
    max_difference: float | None = None
    heads: list[HeadPattern] = field(default_factory=list)  # what each head does, in words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
