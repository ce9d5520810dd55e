"""What differs between recorded runs of variants of one layer: the stages whose shapes differ,
parameters, FLOPs, activation bytes and the key-value cache, and one sentence per difference.

Every number is read from the runs' stage records. The key-value cache is what decoding keeps
of each past token: the outputs of W_k and W_v (their recorded bytes, per batch example and
key position, and in all), for one layer. Pure Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mha_cli.layer.records import RunRecord, Stage
from mha_cli.messages import shape_text
from mha_cli.render import numbers
from mha_cli.render.display import Displayed
from mha_cli.spec.spec import FinalSpec


@dataclass(frozen=True)
class Column:
    """One variant: its label, the settings it changes, and its recorded run."""

    label: str
    settings: dict[str, Any]
    record: RunRecord

    @property
    def kv_cache(self) -> int:
        """Bytes of keys and values cached for the run's whole batch and context."""
        return self.record.stage("W_k").bytes + self.record.stage("W_v").bytes

    @property
    def kv_cache_per_token(self) -> int:
        """Bytes cached per token of one sequence: W_k's and W_v's output for one position."""
        return sum(_per_token(self.record.stage(name)) for name in ("W_k", "W_v"))

    def figures(self) -> dict[str, int]:
        summary = self.record.summary
        return {
            "parameters": summary.total_params,
            "flops": summary.total_flops,
            "activation_bytes": summary.activation_bytes,
            "kv_cache_bytes_per_token": self.kv_cache_per_token,
            "kv_cache_bytes": self.kv_cache,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "settings": self.settings,
            "kv_heads": self.record.summary.num_kv_heads,
            "value_mode": self.record.spec.value_mode,
            **self.figures(),
            "stages": {s.name: list(s.shape) for s in self.record.stages},
        }


def _per_token(stage: Stage) -> int:
    batch, positions = stage.shape[0], stage.shape[1]  # (b, k, features)
    return stage.bytes // (batch * positions)


@dataclass(frozen=True)
class VariantsComparison(Displayed):
    """The variants side by side; `reference` is the column every sentence compares with."""

    spec: FinalSpec  # the base specification
    columns: list[Column]
    reference: int
    notes: list[str] = field(default_factory=list)

    def differing_stages(self) -> list[str]:
        """Stages whose shape is not the same in every column (or missing from some)."""
        names: list[str] = []
        for column in self.columns:
            names += [s.name for s in column.record.stages if s.name not in names]
        return [n for n in names if len({_shape_of(c, n) for c in self.columns}) > 1]

    def sentences(self) -> list[str]:
        base = self.columns[self.reference]
        lines = []
        for column in self.columns:
            if column is not base:
                lines += differences(base, column)
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "reference": self.columns[self.reference].label,
            "columns": [c.to_dict() for c in self.columns],
            "differing_stages": self.differing_stages(),
            "differences": self.sentences(),
            "notes": self.notes,
        }


def _shape_of(column: Column, name: str) -> tuple[int, ...] | None:
    return next((s.shape for s in column.record.stages if s.name == name), None)


# (figure key, its name in a sentence, formatter, a stage's share of it)
FIGURES: list[tuple[str, str, Callable[[int], str], Callable[[Stage], int | None]]] = [
    ("parameters", "the parameters", numbers.count, lambda s: s.params),
    ("flops", "the FLOPs", numbers.count, lambda s: s.flops or None),
    ("activation_bytes", "activation memory", numbers.size, lambda s: None if s.view else s.bytes),
    ("kv_cache_bytes_per_token", "the kv cache per token", numbers.size, lambda s: None),
]


def differences(base: Column, other: Column) -> list[str]:
    """One sentence per figure that differs: what grows or shrinks, by what factor, why, and
    in which stages."""
    before, after = base.figures(), other.figures()
    lines = []
    for key, words, show, part in FIGURES:
        a, b = before[key], after[key]
        if a == b:
            continue
        plural = words.endswith("s")
        verb = ("grow" if plural else "grows") if b > a else ("shrink" if plural else "shrinks")
        where = (
            _cache_stages(base.record, other.record)
            if key == "kv_cache_bytes_per_token"
            else _changed_parts(base.record, other.record, part, show)
        )
        why = reason(base.record, other.record, key, b > a, other.settings)
        lines.append(
            f"{other.label}: {words} {verb} {factor_text(a, b)} ({show(a)} → {show(b)}) "
            f"because {why}; in {where}."
        )
    return lines


