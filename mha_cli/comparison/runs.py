"""`mha compare`: the same weights and inputs through d2l's layer and through torch's own
attention, compared stage by stage and head by head.

Runs: d2l's layer in the spec's dtype (the reference) and again in float64 with the same
weights and inputs (the golden run, for the tolerance); `nn.MultiheadAttention` with d2l's
weights mapped onto it, called with need_weights=True and False; `scaled_dot_product_attention`
on d2l's own projected heads once per backend. Shapes: b batch, h heads, q queries, k key-value
pairs, d head dim, H num_hiddens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch
from torch.nn import functional as F

from mha_cli.comparison import notes as compare_notes
from mha_cli.comparison import sdpa_runs, torch_mapping
from mha_cli.comparison.differences import compare_stages, reference_stages
from mha_cli.comparison.masked_rows import fully_masked_rows, row_keeps
from mha_cli.comparison.records import ComparisonRecord, ImplementationResult
from mha_cli.errors import MhaError
from mha_cli.files.sources import Resolved, resolve
from mha_cli.layer.masking import positional_mask
from mha_cli.layer.report import Report
from mha_cli.layer.run import run_attention
from mha_cli.spec import axes as ax
from mha_cli.spec.spec import AttentionSpec, FinalSpec
from mha_cli.tolerance import tolerance

Stages = dict[str, torch.Tensor]
INPUTS = ("queries", "keys", "values")


def compare_attention(
    spec: AttentionSpec, mapping: torch_mapping.WeightMapping | None = None
) -> ComparisonRecord:
    """Run every implementation on the weights and inputs `spec` describes and compare them.

    `mapping` turns d2l's weights into nn.MultiheadAttention's (default: the right one)."""
    sources = resolve(spec)
    resolved = sources.spec
    check_comparable(resolved)
    # The files are read once: later runs take their tensors.
    plain = replace(
        resolved, weights=None, inputs="randn" if resolved.inputs_file else resolved.inputs
    )
    report = run_attention(
        replace(sources, spec=plain),
        value_ranges=False,
        needs_values=True,
        memory_for="compare",  # the whole comparison's peak, checked once, here
    )
    golden = run_attention(
        Resolved(
            replace(plain, dtype="float64"),
            state=_float64(report.parameters),
            inputs=_float64({name: report.tensors[name] for name in INPUTS}),
        ),
        value_ranges=False,
        memory_for=None,
    )
    reference, gold = layout(report, resolved), layout(golden, resolved)
    keeps = row_keeps(report.mask, reference)
    rule = tolerance(resolved.dtype)
    stages = reference_stages(reference, gold, keeps, rule, describe(resolved))
    runs = torch_runs(resolved, report, mapping or torch_mapping.torch_mha_state)
    implementations = []
    for result, ran in runs:
        if ran is not None:
            found, heads = compare_stages(ran, reference, gold, keeps, stages, rule)
            result = replace(result, stages=found, heads=heads)
        implementations.append(result)
    masked = fully_masked_rows(resolved, report, reference, runs)
    return ComparisonRecord(
        spec=resolved,
        source=sources.source,
        torch_version=torch.__version__,
        tolerance=rule,
        stages=stages,
        implementations=implementations,
        notes=notes(resolved, report),
        fully_masked=masked,
    )


def check_comparable(spec: FinalSpec) -> None:
    if spec.device == "meta":
        raise MhaError(
            "mha compare compares computed numbers, and --device meta computes none; "
            "use --device cpu (or cuda)"
        )
    if spec.train and spec.dropout > 0:
        raise MhaError(
            f"--train with --dropout {spec.dropout:g}: each implementation would drop other "
            "random weights, so nothing could agree; drop --train (compare runs in eval mode)"
        )


def _float64(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.to(torch.float64) for name, t in tensors.items()}


def describe(spec: FinalSpec) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Stage -> (what it is, the axes it is compared in)."""
    b, h, q, k = ax.BATCH, ax.HEADS, ax.QUERIES, ax.KV_PAIRS
    feature = ax.HIDDENS if spec.value_mode == "full" else ax.HEAD_DIM
    if spec.score == "additive":
        feature = ax.VALUE_SIZE
    return {
        "W_q": ("self.W_q(queries), split into heads", (b, h, q, ax.HEAD_DIM)),
        "W_k": ("self.W_k(keys), split into heads", (b, h, k, ax.HEAD_DIM)),
        "W_v": ("self.W_v(values), split into heads", (b, h, k, ax.HEAD_DIM)),
        "masked_softmax": ("attention weights", (b, h, q, k)),
        "weighted_sum": ("weights x values, per head", (b, h, q, feature)),
        "W_o": ("the layer's output", (b, q, ax.HIDDENS)),
    }


