"""Plain records of `mha compare`: how far each torch implementation is from d2l's layer, stage by
stage and head by head, and whether that is within the tolerance. Renderers, JSON and tests
read these; none of them needs torch. `Comparison`, the API's result, adds the faces
(render/display.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mha_cli.layer.records import Source
from mha_cli.render.display import Displayed
from mha_cli.spec import axes as ax
from mha_cli.spec.spec import FinalSpec
from mha_cli.tolerance import Tolerance

# How one position along an axis is named in a sentence: "example 0, head 2, query 1, key 3".
POSITION_WORDS = {
    ax.BATCH: "example",
    ax.HEADS: "head",
    ax.QUERIES: "query",
    ax.KV_PAIRS: "key",
    ax.HEAD_DIM: "feature",
    ax.HIDDENS: "feature",
    ax.VALUE_SIZE: "feature",
}


@dataclass(frozen=True)
class Where:
    """A position in a compared tensor: one index per named axis."""

    axes: tuple[str, ...]
    index: tuple[int, ...]

    def text(self) -> str:
        """`example 0, head 2, query 1, key 3`."""
        return ", ".join(
            f"{POSITION_WORDS.get(a, a)} {i}" for a, i in zip(self.axes, self.index, strict=True)
        )

    def short(self) -> str:
        """`(0, 2, 1, 3)`: the index alone, read with the stage's axes."""
        return "(" + ", ".join(map(str, self.index)) + ")"

    def to_dict(self) -> dict[str, int]:
        return {POSITION_WORDS.get(a, a): i for a, i in zip(self.axes, self.index, strict=True)}


@dataclass(frozen=True)
class ComparedStage:
    """A stage that is compared, in the layout it is compared in, and what d2l's layer itself
    loses there in the run's dtype against its float64 run (the basis of the tolerance)."""

    name: str  # the stage's name in `mha inspect`'s table
    what: str  # what the tensor is, in words
    axes: tuple[str, ...]
    reference_error: float  # largest |d2l in the dtype - d2l in float64|
    reference_where: Where
    bound: float  # largest error an implementation may make here

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "axes": list(self.axes),
            "reference_error": self.reference_error,
            "reference_where": self.reference_where.to_dict(),
            "bound": self.bound,
        }


@dataclass(frozen=True)
class StageDifference:
    """One implementation at one stage."""

    stage: str
    difference: float  # largest |implementation - d2l|, both in the run's dtype; NaN: a NaN
    where: Where  # where that largest difference (or the first NaN) is; any index when 0
    error: float  # largest |implementation - d2l in float64|: what the verdict weighs
    bound: float
    agrees: bool
    heads_beyond: tuple[int, ...] = ()  # heads whose error exceeds the bound

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        # An exact match has no largest difference to point at.
        record["where"] = None if self.difference == 0 else self.where.to_dict()
        record["heads_beyond"] = list(self.heads_beyond)
        return record


@dataclass(frozen=True)
class HeadDifference:
    """One head of one implementation, over every compared stage that has a heads axis."""

    head: int
    difference: float  # the largest |implementation - d2l| of this head
    stage: str  # the stage where it is
    agrees: bool  # every per-head stage of this head within its bound

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImplementationResult:
    """One torch implementation: how d2l's weights and masks were given to it, and the result."""

    key: str  # stable identifier: torch_mha, torch_mha_no_weights, sdpa_math, ...
    name: str  # `nn.MultiheadAttention`, `SDPA math`, ...
    mapping: str  # how the weights, inputs and masks were handed over, one line
    compared: bool
    reason: str | None = None  # why it was not run (not mappable, backend not available)
    stages: list[StageDifference] = field(default_factory=list)
    heads: list[HeadDifference] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return self.compared and all(s.agrees for s in self.stages)

    def stage(self, name: str) -> StageDifference | None:
        return next((s for s in self.stages if s.stage == name), None)

    def first_failure(self) -> StageDifference | None:
        return next((s for s in self.stages if not s.agrees), None)

    def worst(self) -> StageDifference | None:
        """The stage whose error uses the largest share of its bound."""
        if not self.stages:
            return None
        return max(self.stages, key=lambda s: s.error / s.bound if s.error == s.error else 1e300)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "mapping": self.mapping,
            "compared": self.compared,
            "reason": self.reason,
            "agrees": self.agrees if self.compared else None,
            "stages": [s.to_dict() for s in self.stages],
            "heads": [h.to_dict() for h in self.heads],
        }


@dataclass(frozen=True)
class MaskedRowValues:
    """What one implementation returns on the rows that have no valid key, and why."""

    implementation: str
    values: list[tuple[str, str]]  # (stage, what its numbers are there: "NaN", "0", "0.1667")
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "implementation": self.implementation,
            "values": {stage: text for stage, text in self.values},
            "why": self.why,
        }


@dataclass(frozen=True)
class FullyMaskedRows:
    """Query rows in which every key is masked: each implementation has its own convention there,
    so they are shown apart and left out of the differences and the verdicts."""

    rows: list[tuple[int, int]]  # (example, query)
    description: str  # "example 0, queries 0..3 (valid_len 0)"
    values: list[MaskedRowValues]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [{"example": b, "query": q} for b, q in self.rows],
            "description": self.description,
            "values": [v.to_dict() for v in self.values],
        }


@dataclass(frozen=True, eq=False)
class ComparisonRecord:
    """Everything `mha compare` shows, as plain data."""

    spec: FinalSpec  # every size written out
    source: Source | None
    torch_version: str
    tolerance: Tolerance
    stages: list[ComparedStage]
    implementations: list[ImplementationResult]
    notes: dict[str, list[str]]  # heading -> lines: how each was run, not mapped, masks, ...
    fully_masked: FullyMaskedRows | None = None

    @property
    def compared(self) -> list[ImplementationResult]:
        return [i for i in self.implementations if i.compared]

    @property
    def agrees(self) -> bool:
        """Every implementation that ran agrees with d2l's layer (exit code 0)."""
        return all(i.agrees for i in self.compared)

    def implementation(self, key: str) -> ImplementationResult:
        return next(i for i in self.implementations if i.key == key)

    def to_dict(self) -> dict[str, Any]:
        tolerance = self.tolerance
        return {
            "spec": self.spec.to_dict(),
            "source": None if self.source is None else self.source.to_dict(),
            "torch": self.torch_version,
            "tolerance": {
                "dtype": tolerance.dtype,
                "fudge": tolerance.fudge,
                "atol": tolerance.atol,
                "rtol": tolerance.rtol,
                "rule": tolerance.describe(),
            },
            "agrees": self.agrees,
            "stages": [s.to_dict() for s in self.stages],
            "implementations": [i.to_dict() for i in self.implementations],
            "fully_masked": None if self.fully_masked is None else self.fully_masked.to_dict(),
            "notes": self.notes,
        }


@dataclass(frozen=True, eq=False)
class Comparison(ComparisonRecord, Displayed):
    """d2l's layer against nn.MultiheadAttention and scaled_dot_product_attention."""
