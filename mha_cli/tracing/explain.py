"""What went wrong, in words a learner can act on, when a traced module disagrees with d2l.

Each recogniser looks at the first step whose values stop matching the reference (and the
steps it was computed from) for one mistake readers of the chapter make: `repeat` where d2l
has `repeat_interleave`, masked scores filled with 0, no division by sqrt(d), the heads split
from the wrong end, the heads joined in the wrong order by `transpose_output`; then at the
attention weights themselves: a causal mask the reference lacks (or has), keys masked that
d2l does not mask. When none applies, the step and what it should have equalled are named.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from mha_cli.layer.report import Report
from mha_cli.spec.axes import HEAD_DIM, HEADS, HIDDENS
from mha_cli.spec.spec import FinalSpec
from mha_cli.tolerance import tolerance
from mha_cli.tracing.axes import RESHAPES
from mha_cli.tracing.match import (
    MASKED,
    SCALED_QUERIES,
    UNSCALED,
    Form,
    Match,
    agree,
    effective,
)
from mha_cli.tracing.tracing import SOFTMAXES, Trace


class _Context:
    def __init__(
        self,
        trace: Trace,
        matches: dict[int, Match | None],
        forms: list[Form],
        spec: FinalSpec,
        golden: Report,
        misshaped: dict[int, tuple[Match, str]],
    ) -> None:
        self.trace, self.matches, self.forms, self.spec, self.golden = (
            trace,
            matches,
            forms,
            spec,
            golden,
        )
        self.misshaped = misshaped
        self.steps = {s.index: s for s in trace.steps}
        self.tol = tolerance(spec.dtype)

    def where(self, index: int) -> str:
        step = self.steps[index]
        return f"#{index} {step.stage.name} at {step.location} ({step.stage.code})"

    def ancestors(self, index: int) -> list[int]:
        seen, todo = set(), [index]
        while todo:
            for parent in self.trace.parents.get(todo.pop(), []):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return sorted(seen, reverse=True)


def explain(
    trace: Trace,
    matches: dict[int, Match | None],
    divergence: int | None,
    forms: list[Form],
    spec: FinalSpec,
    golden: Report,
    user_weights: torch.Tensor | None,
    misshaped: dict[int, tuple[Match, str]] | None = None,
) -> list[str]:
    context = _Context(trace, matches, forms, spec, golden, misshaped or {})
    reasons: list[str] = []
    if divergence is not None:
        for recognise in STEP_RECOGNISERS:
            found = recognise(context, divergence)
            if found:
                reasons.append(found)
                break
    # Weights normalised over another axis give masked keys weight: no mask reading then.
    if user_weights is not None and not (reasons and reasons[0].startswith(WRONG_AXIS)):
        reasons += [
            r for r in (_causal(context, user_weights), _masked_keys(context, user_weights)) if r
        ]
    if divergence is not None and not reasons:
        reasons.append(_unexplained(context, divergence))
    return reasons


def _tiled_lens(c: _Context, index: int) -> str | None:
    """valid_lens.repeat(num_heads): [3, 2, 3, 2, ...] where d2l has [3, 3, 3, 3, 3, 2, ...]."""
    value, lens = c.trace.values.get(index), c.golden.tensors.get("valid_lens")
    if value is None or lens is None or value.is_floating_point():
        return None
    heads = c.spec.heads
    tiled = lens.repeat(heads) if lens.dim() == 1 else lens.repeat(heads, 1)
    if value.numel() != tiled.numel() or not torch.equal(value.flatten().cpu(), tiled.flatten()):
        return None
    interleaved = torch.repeat_interleave(lens, heads, dim=0)
    return (
        f"valid_lens repeated as {_few(tiled, 4)}: each head was given another example's "
        f"padding; d2l uses repeat_interleave, which gives {_few(interleaved, heads + 1)}"
    )


def _mask_fill(c: _Context, index: int) -> str | None:
    """Masked scores filled with 0 (or any value a softmax still gives weight to)."""
    value = c.trace.values.get(index)
    if value is None or not value.is_floating_point():
        return None
    step = effective(value).flatten()
    for form in (
        f for f in c.forms if f.name.endswith(MASKED) and f.golden.numel() == step.numel()
    ):
        golden = form.golden.flatten()
        masked = torch.isinf(golden)
        if not masked.any() or not agree(
            step[~masked], golden[~masked], c.tol, form.reference_error
        ):
            continue
        fills = step[masked].unique()
        if fills.numel() == 1 and torch.isfinite(fills).all():
            fill = float(fills[0])
            return (
                f"masked scores filled with {fill:g}: a softmax gives the padding keys weight "
                f"exp({fill:g}) like any other score; fill them with a large negative number, "
                "as d2l's masked_softmax does (sequence_mask(..., value=-1e6))"
            )
        plain = next((f for f in c.forms if f.name == form.name.removesuffix(MASKED)), None)
        if plain is not None and agree(step, plain.golden.flatten(), c.tol, plain.reference_error):
            return "these scores are not masked at all: valid_lens never reached them"
    return None


def _unscaled(c: _Context, index: int) -> str | None:
    """The softmax of scores never divided by sqrt(d), or scores scaled by another factor."""
    d = c.spec.final().head_dim
    root = math.sqrt(d)
    step = c.steps[index]
    if step.stage.name in SOFTMAXES:
        for parent in c.trace.parents.get(index, []):
            match = c.matches.get(parent)
            if match is not None and match.form.startswith(UNSCALED):
                return (
                    f"the scores were not divided by sqrt(d) = sqrt({d}) ≈ {root:.3g} before "
                    f"this softmax: its input (#{parent}) equals d2l's q·kᵀ before the scaling; "
                    "d2l computes torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)"
                )
    value = c.trace.values.get(index)
    if value is None or not value.is_floating_point():
        return None
    mine = effective(value).flatten()
    for form in (f for f in c.forms if f.name.startswith(("scores", UNSCALED, SCALED_QUERIES))):
        theirs = form.golden.flatten()
        finite = torch.isfinite(theirs) & (theirs.abs() > 1e-3)
        if (
            theirs.numel() != mine.numel()
            or not finite.any()
            or not torch.isfinite(mine[finite]).all()
        ):
            continue
        ratio = float((mine[finite] / theirs[finite]).median())
        if abs(ratio - 1) < 1e-3 or not agree(
            mine[finite], theirs[finite] * ratio, c.tol, form.reference_error
        ):
            continue
        unscaled = form.name.startswith(UNSCALED)  # ratio to q·kᵀ, not to q·kᵀ / sqrt(d)
        if math.isclose(ratio * (d if unscaled else root), 1, rel_tol=1e-3):
            return (
                f"these scores are divided by d = {d} (or twice by sqrt(d)); d2l divides them "
                f"once, by sqrt(d) ≈ {root:.3g}"
            )
        # mine = q·kᵀ / sqrt(n): n from the ratio to d2l's scores (q·kᵀ / sqrt(d)) or to q·kᵀ
        divisor = (1 if unscaled else d) / ratio**2
        whole = round(divisor)
        what = "queries" if form.name == SCALED_QUERIES else "scores"
        if whole >= 2 and math.isclose(divisor, whole, rel_tol=1e-3):
            return (
                f"these {what} are divided by sqrt({whole}){_named(c, whole)} instead of sqrt({d})"
                f" (d2l's {form.name} times {ratio:.4g}); d2l divides by the square root of one "
                f"head's width, d = queries.shape[-1] = {d} (num_hiddens / num_heads)"
            )
        return f"these values are d2l's {form.name} times {ratio:.4g}"
    return None


def _named(c: _Context, size: int) -> str:
    """Which of the layer's sizes a wrong divisor is, when one is."""
    names = [
        ("num_hiddens", c.spec.hiddens),
        ("the query size", c.spec.final().query_size),
        ("num_heads", c.spec.heads),
        ("the number of keys", c.spec.kv),
    ]
    found = next((name for name, value in names if value == size), None)
    return "" if found is None else f" ({found})"


