"""Plain records of what the layer did: one `Stage` per step, the run's `Summary`, its `Source`.

Renderers, JSON and golden files read these; none of them needs torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.layer.role_records import HeadRole
from mha_cli.messages import suggest
from mha_cli.spec.spec import FinalSpec
from mha_cli.text.records import TextRecord


@dataclass(frozen=True)
class Stage:
    """One step of the forward pass, as recorded from the tensor it produced."""

    name: str  # stable identifier: JSON key, export name, `--expect` name
    code: str  # the d2l code this step corresponds to
    shape: tuple[int, ...]
    axes: tuple[str, ...]
    params: int | None  # parameters of the module applied here; None for parameter-free steps
    flops: int  # matmul FLOPs, a multiply-add counted as 2 (torch.utils.flop_counter's convention)
    bytes: int  # size of the output tensor
    view: bool  # the output shares storage with its input: no new memory
    dtype: str
    value_range: tuple[float, float] | None = None  # (min, max); None when not computed (meta)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["shape"] = list(self.shape)
        record["axes"] = list(self.axes)
        record["value_range"] = None if self.value_range is None else list(self.value_range)
        return record


@dataclass(frozen=True)
class MaskedKeys:
    """Which key positions one batch example masks, and why (by position, never by score)."""

    example: int
    valid_len: int | list[int] | None  # one length, one per query (2-D valid_lens), or none
    causal: bool
    description: str  # e.g. "keys 3..5 masked: padding beyond valid_len 3"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    """The figures below the table."""

    head_dim: int
    num_heads: int
    num_kv_heads: int
    total_params: int
    params_depend_on_heads: bool
    total_flops: int
    activation_bytes: int  # bytes of every stage output that is not a view
    output_shape: tuple[int, ...]
    computed: bool  # values computed (False on the meta device: shapes only)
    parameter_bytes: int = 0
    # What one head uses of each weight: (name, shape of its slice, which rows or columns).
    head_slices: list[tuple[str, tuple[int, int], str]] = field(default_factory=list)
    masked_keys: list[MaskedKeys] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # What each head does (empty when nothing was computed); the note says what does not apply.
    head_roles: list[HeadRole] = field(default_factory=list)
    head_roles_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["output_shape"] = list(self.output_shape)
        record["masked_keys"] = [m.to_dict() for m in self.masked_keys]
        record["head_roles"] = [role.to_dict() for role in self.head_roles]
        record["head_slices"] = [
            {"weight": name, "shape": list(shape), "slice": where}
            for name, shape, where in self.head_slices
        ]
        return record


@dataclass(frozen=True)
class Source:
    """Where a run's weights came from: the file, the layout recognised, and the keys read."""

    path: str
    layout: str  # e.g. "torch.nn.MultiheadAttention (packed in_proj)", "llama layer 17"
    keys: tuple[str, ...] = ()  # the file's own key names that were read
    shards: tuple[str, ...] = ()  # for a sharded checkpoint: the shard of each key

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["keys"], record["shards"] = list(self.keys), list(self.shards)
        return record


@dataclass(frozen=True, eq=False)
class RunRecord:
    """Everything a renderer shows of one run, as plain data: the renderers need no torch.

    `mha_cli.layer.report.Report` adds the tensors and shows itself as the stage table.
    """

    spec: FinalSpec  # every size written out
    stages: list[Stage]
    summary: Summary
    source: Source | None = None  # None: seeded random weights
    text: TextRecord | None = None  # the texts and their tokens, with --text

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def output(self) -> Stage:
        return self.stages[-1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the specification, every stage, the summary and the weights' source."""
        return {
            "spec": self.spec.to_dict(),
            "source": None if self.source is None else self.source.to_dict(),
            "stages": [stage.to_dict() for stage in self.stages],
            "summary": self.summary.to_dict(),
            **({} if self.text is None else {"text": self.text.to_dict()}),
        }


def select_stages(stages: list[Stage], patterns: list[str]) -> list[str]:
    """Names of the stages that `patterns` pick, in the table's order: a whole name (`scores`),
    or a prefix ending in `.`, `_` or `*` (`queries.`, `W_`, `output*`). A pattern that picks
    nothing is a mistake, named with the stages there are."""
    chosen: list[str] = []
    names = [stage.name for stage in stages]
    for pattern in patterns:
        prefix = pattern.rstrip("*") if pattern.endswith(("*", ".", "_")) else None
        picked = [n for n in names if n == pattern or (prefix is not None and n.startswith(prefix))]
        if not picked:
            raise MhaError(
                f"--stages {pattern!r} names no stage{suggest(pattern, names)} (stages: "
                f"{', '.join(names)})"
            )
        chosen.extend(name for name in picked if name not in chosen)
    return [name for name in names if name in chosen]
