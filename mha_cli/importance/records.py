"""What `mha heads` measured, per head, as plain data: renderers and JSON need no torch.

Measures (each paper ranks heads its own way, so they are shown side by side):
- `ablation`: ||y - y_without_i||_F / ||y||_F, head i's slice of the concatenation before W_o
  set to zero (or to its mean over examples and queries with `--ablation mean`);
- `entropy`: mean over examples and queries of -Σ p log p over the visible keys (nats);
- `confidence`: mean of the largest attention weight per row (Voita et al. 2019);
- `gradient`: E_x |∂L_x/∂ξ_i| for a gate ξ_i on the head at ξ = 1, L_x the mean squared error
  to the targets (Michel, Levy & Neubig 2019); only with `--targets`.

Each figure is measured on the run's rows (examples x queries); its standard error over those
rows is kept with it. A head is named as the one that could go first only when it is separated
from the others beyond that error and beyond the heads' own spread (`attention.spread`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mha_cli.importance.spread import AGREEMENT_ALPHA, spearman, spearman_p
from mha_cli.layer.records import Source
from mha_cli.render.display import Displayed
from mha_cli.spec.spec import FinalSpec

Z95 = 1.96  # standard errors either side of an estimate: a 95 % interval
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
    # standard errors over the (example, query) rows (delta method for the ablation ratio)
    ablation_se: float = math.nan
    entropy_se: float = math.nan
    confidence_se: float = math.nan

    def value(self, measure: str) -> float:
        value = getattr(self, measure)
        return math.nan if value is None else float(value)

    @property
    def ablation_low(self) -> float:
        """The lower end of the ablation figure's interval (Z95 standard errors, at least 0)."""
        return max(0.0, self.ablation - Z95 * _zero_if_nan(self.ablation_se))

    @property
    def ablation_high(self) -> float:
        return self.ablation + Z95 * _zero_if_nan(self.ablation_se)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["ablation_interval"] = [self.ablation_low, self.ablation_high]
        return record


def _zero_if_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else value


@dataclass(frozen=True)
class PruningStep:
    step: int  # 1 = the first head removed
    head: int  # the head removed at this step
    change: float  # ||y - y_pruned||_F / ||y||_F with every head removed so far


@dataclass(frozen=True, eq=False)
class HeadsRecord:
    """Everything `mha heads` shows, as plain data."""

    spec: FinalSpec  # every size written out
    source: Source | None
    ablation_mode: str  # "zero" or "mean"
    heads: list[HeadMeasure]  # in head order
    pruning: list[PruningStep]
    output_norm: float  # ||y||_F of the unablated output
    correlations: dict[str, dict[str, float]] = field(default_factory=dict)  # Spearman
    notes: list[str] = field(default_factory=list)
    # two-sided p-value of each Spearman rho (exact permutations for few heads)
    correlation_p: dict[str, dict[str, float]] = field(default_factory=dict)
    # the smallest |rho| significant at AGREEMENT_ALPHA for this many heads
    rho_needed: float = math.nan
    # the heads separated from the rest beyond the noise (least important); [] = none stands out
    candidates: list[int] = field(default_factory=list)

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
            "interval": f"estimate ± {Z95} standard errors over the (example, query) rows",
            "heads": [h.to_dict() for h in self.heads],
            "ranking": [h.head for h in self.ranking()],
            "candidates": list(self.candidates),
            "pruning": [asdict(s) for s in self.pruning],
            "spearman": self.correlations,
            "spearman_p": self.correlation_p,
            "spearman_alpha": AGREEMENT_ALPHA,
            "spearman_rho_needed": self.rho_needed,
            "notes": list(self.notes),
        }


def _key(value: float) -> float:
    return math.inf if math.isnan(value) else value


def correlations(
    heads: list[HeadMeasure], measures: tuple[str, ...]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Spearman's rho between every two measures and its two-sided p-value, as nested dicts
    (symmetric; rho 1 on the diagonal when defined, p NaN there)."""
    columns = {m: [h.value(m) for h in heads] for m in measures}
    rho = {a: {b: spearman(columns[a], columns[b]) for b in measures} for a in measures}
    p = {
        a: {b: math.nan if a == b else spearman_p(columns[a], columns[b]) for b in measures}
        for a in measures
    }
    return rho, p


@dataclass(frozen=True, eq=False)
class HeadsReport(HeadsRecord, Displayed):
    """Each head's measures, the pruning curve and the measures' agreement: see `HeadsRecord`."""
