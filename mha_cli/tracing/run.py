"""One traced forward pass of the user's module: build it, run it recorded, check it.

The core of `mha trace` (and of `mha heatmap --module`): it returns a `TraceReport` and never
prints. The user's code runs inside `user_code`, so whatever it raises comes back as one line
naming their line; mha's own recording errors (`RecorderBug`) are not theirs and stay bugs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from mha_cli.errors import MhaError
from mha_cli.files.sources import resolve_sources
from mha_cli.layer.run import resolve_device
from mha_cli.layer.summary import uniform_over_valid_keys
from mha_cli.learner.user_code import ModuleFailed, Target, describe, user_code
from mha_cli.learner.user_inputs import from_function
from mha_cli.learner.user_module import Prepared, build_module, seeded, with_spec_inputs
from mha_cli.spec.axis_guess import AxisSizes
from mha_cli.spec.spec import AttentionSpec
from mha_cli.spec.validation import validate
from mha_cli.tracing.check import Checked, check_module
from mha_cli.tracing.records import Row, TraceStep, TraceSummary
from mha_cli.tracing.report import TraceReport
from mha_cli.tracing.tracing import (
    SOFTMAXES,
    ForwardFailed,
    RecorderBug,
    Trace,
    trace_forward,
)


def trace_module(
    target: Target, spec: AttentionSpec, *, check: bool = False, keep_values: bool = False
) -> TraceReport:
    """Build the target's module with the spec's sizes, run it once recorded, and (`check`)
    compare it with mha's reference run with the same weights and inputs."""
    # The learner's module fixes sizes of its own (`prepare`): the spec is made final after it.
    sources = resolve_sources(spec)
    spec = validate(sources.spec)
    device = resolve_device(spec.device)
    if check and device.type == "meta":
        raise MhaError(
            "--check compares values, and the meta device computes none; use --device cpu"
        )
    prepared = prepare(target, spec, device, getattr(torch, spec.dtype), sources.inputs)
    sizes = AxisSizes.of(prepared.spec)
    passed = (RecorderBug, ForwardFailed)
    try:
        with torch.no_grad(), user_code(target.text, target.roots, passed):
            trace = trace_forward(
                prepared.module,
                prepared.args,
                prepared.kwargs,
                prepared.inputs,
                sizes,
                target.roots,
                keep_values=(check or keep_values) and device.type != "meta",
            )
    except ForwardFailed as failed:
        raise _failed(target, prepared, failed, sizes, device, check) from failed.error
    attention = attention_step(trace, prepared.spec)
    owner = type(prepared.module).__name__
    uncalled = never_called(prepared.module)
    if uncalled and check:
        fix = (
            "d2l's forward ends with return self.W_o(output_concat)"
            if any(path == "W_o" for path, _ in uncalled)
            else "call it in forward, or remove it"
        )
        message = (
            f"{target.text}: {uncalled_text(uncalled)}, and --check cannot compare a module "
            f"without them: {fix}"
        )
        report = _report(target, prepared, trace, sizes, device, attention, None)
        raise ModuleFailed(message, replace(report, failure=message), checked=True)
    checked = check_module(prepared, trace, attention, owner) if check else None
    return _report(target, prepared, trace, sizes, device, attention, checked)


def _report(
    target: Target,
    prepared: Prepared,
    trace: Trace,
    sizes: AxisSizes,
    device: torch.device,
    attention: int | None,
    checked: Checked | None,
    notes: tuple[str, ...] = (),
    returned: bool = True,
) -> TraceReport:
    rows: list[Row] = trace.rows
    if checked is not None:
        rows = [_with_match(row, checked, checked.result.divergence) for row in rows]
    weights = _weights(trace, attention, prepared.spec)
    # A forward that raised never reached its later layers: no note says they went uncalled.
    uncalled = never_called(prepared.module) if returned else []
    summary = TraceSummary(
        module=type(prepared.module).__name__,
        source=target.where,
        operations=sum(1 for s in trace.steps if s.kind == "op"),
        total_params=sum(
            p.numel()
            for p in prepared.module.parameters()
            if not isinstance(p, UninitializedParameter)
        ),
        total_flops=sum(s.stage.flops for s in trace.steps),
        activation_bytes=sum(
            s.stage.bytes for s in trace.steps if not s.stage.view and s.kind == "op"
        ),
        sizes=[(name, size) for name, size in sizes.names()],
        attention_step=attention,
        output_shape=_output_shape(trace.output),
        computed=device.type != "meta",
        notes=prepared.notes
        + list(notes)
        + (
            [f"{uncalled_text(uncalled)}; they are not counted in the parameters"]
            if uncalled
            else []
        )
        + _notes(trace, attention, weights, prepared.spec),
    )
    return TraceReport(
        target=target.text,
        spec=prepared.spec.final(),
        rows=rows,
        summary=summary,
        check=None if checked is None else checked.result,
        attention_weights=weights,
        output_tensor=_first_tensor(trace.output),
        values=trace.values,
    )


