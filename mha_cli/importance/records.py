"""What `mha heads` measured, per head, as plain data: renderers and JSON need no torch.

Measures (each paper ranks heads its own way, so they are shown side by side):
- `ablation`: ||y - y_without_i||_F / ||y||_F, head i's slice of the concatenation before W_o
  set to zero (or to its mean over examples and queries with `--ablation mean`);
- `entropy`: mean over examples and queries of -Σ p log p over the visible keys (nats);
- `confidence`: mean of the largest attention weight per row (Voita et al. 2019);
- `gradient`: E_x |∂L_x/∂ξ_i| for a gate ξ_i on the head at ξ = 1, L_x the mean squared error
  to the targets (Michel, Levy & Neubig 2019); only with `--targets`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mha_cli.layer.records import Source
from mha_cli.render.display import Displayed
from mha_cli.spec.spec import AttentionSpec

MEASURES = ("ablation", "entropy", "confidence", "gradient")


@dataclass(frozen=True)
class HeadMeasure:
    head: int
    kv_head: int
    ablation: float
    entropy: float
    confidence: float
    gradient: float | None = None
    pruned_at: int = 0  # the greedy pruning step (1 = first) that removes this head

    def value(self, measure: str) -> float:
        value = getattr(self, measure)
        return math.nan if value is None else float(value)


@dataclass(frozen=True)
class PruningStep:
    step: int  # 1 = the first head removed
    head: int  # the head removed at this step
    change: float  # ||y - y_pruned||_F / ||y||_F with every head removed so far


@dataclass(frozen=True, eq=False)
class HeadsRecord:
    """Everything `mha heads` shows, as plain data."""

    spec: AttentionSpec  # final: every size written out
    source: Source | None
    ablation_mode: str  # "zero" or "mean"
    heads: list[HeadMeasure]  # in head order
    pruning: list[PruningStep]
    output_norm: float  # ||y||_F of the unablated output
    correlations: dict[str, dict[str, float]] = field(default_factory=dict)  # Spearman
    notes: list[str] = field(default_factory=list)

    @property
    def measures(self) -> tuple[str, ...]:
        with_gradient = any(h.gradient is not None for h in self.heads)
        return MEASURES if with_gradient else MEASURES[:3]

    def ranking(self) -> list[HeadMeasure]:
        """Least important first: smallest ablation change (ties: the greedy order)."""
        return sorted(self.heads, key=lambda h: (_key(h.ablation), h.pruned_at))

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "source": None if self.source is None else self.source.to_dict(),
            "ablation": self.ablation_mode,
            "output_norm": self.output_norm,
            "heads": [asdict(h) for h in self.heads],
            "ranking": [h.head for h in self.ranking()],
            "pruning": [asdict(s) for s in self.pruning],
            "spearman": self.correlations,
            "notes": list(self.notes),
        }


def _key(value: float) -> float:
    return math.inf if math.isnan(value) else value


def ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank (as Spearman's rho needs)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks; NaN when either
    measure is the same for every head (or NaN anywhere)."""
    if len(a) < 2 or any(math.isnan(v) for v in a + b):
        return math.nan
    ra, rb = ranks(a), ranks(b)
    mean_a, mean_b = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(ra, rb, strict=True))
    var_a = sum((x - mean_a) ** 2 for x in ra)
    var_b = sum((y - mean_b) ** 2 for y in rb)
    if var_a == 0 or var_b == 0:
        return math.nan
    return cov / math.sqrt(var_a * var_b)


def correlations(
    heads: list[HeadMeasure], measures: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Spearman's rho between every two measures, as a nested dict (symmetric, 1 on the
    diagonal when defined)."""
    columns = {m: [h.value(m) for h in heads] for m in measures}
    return {a: {b: spearman(columns[a], columns[b]) for b in measures} for a in measures}


@dataclass(frozen=True, eq=False)
class HeadsReport(HeadsRecord, Displayed):
    """Each head's measures, the pruning curve and the measures' agreement: see `HeadsRecord`."""
