"""`mha trace --check`: is the user's attention the reference's, with the same weights and inputs?

The module's weights are read as d2l's `W_q ... W_o` (`files/module_weights.py`), mha's layer
runs with them on the same inputs twice, in the run's dtype and in float64 (the golden run), and
the module's attention weights (the softmax it recorded, per head) and output are compared with
the agreement rule `mha compare` uses (`tolerance.py`). Every recorded step is matched to the
reference stage it equals (`trace_match.py`); when the module disagrees, the first step whose
values stop matching, and what is known to go wrong there (`trace_explain.py`), say why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from mha_cli.errors import MhaError
from mha_cli.files.sources import Resolved, sizes_from_weights
from mha_cli.layer.report import Report
from mha_cli.layer.run import run_attention
from mha_cli.learner.module_weights import to_d2l_state
from mha_cli.learner.user_module import Prepared
from mha_cli.spec.spec import AttentionSpec, FinalSpec
from mha_cli.spec.validation import validate
from mha_cli.tolerance import Tolerance, tolerance
from mha_cli.tracing.axes import RESHAPES
from mha_cli.tracing.explain import explain
from mha_cli.tracing.match import (
    Form,
    Match,
    agree,
    candidates,
    effective,
    match_step,
    reference_forms,
)
from mha_cli.tracing.records import CheckResult, TensorAgreement, TraceGroup
from mha_cli.tracing.tracing import Trace


@dataclass
class Checked:
    result: CheckResult
    matches: dict[int, Match | None]  # step -> the reference stage it equals (None: none)
    differing: set[int]  # the first step to differ and the unmatched steps computed from it
    reference: Report  # in the run's dtype, for whoever wants its tensors


def check_module(
    prepared: Prepared, trace: Trace, attention_step: int | None, owner: str
) -> Checked:
    spec = prepared.spec
    if spec.train and spec.dropout > 0:
        raise MhaError("--check compares deterministic runs; drop --train (dropout is random)")
    roles = prepared.roles
    if not all(isinstance(roles.get(r), torch.Tensor) for r in ("queries", "keys", "values")):
        raise MhaError(
            f"--check cannot tell which of {owner}'s inputs are the queries, keys and values; "
            "give forward (queries, keys, values[, valid_lens]) or one x, or drop --check"
        )
    state, layout = to_d2l_state(prepared.module.state_dict(), owner)
    state = {name: tensor.detach().cpu() for name, tensor in state.items()}
    reference_spec = _reference_spec(spec, state, owner)
    inputs = {r: roles[r].detach().cpu() for r in ("queries", "keys", "values")}  # type: ignore[union-attr]
    ref = _run(reference_spec, state, inputs)
    golden = _run(replace(reference_spec, dtype="float64"), state, inputs)
    tol = tolerance(spec.dtype)

    forms = reference_forms(ref, golden, reference_spec.head_dim)
    matches: dict[int, Match | None] = {}
    for index in sorted(trace.derived):
        value = trace.values.get(index)
        if value is not None and candidates(value, forms):
            matches[index] = match_step(value, forms, tol)
    mine = _user_output(trace, golden, prepared.sequence_first)
    output = _compare("output", mine, ref.output_tensor, golden.output_tensor, tol)
    weights = None
    user_weights = _user_weights(trace, attention_step, golden.attention_weights)
    if user_weights is not None:
        weights = _compare(
            "attention weights", user_weights, ref.attention_weights, golden.attention_weights, tol
        )
    result = CheckResult(
        reference=_describe(reference_spec),
        layout=layout,
        tolerance=tol.describe(),
        output=output,
        weights=weights,
        notes=[] if weights is not None else [_no_weights_note(trace)],
    )
    differing: set[int] = set()
    if not result.agrees:
        misshaped = reshaped_as_another(trace, matches, forms, tol)
        divergence = first_divergence(trace, matches)
        reasons = explain(
            trace, matches, divergence, forms, reference_spec, golden, user_weights, misshaped
        )
        if divergence is None and not output.agrees:
            reasons = [*_returned_stage(prepared, trace, mine, forms, tol), *reasons]
        result = replace(result, divergence=divergence, explanations=reasons)
        if divergence is not None:
            later = _descendants(trace, divergence)
            differing = {divergence} | {i for i in later if i in matches and matches[i] is None}
    return Checked(result, matches, differing, ref)


FINAL = ("W_o", "output")


def _returned_stage(
    prepared: Prepared, trace: Trace, mine: torch.Tensor, forms: list[Form], tol: Tolerance
) -> list[str]:
    """Every step matched and yet the output differs: forward returned a stage of d2l's layer
    before its end (the heads joined, W_o never applied); say which, and what never ran."""
    final = [f for f in forms if f.name not in FINAL]
    match = match_step(mine.detach(), final, tol)
    if match is None:
        return []
    called = {row.module for row in trace.rows if isinstance(row, TraceGroup)}
    uncalled = [
        f"{path} ({type(child).__name__})"
        for path, child in prepared.module.named_modules()
        if path and path not in called and any(True for _ in child.parameters(recurse=False))
    ]
    how = f" ({match.how})" if match.how else ""
    verb = "was" if len(uncalled) == 1 else "were"
    never = f"; {', '.join(uncalled)} {verb} never called in forward" if uncalled else ""
    return [
        f"your forward returns d2l's {match.form}{how}, a stage before the layer's output"
        f"{never}: d2l's forward ends with self.W_o(...) on the joined heads"
    ]


def reshaped_as_another(
    trace: Trace, matches: dict[int, Match | None], forms: list[Form], tol: Tolerance
) -> dict[int, tuple[Match, str]]:
    """Reshapes that have the very shape of one reference stage and hold the same numbers in
    another order: their numbers are another stage's in its first order (`transpose_qkv`
    folding the heads without the permute equals `W_q` reshaped, not `queries.fold`). They
    are what goes wrong, and are unmatched from here on, with the steps computed from them
    that only matched by reshaping or reordering. Returns step -> (what it matched, the stage
    whose shape it has)."""
    by_name = {f.name: f for f in forms}
    steps = {s.index: s for s in trace.steps}
    found: dict[int, tuple[Match, str]] = {}
    for index in sorted(matches):
        match, value = matches[index], trace.values.get(index)
        if match is None or match.how != "reshaped" or value is None:
            continue
        if steps[index].stage.name not in RESHAPES or not value.is_floating_point():
            continue
        held = by_name[match.form]
        shaped = next(
            (
                f.name
                for f in forms
                if not f.integer
                and tuple(f.golden.shape) == tuple(value.shape)
                and agree(f.sorted, held.sorted, tol, max(f.reference_error, held.reference_error))
            ),
            None,
        )
        if shaped is not None:
            found[index] = (match, shaped)
    for index in found:
        matches[index] = None
        for later in _descendants(trace, index):
            if (match := matches.get(later)) is not None and match.how:
                matches[later] = None
    return found


def first_divergence(trace: Trace, matches: dict[int, Match | None]) -> int | None:
    """The first step that matches no reference stage and after which nothing computed from it
    does: a correct detour (a hand-written softmax's exp) matches again later and is passed."""
    for index in sorted(matches):
        if matches[index] is not None:
            continue
        later = _descendants(trace, index)
        if not any(matches.get(i) is not None for i in later):
            return index
    return None


def _descendants(trace: Trace, index: int) -> set[int]:
    found = {index}
    for step in sorted(trace.parents):
        if step > index and any(p in found for p in trace.parents[step]):
            found.add(step)
    found.discard(index)
    return found


def _reference_spec(spec: AttentionSpec, state: dict[str, torch.Tensor], owner: str) -> FinalSpec:
    try:
        sizes = sizes_from_weights(state, spec.heads, owner)
    except MhaError as error:
        raise MhaError(f"--check: {error}") from None
    bias, out_bias = "W_q.bias" in state, "W_o.bias" in state
    return validate(
        replace(
            spec,
            **sizes,
            out_bias=None if out_bias == bias else out_bias,
            weights=None,
            inputs="randn",  # the module's own inputs are passed to the run
            device="cpu",
            train=False,
            explicit=frozenset(),
        )
    ).final()


def _run(spec: FinalSpec, state: dict[str, torch.Tensor], inputs: dict[str, Any]) -> Report:
    try:
        return run_attention(Resolved(spec, state, inputs), value_ranges=False)
    except RuntimeError as error:  # weights that do not fit the layer the options describe
        first = str(error).strip().splitlines()[0]
        raise MhaError(
            f"--check: the reference cannot take the module's weights: {first}"
        ) from None


def _user_output(trace: Trace, golden: Report, sequence_first: bool) -> torch.Tensor:
    """The module's output (b, q, H): what forward returned, or its first tensor
    (nn.MultiheadAttention returns (output, weights))."""
    out = trace.output
    if isinstance(out, tuple | list):
        out = next((t for t in out if isinstance(t, torch.Tensor)), None)
    if sequence_first and isinstance(out, torch.Tensor):
        out = out.transpose(0, 1)  # (q, b, H) -> (b, q, H)
    expected = tuple(golden.output_tensor.shape)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise MhaError(
            f"--check: the module returned {got}, expected an output of shape {expected}"
        )
    return out


def _user_weights(trace: Trace, step: int | None, golden: torch.Tensor) -> torch.Tensor | None:
    if step is None or step not in trace.values:
        return None
    value = trace.values[step]
    if value.numel() != golden.numel():
        return None
    return value.reshape(golden.shape)  # heads folded batch-major, as transpose_qkv folds them


def _compare(
    what: str, user: torch.Tensor, ref: torch.Tensor, golden: torch.Tensor, tol: Tolerance
) -> TensorAgreement:
    mine, theirs, truth = effective(user), effective(ref), effective(golden)
    error_map = _errors(mine, truth)
    error = float(error_map.max()) if error_map.numel() else 0.0
    reference_error = float(_errors(theirs, truth).max()) if truth.numel() else 0.0
    bound = tol.bound(reference_error)
    # (b, h, q, k) per example and head; (b, q, H) per example.
    per = (
        error_map.flatten(2).amax(dim=2)
        if what != "output"
        else error_map.flatten(1).amax(1)[:, None]
    )
    differing = [
        (int(b), int(h) if what != "output" else -1) for b, h in (per > bound).nonzero().tolist()
    ]
    worst = tuple(int(i) for i in torch.unravel_index(error_map.argmax(), error_map.shape))
    return TensorAgreement(
        what,
        tuple(user.shape),
        error,
        reference_error,
        bound,
        tol.agrees(error, reference_error),
        differing,
        worst,
    )


def _errors(mine: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """|mine - truth|, 0 where both are -inf, infinite where only one is, NaN as infinite."""
    both = torch.isinf(mine) & torch.isinf(truth) & (mine == truth)
    diff = (mine - truth).abs().masked_fill(both, 0.0)
    return diff.nan_to_num(nan=float("inf"))


def _describe(spec: FinalSpec) -> str:
    layer = "d2l's AdditiveAttention" if spec.score == "additive" else "d2l's MultiHeadAttention"
    return (
        f"{layer} as mha builds it, with your module's weights and inputs: "
        f"{spec.heads} head{'s' if spec.heads > 1 else ''}, valid_lens "
        f"{list(spec.valid_lens) if spec.valid_lens is not None else 'none'}"
        + (", causal" if spec.causal else "")
    )


def _no_weights_note(trace: Trace) -> str:
    if any(s.stage.name == "scaled_dot_product_attention" for s in trace.steps):
        return (
            "scaled_dot_product_attention computes the weights inside one call and never returns "
            "them: only the output is compared"
        )
    return "no softmax over the keys was recorded: only the output is compared"