def _wrong_end(c: _Context, index: int) -> str | None:
    """X.reshape(b, n, -1, num_heads): the last axis taken as the heads."""
    h, d = c.spec.heads, c.spec.final().head_dim
    if h == d:
        return None
    for candidate in [index, *c.ancestors(index)]:
        step = c.steps[candidate]
        if step.stage.name not in RESHAPES or tuple(step.stage.axes[-2:]) != (HEAD_DIM, HEADS):
            continue
        parents = [c.steps[p] for p in c.trace.parents.get(candidate, [])]
        if any(p.stage.axes and p.stage.axes[-1] == HIDDENS for p in parents):
            return (
                f"the heads are split from the wrong end at {step.location} ({step.stage.code}): "
                f"the shape {tuple(step.stage.shape)} makes the last axis ({h}) the heads, so head "
                f"i takes features i, i+{h}, i+{2 * h}, ... of the projection; d2l splits "
                f"X.reshape(X.shape[0], X.shape[1], num_heads, -1): head i takes features "
                f"i*{d} .. i*{d}+{d - 1}"
            )
    return None


def _merge_order(c: _Context, index: int) -> str | None:
    """A reshape that merges axes still in another order than d2l's (transpose_output)."""
    step = c.steps[index]
    if step.stage.name not in RESHAPES:
        return None
    for parent in c.trace.parents.get(index, []):
        match = c.matches.get(parent)
        if match is None or match.how != "axes reordered":
            continue
        before = c.steps[parent]
        axes = ", ".join(before.axis_labels())
        if match.form.startswith("output."):
            return (
                f"the heads are joined in the wrong order: {c.where(parent)} leaves the axes as "
                f"({axes}), and {step.location} ({step.stage.code}) merges them as they are; d2l's "
                "transpose_output permutes to (batch, queries, heads, head dim) with "
                "X.permute(0, 2, 1, 3) first, so each head's features stay side by side"
            )
        return (
            f"{c.where(parent)} holds d2l's {match.form} with the axes ordered ({axes}), and "
            f"{step.location} ({step.stage.code}) merges them in that order, not in d2l's"
        )
    return None