def layout(report: Report, spec: FinalSpec) -> Stages:
    """The compared stages of a d2l run, batch first and heads second."""
    t, b, q, k = report.tensors, spec.batch, spec.queries, spec.kv
    heads = 1 if spec.score == "additive" else spec.heads
    stages: Stages = {}
    if spec.score == "dot":
        group = spec.heads // spec.kv_heads
        for name, role in (("W_q", "queries"), ("W_k", "keys"), ("W_v", "values")):
            x = t.get(f"{role}.permute")  # (b, h|g, n, d); absent for full values
            if x is not None:
                stages[name] = x if x.shape[1] == spec.heads else x.repeat_interleave(group, 1)
    stages["masked_softmax"] = t["masked_softmax"].reshape(b, heads, q, k)  # (b, h, q, k)
    summed = t["weighted_sum"]  # ((b h), q, d|H) or (b, q, v) for additive
    stages["weighted_sum"] = summed.reshape(b, heads, q, summed.shape[-1])  # (b, h, q, d)
    if "W_o" in t:
        stages["W_o"] = t["W_o"]  # (b, q, H)
    return stages


def _valid_lens(spec: FinalSpec, device: torch.device) -> torch.Tensor | None:
    if spec.valid_lens is None:
        return None
    return torch.tensor(spec.valid_lens, dtype=torch.long, device=device)  # (b,) or (b, q)


Run = tuple[ImplementationResult, Stages | None]


def torch_runs(spec: FinalSpec, report: Report, mapping: torch_mapping.WeightMapping) -> list[Run]:
    """Every torch implementation, with its stages in the compared layout (None: not run)."""
    if spec.score == "additive":
        why = "computes scaled dot products; this layer scores additively"
        return [
            (ImplementationResult("torch_mha", "nn.MultiheadAttention", "", False, why), None),
            (ImplementationResult("sdpa", "scaled_dot_product_attention", "", False, why), None),
        ]
    if spec.softcap is not None or spec.alibi or spec.relative_buckets is not None:
        step = "soft-capping" if spec.softcap is not None else "ALiBi"
        step = "relative position bias" if spec.relative_buckets is not None else step
        why = f"has no {step} step between the scores and the softmax"
        return [
            (ImplementationResult("torch_mha", "nn.MultiheadAttention", "", False, why), None),
            (ImplementationResult("sdpa", "scaled_dot_product_attention", "", False, why), None),
        ]
    return [*torch_mha_runs(spec, report, mapping), *sdpa_backend_runs(spec, report)]


def torch_mha_runs(
    spec: FinalSpec, report: Report, mapping: torch_mapping.WeightMapping
) -> list[Run]:
    name = "nn.MultiheadAttention"
    reasons = torch_mapping.unmapped_reasons(spec)
    if reasons:
        return [(ImplementationResult("torch_mha", name, "", False, "; ".join(reasons)), None)]
    queries, keys, values = (report.tensors[n] for n in INPUTS)
    module = torch_mapping.build_torch_mha(
        spec, mapping(report.parameters, spec), queries.device, queries.dtype
    )
    padding, attn_mask, how = torch_mapping.torch_mha_masks(
        spec, _valid_lens(spec, queries.device), queries.device
    )
    calls = {"key_padding_mask": padding, "attn_mask": attn_mask}
    with torch.no_grad():
        output, weights = module(
            queries, keys, values, need_weights=True, average_attn_weights=False, **calls
        )  # (b, q, H), (b, h, q, k)
        output_fast, _ = module(queries, keys, values, need_weights=False, **calls)  # (b, q, H)
        stages = torch_mapping.projections(module, queries, keys, values)  # (b, h, n, d) each
    stages |= {"masked_softmax": weights, "W_o": output}
    inner = (
        "in_proj_weight = cat(W_q, W_k, W_v)"
        if torch_mapping.packed(spec)
        else "q_proj_weight = W_q, k_proj_weight = W_k, v_proj_weight = W_v"
    )
    bias = torch_mapping.uses_bias(spec)
    mapping_line = (
        f"nn.MultiheadAttention({spec.hiddens}, {spec.heads}, bias={bias}, kdim={spec.key_size}, "
        f"vdim={spec.value_size}, batch_first=True): {inner}, out_proj.weight = W_o"
        + (", in_proj_bias = cat(b_q, b_k, b_v), out_proj.bias = b_o" if bias else "")
        + f"; {how}; need_weights=True, average_attn_weights=False"
    )
    return [
        (ImplementationResult("torch_mha", name, mapping_line, True), stages),
        (
            ImplementationResult(
                "torch_mha_no_weights",
                f"{name}, need_weights=False",
                "the same module and masks, need_weights=False (as most code calls it): "
                "no weights, only the output",
                True,
            ),
            {"W_o": output_fast},
        ),
    ]


