"""Query rows with no valid key (`--valid-lens 0,2`): what each implementation returns there.

Each follows its own convention on such a row: d2l's finite fill makes it uniform,
nn.MultiheadAttention's -inf makes it NaN, SDPA gives it zero weight. The rows are shown apart,
with the numbers each implementation returned and why, and left out of the differences and
the verdicts, which would otherwise only restate the conventions.
Shapes: b batch, h heads, q queries, k key-value pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from mha_cli.comparison.differences import summarize_values
from mha_cli.comparison.notes import mask_fill
from mha_cli.comparison.records import FullyMaskedRows, ImplementationResult, MaskedRowValues
from mha_cli.layer.report import Report
from mha_cli.spec.spec import FinalSpec

Stages = Mapping[str, torch.Tensor]
ROW_STAGES = ("masked_softmax", "weighted_sum", "W_o")  # the stages a query row reaches


def empty_rows(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(b, h, q, k) True = masked -> (b, q): True where a query sees no key (same in every
    head); None when there is no such row."""
    if mask is None:
        return None
    empty = mask.all(dim=-1)[:, 0]  # (b, q)
    return empty if bool(empty.any()) else None


def row_keeps(mask: torch.Tensor | None, stages: Stages) -> dict[str, torch.Tensor | None]:
    """Stage -> where it is compared (None: everywhere)."""
    empty = empty_rows(mask)
    keeps: dict[str, torch.Tensor | None] = dict.fromkeys(stages)
    if empty is None:
        return keeps
    for name, tensor in stages.items():
        if name in ROW_STAGES:
            # (b, 1, q, 1) for per-head stages, (b, q, 1) for the output
            keeps[name] = ~empty[:, None, :, None] if tensor.dim() == 4 else ~empty[:, :, None]
    return keeps


def rows_of(tensor: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """The entries of a stage on the empty rows: (b, h, q, x) or (b, q, H) -> (rows, ...)."""
    return tensor.transpose(1, 2)[empty] if tensor.dim() == 4 else tensor[empty]


def fully_masked_rows(
    spec: FinalSpec,
    report: Report,
    reference: Stages,
    runs: Sequence[tuple[ImplementationResult, Stages | None]],
) -> FullyMaskedRows | None:
    empty = empty_rows(report.mask)
    if empty is None:
        return None
    bias = report.parameters.get("W_o.bias")
    values = [
        MaskedRowValues(
            "d2l",
            _values(reference, empty),
            f"masked scores are filled with {mask_fill(spec):g}, finite and equal across the "
            f"row, so softmax gives each of the {spec.kv} keys 1/{spec.kv}, padding included",
        )
    ]
    for result, stages in runs:
        if stages is None:
            continue
        values.append(
            MaskedRowValues(result.name, _values(stages, empty), _why(stages, empty, bias))
        )
    rows = [(int(b), int(q)) for b, q in empty.nonzero().tolist()]
    return FullyMaskedRows(rows, _describe(spec, rows), values)


def _values(stages: Stages, empty: torch.Tensor) -> list[tuple[str, str]]:
    return [
        (name, summarize_values(rows_of(stages[name], empty)))
        for name in ROW_STAGES
        if name in stages
    ]


def _why(stages: Stages, empty: torch.Tensor, bias: torch.Tensor | None) -> str:
    """Why this implementation returns what it does, read from the numbers themselves."""
    name = next(n for n in ROW_STAGES if n in stages)
    rows = rows_of(stages[name], empty)
    if bool(torch.isnan(rows).all()):
        return "masked scores become -inf, and softmax of a row that is -inf everywhere is 0/0"
    if name == "W_o":
        nothing = torch.zeros_like(rows) if bias is None else bias.expand_as(rows)
        if bool(torch.equal(rows, nothing)):
            return "a row with no key to attend gets zero weight, so the output is W_o's bias" + (
                " (none here: 0)" if bias is None else ""
            )
        return ""
    if bool((rows == 0).all()):
        return "a row with no key to attend gets zero weight, so what it mixes is 0"
    return ""


def _describe(spec: FinalSpec, rows: list[tuple[int, int]]) -> str:
    """`example 0, queries 0..3 (valid_len 0)`, one part per example."""
    parts = []
    for example in sorted({b for b, _ in rows}):
        queries = [q for b, q in rows if b == example]
        span = (
            f"queries {queries[0]}..{queries[-1]}"
            if queries == list(range(queries[0], queries[-1] + 1)) and len(queries) > 1
            else "query " + ", ".join(map(str, queries))
        )
        lens = spec.valid_lens[example] if spec.valid_lens is not None else None
        why = f", valid_len {lens}" if isinstance(lens, int) else ""
        parts.append(f"example {example}, {span}{why}")
    return "; ".join(parts)