PROJECTIONS = ("W_q", "W_k", "W_v", "queries", "keys", "values")
JOINED = ("weighted_sum", "output.", "dropout", "masked_softmax")


def _no_permute(c: _Context, index: int) -> str | None:
    """A reshape that folds or joins the heads straight, without the permute d2l has first:
    the step has a reference stage's shape and another's numbers, in their first order."""
    if index not in c.misshaped:
        return None
    match, _shape_of = c.misshaped[index]
    step = c.steps[index]
    parents = [c.steps[p] for p in c.trace.parents.get(index, []) if p in c.steps]
    source = next((p for p in parents if p.stage.axes), None)
    before = f"({', '.join(source.axis_labels())}) " if source is not None else ""
    after = f"({', '.join(step.axis_labels())})"
    where = f"{step.location} ({step.stage.code})"
    if match.form.startswith(PROJECTIONS):
        return (
            f"the heads are folded into the batch without the permute: {where} reshapes "
            f"{before}straight into {after}; the heads axis was not moved next to the batch "
            'axis first, so each "head" of the fold mixes positions (its rows are '
            f"consecutive pieces of {match.form}, not one head's features at every position); "
            "d2l's transpose_qkv calls X.permute(0, 2, 1, 3) before "
            "X.reshape(-1, X.shape[2], X.shape[3])"
        )
    if match.form.startswith(JOINED):
        return (
            f"the heads are joined without the permute: {where} reshapes {before}straight "
            f"into {after}; the heads axis was not moved next to the head dim first, so each "
            "query's row mixes positions (it is a piece of one head's outputs for several "
            "queries); d2l's transpose_output calls X.permute(0, 2, 1, 3) before "
            "X.reshape(X.shape[0], X.shape[1], -1)"
        )
    return (
        f"{where} has the shape {tuple(step.stage.shape)} of d2l's {_shape_of}, but holds "
        f"d2l's {match.form} in its first order: a reshape where axes had to be moved first "
        "(permute or transpose)"
    )


WRONG_AXIS = "the softmax normalised over"