def sdpa_inputs(
    spec: FinalSpec, report: Report
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """d2l's own heads as they enter the scores: after qk-norm and rotation, before the
    key-value heads are shared out; and the name of the stages they are."""
    t = report.tensors

    def last(role: str) -> str:
        return next(f"{role}.{s}" for s in ("rope", "norm", "permute") if f"{role}.{s}" in t)

    values = "values.expand" if spec.value_mode == "full" else "values.permute"
    names = (last("queries"), last("keys"), values)
    return t[names[0]], t[names[1]], t[names[2]], ", ".join(names)


def sdpa_backend_runs(spec: FinalSpec, report: Report) -> list[Run]:
    queries, keys, values, names = sdpa_inputs(spec, report)  # (b, h, q, d), (b, g, k, d), ...
    device = queries.device
    mask = positional_mask(
        _valid_lens(spec, device), spec.queries, spec.kv, spec.causal, device, spec.window
    )  # (b|1, q, k), True = masked
    attend = None if mask is None else ~mask[:, None]  # (b|1, 1, q, k), True = attend
    gqa = spec.kv_heads != spec.heads
    how = (
        f"scaled_dot_product_attention on d2l's own heads ({names}), "
        + ("no mask" if attend is None else "attn_mask = not masked (True = attend)")
        + (", enable_gqa=True" if gqa and sdpa_runs.has_enable_gqa() else "")
        + (", key-value heads repeated" if gqa and not sdpa_runs.has_enable_gqa() else "")
        + ("" if spec.score_scale is None else f", scale={spec.score_scale:g}")
        + "; then d2l's transpose_output and W_o"
    )
    w_o = report.parameters["W_o.weight"], report.parameters.get("W_o.bias")
    runs: list[Run] = []
    for run in sdpa_runs.run_backends(queries, keys, values, attend, spec.score_scale):
        result = ImplementationResult(
            f"sdpa_{run.backend}", f"SDPA {run.backend}", how, run.output is not None, run.reason
        )
        if run.output is None:
            runs.append((result, None))
            continue
        b, h, q, dv = run.output.shape
        concat = run.output.transpose(1, 2).reshape(b, q, h * dv)  # (b, q, h*dv)
        output = F.linear(concat, *w_o)  # (b, q, H)
        runs.append((result, {"weighted_sum": run.output, "W_o": output}))
    return runs


def notes(spec: FinalSpec, report: Report) -> dict[str, list[str]]:
    reasons = torch_mapping.unmapped_reasons(spec)
    device = report.tensors["queries"].device
    how, blockers = None, None
    if not reasons:
        how = torch_mapping.torch_mha_masks(spec, _valid_lens(spec, device), device)[2]
        blockers = torch_mapping.fast_path_blockers(spec)
    sections = {
        "not mapped": compare_notes.not_mapped(spec, reasons),
        "masks": compare_notes.masks(spec, how),
        "other differences": compare_notes.other_differences(
            spec, blockers, sdpa_runs.has_enable_gqa()
        ),
    }
    return {heading: lines for heading, lines in sections.items() if lines}
