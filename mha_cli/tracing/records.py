"""Plain records of a traced module: one row per tensor operation, group rows for submodules,
and what `--check` found. Renderers, JSON and tests read these; none of them needs torch.

Each operation row holds a `Stage` (the record `mha inspect` shows), with the user's source
line as its code, and says where that line is and which of its axis names are guesses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mha_cli.layer.records import Stage
from mha_cli.spec.spec import FinalSpec

INPUT = "input"
OP = "op"


@dataclass(frozen=True)
class TraceStep:
    """One tensor the module's forward made (or was given, for inputs)."""

    index: int
    stage: Stage  # name: the operation (reshape, linear, softmax...); code: the user's line
    location: str  # "attention.py:42"; "" for inputs
    guessed: tuple[bool, ...]  # per axis: named by size alone, and another axis shares it
    module: str = ""  # the submodule it ran in ("" for the traced module itself)
    depth: int = 0  # how deep that submodule is nested
    kind: str = OP  # OP, or INPUT for the tensors the module was given
    reference: str = ""  # --check: the reference stage its values equal ("" when none)
    how: str = ""  # --check: "" (as is), "reshaped", "axes reordered", or "differs"

    def axis_labels(self) -> list[str]:
        return [f"{a}?" if g else a for a, g in zip(self.stage.axes, self.guessed, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": "step",
            "index": self.index,
            "kind": self.kind,
            **self.stage.to_dict(),
            "location": self.location,
            "guessed": list(self.guessed),
            "module": self.module,
            "depth": self.depth,
            "reference": self.reference or None,
            "how": self.how or None,
        }


@dataclass(frozen=True)
class TraceGroup:
    """A submodule called inside forward: the rows after it, one level deeper, ran in it."""

    module: str  # its path in the traced module ("W_q", "attention", "to_out.0")
    type_name: str  # "Linear"
    params: int
    depth: int

    def to_dict(self) -> dict[str, Any]:
        return {"row": "module", **asdict(self)}


Row = TraceStep | TraceGroup


@dataclass(frozen=True)
class TensorAgreement:
    """The user's tensor against the reference's, under the agreement rule of `tolerance`."""

    what: str  # "attention weights" or "output"
    shape: tuple[int, ...]
    error: float  # largest absolute difference from the float64 reference
    reference_error: float  # the float32 (or the run's dtype) reference's own, likewise
    bound: float
    agrees: bool
    differing: list[tuple[int, int]] = field(
        default_factory=list
    )  # (example, head), or (example, -1)
    worst: tuple[int, ...] = ()  # index of the largest difference

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["shape"], record["worst"] = list(self.shape), list(self.worst)
        record["differing"] = [list(pair) for pair in self.differing]
        return record


@dataclass(frozen=True)
class CheckResult:
    """`--check`: the module against mha's reference, run with the same weights and inputs."""

    reference: str  # what ran as the reference, in words
    layout: str  # how the module's weights were read as d2l's W_q ... W_o
    tolerance: str
    output: TensorAgreement
    weights: TensorAgreement | None  # None: no softmax was recorded
    divergence: int | None = None  # index of the first step that stops matching the reference
    explanations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return self.output.agrees and (self.weights is None or self.weights.agrees)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agrees": self.agrees,
            "reference": self.reference,
            "layout": self.layout,
            "tolerance": self.tolerance,
            "output": self.output.to_dict(),
            "attention_weights": None if self.weights is None else self.weights.to_dict(),
            "divergence": self.divergence,
            "explanations": list(self.explanations),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class TraceSummary:
    """The figures below the table."""

    module: str  # the traced class, e.g. "MultiHeadAttention"
    source: str  # where it was loaded from
    operations: int
    total_params: int
    total_flops: int
    activation_bytes: int
    sizes: list[tuple[str, int]]  # the axis names and the sizes they stand for
    attention_step: int | None  # the softmax whose output is the attention weights
    output_shape: tuple[int, ...] | None
    computed: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["sizes"] = {name: size for name, size in self.sizes}
        record["output_shape"] = None if self.output_shape is None else list(self.output_shape)
        return record


@dataclass(frozen=True, eq=False)
class TraceRecord:
    """Everything a renderer shows of one traced forward pass, as plain data."""

    target: str
    spec: FinalSpec  # every size written out
    rows: list[Row]
    summary: TraceSummary
    check: CheckResult | None = None
    failure: str | None = None  # why forward stopped (the rows end at the failing step)

    @property
    def steps(self) -> list[TraceStep]:
        return [row for row in self.rows if isinstance(row, TraceStep)]

    def step(self, index: int) -> TraceStep:
        return next(s for s in self.steps if s.index == index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "spec": self.spec.to_dict(),
            "rows": [row.to_dict() for row in self.rows],
            "summary": self.summary.to_dict(),
            "check": None if self.check is None else self.check.to_dict(),
            "failure": self.failure,
        }