def _failed(
    target: Target,
    prepared: Prepared,
    failed: ForwardFailed,
    sizes: AxisSizes,
    device: torch.device,
    check: bool,
) -> ModuleFailed:
    """The module raised: the steps up to the failing operation, and one line saying where,
    which operation, and the shapes it was given."""
    failure = failed.trace.failure
    operation = "" if failure is None else failure.describe()
    message = describe(failed.error, target.text, target.roots, operation)
    attention = attention_step(failed.trace, prepared.spec)
    note = "forward raised before it returned: the table stops at the operation that failed"
    report = _report(
        target, prepared, failed.trace, sizes, device, attention, None, (note,), returned=False
    )
    return ModuleFailed(message, replace(report, failure=message), checked=check)


def never_called(module: nn.Module) -> list[tuple[str, str]]:
    """(path, class) of the lazy layers (LazyLinear) whose weights were never made: forward
    never called them."""
    return [
        (path or type(module).__name__, type(child).__name__)
        for path, child in module.named_modules()
        if any(isinstance(p, UninitializedParameter) for p in child.parameters(recurse=False))
    ]


def uncalled_text(uncalled: list[tuple[str, str]]) -> str:
    names = ", ".join(f"{path} ({kind})" for path, kind in uncalled)
    verb = "was" if len(uncalled) == 1 else "were"
    return (
        f"{names} {verb} never called in forward: {'its' if len(uncalled) == 1 else 'their'} "
        "weights were never made (torch's 'uninitialized parameter')"
    )


def prepare(
    target: Target, spec: AttentionSpec, device: torch.device, dtype: torch.dtype, given: Any
) -> Prepared:
    """The module (a class built by its signature, an instance, or a function's own), and
    its call."""
    obj = target.obj
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        with seeded(spec.seed), torch.device("meta" if device.type == "meta" else "cpu"):
            module = build_module(target, obj, spec)
    elif isinstance(obj, nn.Module):
        module = obj
    elif callable(obj) and not isinstance(obj, type):
        prepared = from_function(target, spec, device)
        prepared.module.train(spec.train)
        return prepared
    else:
        raise MhaError(
            f"{target.text} names a {type(obj).__name__}; name an nn.Module class, a module, or "
            "a function returning (module, args)"
        )
    module = module.to(device=device, dtype=dtype)
    module.train(spec.train)
    return with_spec_inputs(module, spec, device, dtype, given)


def attention_step(trace: Trace, spec: AttentionSpec) -> int | None:
    """The last softmax over the keys: its output is the attention weights."""
    rows = spec.batch * spec.queries * spec.kv
    for step in reversed(trace.steps):
        shape = step.stage.shape
        if step.stage.name in SOFTMAXES and shape and shape[-1] == spec.kv:
            count = 1
            for size in shape:
                count *= size
            if count % rows == 0:
                return step.index
    return None


def _weights(trace: Trace, step: int | None, spec: AttentionSpec) -> torch.Tensor | None:
    if step is None or step not in trace.values:
        return None
    # (b, h, q, k): heads folded into the batch batch-major, as transpose_qkv folds them
    return trace.values[step].reshape(spec.batch, -1, spec.queries, spec.kv)


def _with_match(row: Row, checked: Checked, divergence: int | None) -> Row:
    """The reference stage a step equals; unmatched steps on the way to a correct result
    (nn.MultiheadAttention's (q*b, E) rows) stay blank, only those that differ are marked."""
    if not isinstance(row, TraceStep):
        return row
    if row.index in checked.differing:
        return replace(row, how="first to differ" if row.index == divergence else "differs")
    match = checked.matches.get(row.index)
    return row if match is None else replace(row, reference=match.form, how=match.how)


def _notes(
    trace: Trace, attention: int | None, weights: torch.Tensor | None, spec: AttentionSpec
) -> list[str]:
    notes = []
    if attention is None:
        notes.append("no softmax over the keys was recorded: the attention weights are not shown")
    if weights is not None and weights.shape[1] > 1 and _heads_identical(weights):
        notes.append(_identical_heads_note(weights, spec))
    return notes


def _identical_heads_note(weights: torch.Tensor, spec: AttentionSpec) -> str:
    """Why every head of the learner's module has the same weights. The module's projections
    are its own, so the cause is read off the weights: even weights over the valid keys come
    from inputs that repeat one vector (--inputs ones) or from a constant initialisation;
    uneven but equal heads from per-head slices of W_q and W_k that are equal."""
    heads = weights.shape[1]
    if not uniform_over_valid_keys(weights):
        why = (
            "their scores differ across keys but not across heads, so the heads' slices of the "
            "query and key projections are equal (a constant or repeated initialisation); "
            "initialise them randomly to see the heads differ"
        )
    elif spec.inputs == "ones":
        why = (
            "with --inputs ones every query and every key is the same vector, so each valid key "
            "gets the same score; use --inputs randn to see the heads differ"
        )
    else:
        why = (
            "each valid key gets the same score although the inputs are random, so the "
            "module's query and key projections make every query or key the same vector (a "
            "constant initialisation); initialise them randomly to see the heads differ"
        )
    return f"all {heads} heads have the same weights: {why}"


def _heads_identical(weights: torch.Tensor) -> bool:
    first = weights[:, :1].float()  # (b, 1, q, k)
    return bool(torch.allclose(weights.float(), first.expand_as(weights), atol=1e-6))


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple | list):
        return next((t for t in out if isinstance(t, torch.Tensor)), None)
    return None


def _output_shape(out: Any) -> tuple[int, ...] | None:
    tensor = _first_tensor(out)
    return None if tensor is None else tuple(tensor.shape)