def factor_text(a: int, b: int) -> str:
    """`5.00×` for a large change, `by 1.9 %` for a small one (where `1.02×` says little)."""
    if min(a, b) == 0:
        return "from nothing" if a == 0 else "to nothing"
    factor = max(a, b) / min(a, b)
    return f"{factor:.2f}×" if factor >= 1.1 else f"by {abs(b - a) / a * 100:.1f} %"


def _changed_parts(
    a: RunRecord, b: RunRecord, part: Callable[[Stage], int | None], show: Callable[[int], str]
) -> str:
    """The three stages whose share of a figure changed most: `W_o 10,000 → 50,000`."""
    shares_a = {s.name: part(s) or 0 for s in a.stages}
    shares_b = {s.name: part(s) or 0 for s in b.stages}
    names = [n for n in {**shares_a, **shares_b} if shares_a.get(n, 0) != shares_b.get(n, 0)]
    names.sort(key=lambda n: -abs(shares_a.get(n, 0) - shares_b.get(n, 0)))
    shown = [f"{n} {show(shares_a.get(n, 0))} → {show(shares_b.get(n, 0))}" for n in names[:3]]
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(shown) + more


def _cache_stages(a: RunRecord, b: RunRecord) -> str:
    return " and ".join(
        f"{n} {shape_text(a.stage(n).shape)} → {shape_text(b.stage(n).shape)}"
        for n in ("W_k", "W_v")
        if a.stage(n).shape != b.stage(n).shape
    )


def _heads(n: int, owner: bool = False) -> str:
    """`1 kv head`, `5 kv heads`; as an owner `1 kv head's`, `5 kv heads'`."""
    if owner:
        return f"{n} kv head's" if n == 1 else f"{n} kv heads'"
    return f"{n} kv head{'s' if n != 1 else ''}"


def reason(
    a: RunRecord, b: RunRecord, key: str, grows: bool, settings: dict[str, Any] | None = None
) -> str:
    """Why figure `key` differs between two runs, from what their records say about the
    values and the key-value heads."""
    parts = []
    a_full, b_full = a.spec.value_mode == "full", b.spec.value_mode == "full"
    if a_full != b_full:
        full, split = (b, a) if b_full else (a, b)
        whole, own = full.stage("W_v").shape[-1], split.stage("weighted_sum").shape[-1]
        concat = (a.stage("output.concat").shape[-1], b.stage("output.concat").shape[-1])
        parts.append(
            f"each of the {full.summary.num_heads} heads weighs "
            + (
                f"all {whole} value features instead of its {own}"
                if b_full
                else f"its {own} value features instead of all {whole}"
            )
            + f", so the heads concatenate to {concat[1]} features instead of {concat[0]}"
        )
    ga, gb = a.summary.num_kv_heads, b.summary.num_kv_heads
    if ga != gb:
        heads = b.summary.num_heads
        if key == "kv_cache_bytes_per_token":
            parts.append(f"decoding keeps the keys and values of {_heads(gb)} instead of {ga}")
        elif key == "activation_bytes" and grows == (gb < ga):
            parts.append(
                f"repeat_interleave copies the keys and values of {_heads(gb)} to all "
                f"{heads} query heads (keys.share, values.share)"
                if gb < ga
                else f"the {heads} query heads no longer copy shared keys and values"
            )
        else:
            parts.append(
                f"{heads} query heads read {_heads(gb)} instead of {ga}: W_k and W_v project "
                f"to {_heads(gb, owner=True)} features"
            )
    # Other settings a variant changes (`--variant 'head-dim=32'`): named as they were given.
    others = [
        f"{k.replace('_', '-')} {getattr(a.spec, k, None)} → {getattr(b.spec, k, None)}"
        for k in (settings or {})
        if k not in ("value_mode", "kv_heads")
        and getattr(a.spec, k, None) != getattr(b.spec, k, None)
    ]
    if others:
        parts.append(("of " if not parts else "with ") + ", ".join(others))
    return "; ".join(parts) or "of the settings"
