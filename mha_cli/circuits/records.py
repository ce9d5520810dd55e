"""What `mha weights` found in a layer, per head, as plain data: renderers and JSON need no torch.

A head's two circuits (Elhage et al. 2021) are `W_QK = W_q_iᵀ W_k_j`, what a query looks for
in a key, and `W_OV = W_o_i W_v_j`, what the head writes for what it reads (j: the key-value head
query head i reads). Each is summarised by its singular values and three figures derived from
them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mha_cli.layer.records import Source
from mha_cli.render.display import Displayed
from mha_cli.spec.spec import FinalSpec

CIRCUITS = ("qk", "ov")
CIRCUIT_NAMES = {"qk": "W_QK = W_qᵀ W_k", "ov": "W_OV = W_o W_v"}


@dataclass(frozen=True)
class Circuit:
    """One circuit of one head. NaN everywhere when the head holds non-finite weights."""

    singular_values: tuple[float, ...]  # all of them (rank <= head dim), largest first
    frobenius: float  # ||M||_F = sqrt(sum sigma^2)
    stable_rank: float  # ||M||_F^2 / sigma_1^2; 0 for the zero matrix
    effective_rank: float  # exp(-sum p log p), p = sigma / sum sigma (Roy & Vetterli); 0 for 0

    @property
    def sigma1(self) -> float:
        return self.singular_values[0] if self.singular_values else 0.0

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["singular_values"] = list(self.singular_values)
        return record


@dataclass(frozen=True)
class HeadWeights:
    """Query head `head`: the norms of its slices, its circuits, and what is odd about it."""

    head: int
    kv_head: int  # the key-value head it reads (its own index without grouped-query attention)
    norms: dict[str, float]  # Frobenius norm of its slice: "W_q", "W_k", "W_v", "W_o", "b_q", ...
    qk: Circuit
    ov: Circuit
    zero_slices: tuple[str, ...] = ()  # slices that are all zero ("W_o", ...)
    dead: bool = False  # writes nothing whatever it reads: its W_o slice (or its values) is zero
    identical_to: int | None = None  # the first other head with exactly the same weights
    non_finite: int = 0  # NaN or infinite values among its slices
    # circuit ("qk"/"ov") -> "below"/"above": its Frobenius norm lies beyond the spread of the
    # other heads' (log scale, t prediction interval, 1 % for the layer); nothing when it does not
    beyond_spread: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "kv_head": self.kv_head,
            "norms": dict(self.norms),
            "qk": self.qk.to_dict(),
            "ov": self.ov.to_dict(),
            "zero_slices": list(self.zero_slices),
            "dead": self.dead,
            "identical_to": self.identical_to,
            "non_finite": self.non_finite,
            "beyond_spread": dict(self.beyond_spread),
        }


@dataclass(frozen=True)
class LayerWeights:
    """Every head of one layer, how alike the heads are, and what applies to the layer."""

    layer: int
    heads: list[HeadWeights]
    # "qk" / "ov" -> (heads x heads) cosine similarity of the circuits; None when not computed
    similarity: dict[str, list[list[float]]] | None
    shared_norms: dict[str, float] = field(default_factory=dict)  # e.g. "b_o": every head's
    flags: list[str] = field(default_factory=list)  # about the whole layer: all heads equal
    notes: list[str] = field(default_factory=list)  # what applies: GQA, full values, rope
    all_equal: bool = False  # every head identical to head 0 (and more than one head)
    # where a model's layers differ (Gemma 2/3): "local (window 4096, rope base 10000)"
    kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "kind": self.kind or None,
            "heads": [head.to_dict() for head in self.heads],
            "similarity": self.similarity,
            "shared_norms": dict(self.shared_norms),
            "all_equal": self.all_equal,
            "flags": list(self.flags),
            "notes": list(self.notes),
        }


def _circuit(name: str, figure: str) -> Callable[[HeadWeights], float]:
    def read(head: HeadWeights) -> float:
        circuit: Circuit = getattr(head, name)
        return circuit.sigma1 if figure == "sigma1" else float(getattr(circuit, figure))

    return read


def _norm(name: str) -> Callable[[HeadWeights], float]:
    return lambda head: head.norms.get(name, math.nan)


# `--stat` for `--layer all`: one figure per head, by name.
STATS: dict[str, Callable[[HeadWeights], float]] = {
    **{name: _norm(name) for name in ("W_q", "W_k", "W_v", "W_o")},
    **{
        f"{circuit}_{figure}": _circuit(circuit, figure)
        for circuit in CIRCUITS
        for figure in ("sigma1", "frobenius", "stable_rank", "effective_rank")
    },
}
DEFAULT_STAT = "ov_frobenius"
STAT_HELP = {
    "W_q": "Frobenius norm of the head's rows of W_q",
    "W_k": "Frobenius norm of the rows of W_k the head reads",
    "W_v": "Frobenius norm of the rows of W_v the head reads",
    "W_o": "Frobenius norm of the head's columns of W_o",
    "sigma1": "largest singular value",
    "frobenius": "Frobenius norm",
    "stable_rank": "stable rank ||M||_F² / σ₁²",
    "effective_rank": "effective rank exp(entropy of σ / Σσ)",
}


def stat_label(stat: str) -> str:
    """`ov_frobenius` -> `W_OV Frobenius norm`, for titles and colour bars."""
    circuit, _, figure = stat.partition("_")
    if circuit in CIRCUITS:
        return f"W_{circuit.upper()} {STAT_HELP[figure]}"
    return STAT_HELP[stat]


@dataclass(frozen=True, eq=False)
class WeightsRecord:
    """Everything `mha weights` shows, as plain data.

    One layer: every head's figures. `--layer all`: `layers` holds every layer, shown as a
    layers x heads table of `stat`.
    """

    spec: FinalSpec  # every size written out
    source: Source | None
    layers: list[LayerWeights]
    stat: str | None = None  # set for `--layer all`: the figure of the layers x heads table
    dtype: str = "float32"  # the weights' dtype; the figures are computed in float64

    @property
    def layer(self) -> LayerWeights:
        """The (first) layer: the one layer of a single-layer report."""
        return self.layers[0]

    def stat_grid(self, stat: str | None = None) -> list[list[float]]:
        """layers x heads values of `stat` (default: the report's)."""
        read = STATS[stat or self.stat or DEFAULT_STAT]
        return [[read(head) for head in layer.heads] for layer in self.layers]

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "source": None if self.source is None else self.source.to_dict(),
            "dtype": self.dtype,
            "computed_in": "float64",
            "stat": self.stat,
            "stat_grid": self.stat_grid() if self.stat else None,
            "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass(frozen=True, eq=False)
class WeightsReport(WeightsRecord, Displayed):
    """Per head of a layer (or `stat` per layer and head): see `WeightsRecord`."""