def _softmax_axis(c: _Context, index: int) -> str | None:
    """A softmax over another axis than the keys: its weights sum to 1 along that axis."""
    step = c.steps[index]
    value = c.trace.values.get(index)
    if step.stage.name not in SOFTMAXES or value is None or value.dim() < 2:
        return None
    if step.stage.name == "log_softmax":
        return None
    total = value.double()
    # A sum of n weights rounded in the run's dtype (float16's eps is 1e-3) is 1 within n eps.
    atol = max(1e-4, 2 * torch.finfo(value.dtype).eps * max(value.shape))

    def sums_to_one(axis: int) -> bool:
        """1 along `axis`, where the sum is a number (a row of only -inf scores gives NaN)."""
        sums = total.sum(axis)
        known = ~torch.isnan(sums)
        return bool(known.any()) and bool(((sums[known] - 1).abs() <= atol).all())

    if sums_to_one(-1):
        return None  # normalised over the last axis, the keys
    for axis in range(value.dim() - 1):
        if value.shape[axis] > 1 and sums_to_one(axis):
            labels = step.axis_labels()
            last = value.dim() - 1
            return (
                f"{WRONG_AXIS} axis {axis} ({labels[axis]}) at {step.location} "
                f"({step.stage.code}): each key's weights sum to 1 over the "
                f"{labels[axis]}; the attention weights must sum to 1 over the keys, axis "
                f"{last} ({labels[last]}): d2l's masked_softmax calls softmax(..., dim=-1)"
            )
    return None


STEP_RECOGNISERS: list[Callable[[_Context, int], str | None]] = [
    _no_permute,
    _softmax_axis,
    _tiled_lens,
    _wrong_end,
    _mask_fill,
    _unscaled,
    _merge_order,
]


def _causal(c: _Context, weights: torch.Tensor) -> str | None:
    _b, _h, q, k = weights.shape
    query_pos = torch.arange(q) + max(0, k - q)
    future = torch.arange(k)[None, :] > query_pos[:, None]  # (q, k)
    if not future.any():
        return None
    zero = weights.detach().cpu() == 0  # (b, h, q, k)
    future4 = future.expand(zero.shape)
    if c.spec.causal:
        if not bool(zero[future4].all()):
            return "the reference masks future keys (--causal) but your module gives them weight"
        return None
    # Only future keys the reference leaves unmasked tell a causal mask apart from padding.
    reference = c.golden.mask
    unmasked = future4 if reference is None else future4 & ~reference.expand(zero.shape)
    if unmasked.any() and bool(zero[unmasked].all()):
        return (
            "your module masks future keys (its weights above the diagonal are all 0), a causal "
            "mask; the reference ran without one: add --causal"
        )
    return None


def _masked_keys(c: _Context, weights: torch.Tensor) -> str | None:
    """The first (example, head, query) whose masked keys differ from the reference's."""
    if c.golden.mask is None:
        return None
    zero = weights.detach().cpu() == 0  # (b, h, q, k)
    expected = c.golden.mask.expand(zero.shape)
    differ = (zero != expected).any(dim=-1).nonzero()
    if not len(differ):
        return None
    b, h, q = (int(i) for i in differ[0])
    mine, theirs = _spans(zero[b, h, q]), _spans(expected[b, h, q])
    return (
        f"example {b}, head {h}, query {q}: your module masks {mine}, the reference masks {theirs}"
    )


def _unexplained(c: _Context, index: int) -> str:
    value = c.trace.values[index]
    same = [
        f.name for f in c.forms if f.golden.numel() == value.numel() and not f.name.endswith(MASKED)
    ]
    listed = ", ".join(same[:6]) if same else "none"
    return (
        f"{c.where(index)} matches none of the reference's stages with {value.numel()} numbers "
        f"({listed}); compare that line with d2l's code for the stage it should compute"
    )


def _spans(masked: torch.Tensor) -> str:
    keys = masked.nonzero().flatten().tolist()
    if not keys:
        return "no key"
    runs: list[list[int]] = []
    for key in keys:
        if runs and key == runs[-1][-1] + 1:
            runs[-1].append(key)
        else:
            runs.append([key])
    return "keys " + ", ".join(f"{r[0]}..{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def _few(values: torch.Tensor, shown: int) -> str:
    items = values.flatten().tolist()
    text = ", ".join(str(v) for v in items[:shown])
    return f"[{text}, ...]" if len(items) > shown else f"[{text}]"
