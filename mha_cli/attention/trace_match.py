"""Which stage of the reference a recorded step equals, in whatever layout the user keeps it.

The reference (mha's d2l layer, run with the module's weights and inputs) records its stages;
a user's step holds the same numbers when it is that stage as is, reshaped (nanoGPT keeps
`(B, nh, T, T)` where d2l folds `((b h), q, k)`), or with its axes in another order
(`nn.MultiheadAttention` works sequence-first). Besides the stages, the forms correct code
passes through on the way: the scores before the division by sqrt(d), the queries already
divided by it, and the scores with masked keys filled by any large negative number (d2l's
-1e6, nanoGPT's -inf, Hugging Face's float32 minimum all give a weight of 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations

import torch

from mha_cli.attention.tolerance import Tolerance
from mha_cli.report import Report

MASKED_BELOW = -1e4  # a score at or below this is a masked key: exp() of it is 0 in float32
UNSCALED = "q·kᵀ (scores before / sqrt(d))"
SCALED_QUERIES = "queries.fold / sqrt(d)"
MASKED = ", masked"
MAX_PERMUTED = 1_000_000  # beyond this many elements, only same-layout matches are tried


@dataclass(frozen=True)
class Form:
    """One reference tensor a step may equal: in the run's dtype, and in float64."""

    name: str
    value: torch.Tensor  # float64 copy of the run's dtype result; masked keys as -inf
    golden: torch.Tensor  # float64 result; masked keys as -inf
    integer: bool
    reference_error: float  # largest |value - golden|: what the reference loses in its dtype


@dataclass(frozen=True)
class Match:
    form: str
    how: str  # "" (as is), "reshaped" or "axes reordered"
    order: tuple[int, ...] = ()  # for "axes reordered": the step's axes permuted into this order


def reference_forms(ref: Report, golden: Report, head_dim: int) -> list[Form]:
    forms = [_form(name, ref.tensors[name], golden.tensors[name]) for name in ref.tensors]
    if "scores" in ref.tensors and "queries.fold" in ref.tensors:
        root = math.sqrt(head_dim)
        scores, scores64 = ref.tensors["scores"], golden.tensors["scores"]
        forms.append(_form(UNSCALED, scores * root, scores64 * root))
        queries, queries64 = ref.tensors["queries.fold"], golden.tensors["queries.fold"]
        forms.append(_form(SCALED_QUERIES, queries / root, queries64 / root))
        if ref.mask is not None:
            mask = ref.mask.reshape(scores.shape)  # ((b h), q, k), True where masked
            forms.append(_form("scores" + MASKED, scores, scores64, mask))
            forms.append(_form(UNSCALED + MASKED, scores * root, scores64 * root, mask))
    return forms


def _form(
    name: str, value: torch.Tensor, golden: torch.Tensor, mask: torch.Tensor | None = None
) -> Form:
    integer = not value.is_floating_point()
    value, golden = effective(value), effective(golden)
    if mask is not None:
        value, golden = value.masked_fill(mask, -math.inf), golden.masked_fill(mask, -math.inf)
    finite = torch.isfinite(golden)
    error = 0.0 if integer or not finite.any() else float((value - golden)[finite].abs().max())
    return Form(name, value, golden, integer, error)


def effective(tensor: torch.Tensor) -> torch.Tensor:
    """float64 on the CPU; a masked score (any large negative number) as -inf."""
    if not tensor.is_floating_point():
        return tensor.detach().cpu()
    value = tensor.detach().to(device="cpu", dtype=torch.float64)
    return value.masked_fill(value <= MASKED_BELOW, -math.inf)


def candidates(value: torch.Tensor, forms: list[Form]) -> list[Form]:
    """Forms the step could be: as many numbers, of the same kind (booleans never)."""
    if value.dtype == torch.bool or value.is_complex():
        return []
    integer = not value.is_floating_point()
    return [f for f in forms if f.integer == integer and f.golden.numel() == value.numel()]


def match_step(value: torch.Tensor, forms: list[Form], tol: Tolerance) -> Match | None:
    """The first form the step equals: same shape first, then reshaped (the same numbers in
    the same order), then with its axes reordered."""
    found = candidates(value, forms)
    if not found:
        return None
    step = effective(value)
    same = [f for f in found if tuple(f.golden.shape) == tuple(step.shape)]
    for form in same + [f for f in found if f not in same]:
        if agree(step.flatten(), form.golden.flatten(), tol, form.reference_error):
            return Match(form.name, "" if form in same else "reshaped")
    # Of the forms it equals reordered, the one that needs the fewest axes moved.
    best: Match | None = None
    for form in found:
        order = _reordered(step, form, tol)
        if order is not None and (best is None or _moved(order) < _moved(best.order)):
            best = Match(form.name, "axes reordered", order)
    return best


def _moved(order: tuple[int, ...]) -> int:
    return sum(1 for position, axis in enumerate(order) if position != axis)


def agree(step: torch.Tensor, golden: torch.Tensor, tol: Tolerance, reference_error: float) -> bool:
    """Equal within the agreement rule, element by element; -inf only where -inf is."""
    if step.shape != golden.shape:
        return False
    if not step.is_floating_point():
        return bool(torch.equal(step, golden.to(step.dtype)))
    infinite = torch.isinf(golden)
    if not torch.equal(torch.isinf(step), infinite) or torch.isnan(step).any():
        return False
    if not torch.equal(step[infinite], golden[infinite]):
        return False
    finite = ~infinite
    allowed = tol.bound(reference_error) + tol.rtol * golden[finite].abs()
    return bool(((step[finite] - golden[finite]).abs() <= allowed).all())


def _reordered(step: torch.Tensor, form: Form, tol: Tolerance) -> tuple[int, ...] | None:
    """The order of the step's axes (size-1 axes left out) that lays its numbers out as the
    form has them; None when there is none. Only the step's own axes move: a step that merged
    axes in another order than the form (transpose_output's wrong permute) stays different."""
    if step.numel() > MAX_PERMUTED:
        return None
    mine = step.reshape([s for s in step.shape if s != 1] or [1])
    if mine.dim() > 6:
        return None
    theirs = form.golden.flatten()
    # Reordering axes keeps the multiset of numbers: compare sorted values before anything else.
    if not agree(mine.flatten().sort().values, theirs.sort().values, tol, form.reference_error):
        return None
    for order in permutations(range(mine.dim())):
        if agree(mine.permute(order).flatten(), theirs, tol, form.reference_error):
            return order
    return None
