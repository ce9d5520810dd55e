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
from functools import cached_property
from itertools import permutations

import torch

from mha_cli.layer.report import Report
from mha_cli.tolerance import Tolerance

MASKED_BELOW = -1e4  # a score at or below this is a masked key: exp() of it is 0 in float32
UNSCALED = "q·kᵀ (scores before / sqrt(d))"
SCALED_QUERIES = "queries.fold / sqrt(d)"
MASKED = ", masked"
MAX_PERMUTED = 1_000_000  # beyond this many elements, only same-layout matches are tried


@dataclass(frozen=True)
class Form:
    """One reference tensor a step may equal, in float64, and what the run's dtype loses."""

    name: str
    golden: torch.Tensor  # float64 result; masked keys as -inf
    integer: bool
    reference_error: float  # largest |result in the run's dtype - golden|

    @cached_property
    def sorted(self) -> torch.Tensor:
        return self.golden.flatten().sort().values

    @cached_property
    def numbers(self) -> tuple[int, float, float]:
        """What every reordering keeps: how many are finite, their sum, the sum of |x|."""
        finite = self.golden[torch.isfinite(self.golden)]
        return finite.numel(), float(finite.sum()), float(finite.abs().sum())


@dataclass(frozen=True)
class Match:
    form: str
    how: str  # "" (as is), "reshaped" or "axes reordered"
    order: tuple[int, ...] = ()  # for "axes reordered": the step's axes permuted into this order


def reference_forms(ref: Report, golden: Report, head_dim: int) -> list[Form]:
    forms = [_form(name, ref.tensors[name], golden.tensors[name]) for name in ref.tensors]
    by_name = {form.name: form for form in forms}
    if "scores" in by_name and "queries.fold" in by_name:
        root = math.sqrt(head_dim)
        scores, queries = by_name["scores"], by_name["queries.fold"]
        unscaled = Form(UNSCALED, scores.golden * root, False, scores.reference_error * root)
        scaled = Form(SCALED_QUERIES, queries.golden / root, False, queries.reference_error / root)
        forms += [unscaled, scaled]
        if ref.mask is not None:
            mask = ref.mask.reshape(scores.golden.shape)  # ((b h), q, k), True where masked
            for plain in (scores, unscaled):
                masked = plain.golden.masked_fill(mask, -math.inf)
                forms.append(Form(plain.name + MASKED, masked, False, plain.reference_error))
    return forms


def _form(name: str, value: torch.Tensor, golden: torch.Tensor) -> Form:
    if not value.is_floating_point():
        return Form(name, golden.detach().cpu(), True, 0.0)
    truth = effective(golden)
    seen = torch.isfinite(truth)
    error = (value.detach().cpu().double() - truth).abs()
    return Form(name, truth, False, float(error[seen].max()) if bool(seen.any()) else 0.0)


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
    numbers = _Numbers(step) if step.is_floating_point() else None
    for form in found:
        if numbers is not None and not numbers.may_be(form, tol):
            continue  # not the same numbers: no order of the axes can make them equal
        order = _reordered(step, form, tol)
        if order is not None and (best is None or _moved(order) < _moved(best.order)):
            best = Match(form.name, "axes reordered", order)
    return best


def _moved(order: tuple[int, ...]) -> int:
    return sum(1 for position, axis in enumerate(order) if position != axis)


def agree(step: torch.Tensor, golden: torch.Tensor, tol: Tolerance, reference_error: float) -> bool:
    """Equal within the agreement rule, element by element; -inf only where -inf is, never NaN.

    A few hundred elements spread over the tensor are compared first: most candidate forms
    differ everywhere, and a million-element comparison is not needed to see it."""
    if step.shape != golden.shape:
        return False
    if not step.is_floating_point():
        return bool(torch.equal(step, golden.to(step.dtype)))
    stride = max(1, step.numel() // SAMPLE)
    if stride > 1 and not _close(step[::stride], golden[::stride], tol, reference_error):
        return False
    return _close(step, golden, tol, reference_error)


SAMPLE = 512


def _close(
    step: torch.Tensor, golden: torch.Tensor, tol: Tolerance, reference_error: float
) -> bool:
    # |step - golden| <= bound + rtol |golden|; equal infinities are close, NaN never is.
    return bool(torch.isclose(step, golden, rtol=tol.rtol, atol=tol.bound(reference_error)).all())


def _reordered(step: torch.Tensor, form: Form, tol: Tolerance) -> tuple[int, ...] | None:
    """The order of the step's axes (size-1 axes left out) that lays its numbers out as the
    form has them; None when there is none. Only the step's own axes move: a step that merged
    axes in another order than the form (transpose_output's wrong permute) stays different."""
    if step.numel() > MAX_PERMUTED:
        return None
    mine = step.reshape([s for s in step.shape if s != 1] or [1])
    if mine.dim() > 6:
        return None
    # Reordering axes keeps the multiset of numbers: sorted, they must agree already.
    if not agree(mine.flatten().sort().values, form.sorted, tol, form.reference_error):
        return None
    theirs = form.golden.flatten()
    for order in permutations(range(mine.dim())):
        if agree(mine.permute(order).flatten(), theirs, tol, form.reference_error):
            return order
    return None


class _Numbers:
    """What every reordering of a step keeps, computed once per step: how many numbers are
    finite, and their sum. A form whose figures differ cannot be the step reordered."""

    def __init__(self, step: torch.Tensor) -> None:
        finite = torch.isfinite(step)
        self.finite = int(finite.sum())
        self.total = float(step[finite].sum()) if self.finite else 0.0

    def may_be(self, form: Form, tol: Tolerance) -> bool:
        finite, total, magnitude = form.numbers
        if self.finite != finite:
            return False
        return (
            abs(self.total - total)
            <= finite * tol.bound(form.reference_error) + tol.rtol * magnitude
        )
