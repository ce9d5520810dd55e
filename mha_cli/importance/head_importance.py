"""`mha heads`: one forward pass of the layer, then every head's measures from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch

from mha_cli.errors import MhaError
from mha_cli.files.sources import resolve
from mha_cli.importance.ablation import (
    attention_focus,
    greedy_pruning,
    head_terms,
    single_change_errors,
    single_changes,
)
from mha_cli.importance.records import HeadMeasure, HeadsReport, PruningStep, correlations
from mha_cli.importance.spread import lowest_standing_out, rho_needed
from mha_cli.layer.run import run_attention
from mha_cli.messages import shape_text
from mha_cli.spec.spec import AttentionSpec, FinalSpec


def measure_heads(
    spec: AttentionSpec,
    ablation: str = "zero",
    targets: Mapping[str, torch.Tensor] | None = None,
    inputs: Mapping[str, torch.Tensor] | None = None,
    reference: torch.Tensor | None = None,
    lengths: list[int] | None = None,
) -> HeadsReport:
    """Run the layer once (eval mode) and measure each head: ablation, entropy, confidence,
    gradient importance (with targets), a greedy pruning curve, and how the measures agree."""
    if spec.score == "additive":
        raise MhaError(
            "mha heads ranks the heads of multi-head attention; additive attention "
            "(--score additive) has one head and no W_o to remove it from; use --score dot"
        )
    if spec.device == "meta":
        raise MhaError(
            "mha heads measures computed outputs, and the meta device computes none; "
            "use --device cpu (or cuda)"
        )
    if spec.train:
        raise MhaError(
            "mha heads measures the layer in eval mode (dropout would make every ablation "
            "random); drop --train"
        )
    from mha_cli.spec.streaming import wants_streaming

    if targets is None and inputs is None and wants_streaming(spec, windowed=False):
        # Long context: per head and block of queries, never (b h, q, k) at once.
        from mha_cli.importance.streamed_heads import stream_heads

        streamed = stream_heads(replace(spec, train=False))
        spec, source, run_notes = streamed.spec, streamed.source, streamed.notes
        concat, output, parameters = streamed.concat, streamed.output, streamed.parameters
        focus = streamed.focus
        roles, roles_note = streamed.roles, streamed.roles_note
        target = None
    else:
        resolved = resolve(replace(spec, train=False))
        if inputs is not None:  # --text: the model's own inputs of the layer
            resolved = replace(resolved, inputs=inputs)
        report = run_attention(
            resolved,
            value_ranges=False,
            needs_values=True,
            memory_for="heads",
        )
        spec, source, run_notes = report.spec, report.source, list(report.summary.notes)
        concat = report.tensors["output.concat"]  # (b, q, h*w)
        output, parameters = report.output_tensor, report.parameters  # output (b, q, H)
        target = _target(targets, output) if targets is not None else None
        mask = report.mask
        if lengths is not None:  # --text: padding's own rows are no part of the texts
            real = torch.arange(concat.shape[1])[None, :] < torch.tensor(lengths)[:, None]
            real = real.to(concat.device)  # (b, q)
            concat, output = concat[real][None], output[real][None]  # (1, real rows, ...)
            target = None if target is None else target[real][None]
            hidden = ~real[:, None, :, None]  # (b, 1, q, 1)
            shape = report.attention_weights.shape
            mask = hidden.expand(shape) if mask is None else (mask | hidden).expand(shape)
        focus = attention_focus(report.attention_weights, mask)
        roles = report.summary.head_roles
        roles_note = report.summary.head_roles_note
    heads = spec.heads
    terms = head_terms(
        concat,
        parameters["W_o.weight"],
        parameters.get("W_o.bias"),
        heads,
        ablation,
        target,
    )
    changes = single_changes(terms)
    errors = single_change_errors(terms)
    pruning = [
        PruningStep(step, head, change)
        for step, (head, change) in enumerate(greedy_pruning(terms), start=1)
    ]
    step_of = {p.head: p.step for p in pruning}
    group = heads // spec.kv_heads
    role_notes = [] if roles_note is None else [roles_note]
    gradient = None if terms.gradient is None else terms.gradient.tolist()
    measures = [
        HeadMeasure(
            head=i,
            kv_head=i // group,
            ablation=changes[i],
            entropy=focus.entropy[i],
            confidence=focus.confidence[i],
            gradient=None if gradient is None else gradient[i],
            pruned_at=step_of[i],
            ablation_se=errors[i],
            entropy_se=focus.entropy_se[i],
            confidence_se=focus.confidence_se[i],
            role=roles[i].role if roles else "",
        )
        for i in range(heads)
    ]
    result = HeadsReport(
        spec=spec,
        source=source,
        ablation_mode=ablation,
        heads=measures,
        pruning=pruning,
        output_norm=terms.output_norm,
        notes=run_notes + _notes(spec, ablation) + role_notes,
    )
    if lengths is not None and reference is not None:  # --text: the model's own attention
        from mha_cli.text.inputs import check_line, max_difference

        difference = max_difference(report.attention_weights, reference)
        checked = [check_line(difference)] if difference is not None else []
        result = replace(result, notes=[*result.notes, *checked])
    rho, p = correlations(measures, result.measures)
    candidates = lowest_standing_out(
        [m.ablation for m in measures],
        [m.ablation_low for m in measures],
        [m.ablation_high for m in measures],
    )
    return replace(
        result,
        correlations=rho,
        correlation_p=p,
        rho_needed=rho_needed(heads),
        candidates=candidates,
    )


def _target(targets: Mapping[str, torch.Tensor], output: torch.Tensor) -> torch.Tensor:
    tensor = targets["output"]
    if tuple(tensor.shape) != tuple(output.shape):
        raise MhaError(
            f"--targets 'output' has shape {shape_text(tensor)}, but the layer's output is "
            f"{shape_text(output)} (batch, queries, num_hiddens); save targets of that shape"
        )
    return tensor.to(output.device)


def _notes(spec: FinalSpec, ablation: str) -> list[str]:
    notes = []
    how = "set to zero" if ablation == "zero" else "replaced by its mean over examples and queries"
    notes.append(
        f"removing a head: its slice of the concatenation before W_o {how}, the bias of W_o "
        "kept; one forward pass gives every variant (W_o is linear)"
    )
    notes.append(
        "± is 1.96 standard errors over the (example, query) rows, taken as independent; a "
        "head could go first only when it lies below every other head beyond that and beyond "
        "the spread of the other heads' figures (t prediction interval, 1 % for the layer)"
    )
    if spec.value_mode == "full":
        notes.append(
            f"values kept whole: each head's slice of the concatenation is {spec.hiddens} "
            "features wide"
        )
    return notes
