"""What a run on real text keeps of the text: the texts, their tokens, and the check against
the model's own attention. Plain data: the renderers read it without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mha_cli.layer.role_records import HeadRole


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
    # what each head does, in words (layer/head_roles.py); every layer's in the model view
    heads: list[HeadRole] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["heads"] = [head.to_dict() for head in self.heads]  # "layer" only where set
        return record
