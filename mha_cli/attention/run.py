"""One forward pass of the layer a spec describes, recorded stage by stage.

The core: it computes and returns plain records (plus the tensors, for heatmaps and
`--export`); it never prints. Imported only by commands that run the layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mha_cli.attention.layer import MultiHeadAttention
from mha_cli.attention.memory import available_bytes, check_fits
from mha_cli.attention.summary import summarize
from mha_cli.errors import MhaError
from mha_cli.files.sources import Sources, resolve_sources
from mha_cli.records import Report, Stage, Summary
from mha_cli.spec.spec import AttentionSpec
from mha_cli.spec.validation import validate


@dataclass
class Trace:
    """What one run produced: plain records for renderers, tensors beside them."""

    spec: AttentionSpec  # with the sizes read from files filled in
    stages: list[Stage]
    summary: Summary
    layout: str | None  # the checkpoint layout the weights came from, if any
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # stage name -> output
    attention_weights: torch.Tensor | None = None  # (b, h, q, k)
    mask: torch.Tensor | None = None  # (b, h, q, k), True where a key is masked

    def report(self) -> Report:
        return Report(self.spec.to_dict(), self.stages, self.summary, self.layout)


class Recorder:
    """Turns each tensor the layer reports into a `Stage`; keeps the tensor when it is real."""

    def __init__(self, keep_tensors: bool, value_ranges: bool = True) -> None:
        self.stages: list[Stage] = []
        self.tensors: dict[str, torch.Tensor] = {}
        self.keep_tensors = keep_tensors
        self.value_ranges = value_ranges and keep_tensors

    def __call__(
        self,
        name: str,
        tensor: torch.Tensor,
        code: str,
        axes: tuple[str, ...],
        *,
        module: nn.Module | None = None,
        flops: int = 0,
    ) -> None:
        if len(axes) != tensor.dim():  # a bug in the layer, never a user's mistake
            raise RuntimeError(
                f"stage {name}: {len(axes)} axis names for a {tensor.dim()}-D tensor"
            )
        params = None if module is None else sum(p.numel() for p in module.parameters())
        self.stages.append(
            Stage(
                name=name,
                code=code,
                shape=tuple(tensor.shape),
                axes=axes,
                params=params,
                flops=flops,
                bytes=tensor.numel() * tensor.element_size(),
                view=tensor._base is not None,  # reshape/permute without a copy
                dtype=str(tensor.dtype).removeprefix("torch."),
                value_range=_value_range(tensor) if self.value_ranges else None,
            )
        )
        if self.keep_tensors:
            self.tensors[name] = tensor


def _value_range(tensor: torch.Tensor) -> tuple[float, float]:
    # One pass, no float copy: this runs on every stage, so on big runs it must stay cheap.
    low, high = torch.aminmax(tensor.detach())
    return float(low), float(high)


def run_attention(spec: AttentionSpec, *, value_ranges: bool = True) -> Trace:
    """Build the layer `spec` describes, run one forward pass, and record every stage.

    `value_ranges=False` skips each stage's min/max, which only the table and JSON show.
    """
    sources = resolve_sources(spec)
    spec = validate(sources.spec)
    device = _device(spec.device)
    check_fits(spec, _free_memory(device))
    dtype = getattr(torch, spec.dtype)
    layer = build_layer(spec, device, dtype, sources)
    queries, keys, values = make_inputs(spec, device, dtype, sources)
    valid_lens = None
    if spec.valid_lens is not None:
        # (b,) or (b, q)
        valid_lens = torch.tensor(spec.valid_lens, dtype=torch.long, device=device)
    recorder = Recorder(keep_tensors=device.type != "meta", value_ranges=value_ranges)
    layer.train(spec.train)
    with torch.no_grad():
        # weights: ((b h), q, k); mask: ((b h), q, k), or (1, q, k) when only causal
        _, weights, mask = layer(queries, keys, values, valid_lens, recorder)
    b, h, q, k = spec.batch, spec.heads, spec.queries, spec.kv
    attention = weights.reshape(b, h, q, k)  # (b, h, q, k): transpose_qkv folds batch-major
    mask4 = None if mask is None else mask.expand(b * h, q, k).reshape(b, h, q, k)
    summary = summarize(spec, layer, recorder.stages, attention if recorder.keep_tensors else None)
    return Trace(spec, recorder.stages, summary, sources.layout, recorder.tensors, attention, mask4)


def _free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return available_bytes() if device.type == "cpu" else None


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise MhaError("--device cuda: no CUDA device is available here; use --device cpu or meta")
    if name == "meta":
        from mha_cli.attention.meta_speed import skip_dynamo_import

        skip_dynamo_import()
    return torch.device(name)


def build_layer(
    spec: AttentionSpec, device: torch.device, dtype: torch.dtype, sources: Sources
) -> nn.Module:
    torch.manual_seed(spec.seed)  # nn.Linear's default initialisation, reproducibly
    with torch.device(device):
        layer = make_layer(spec)
    layer = layer.to(dtype=dtype)
    if sources.state is not None:
        if device.type == "meta":
            return layer  # meta has no values to load: the sizes already come from the file
        state = {name: t.to(device=device, dtype=dtype) for name, t in sources.state.items()}
        layer.load_state_dict(state, strict=True)
    return layer


def make_layer(spec: AttentionSpec) -> nn.Module:
    if spec.score == "additive":
        from mha_cli.attention.additive import AdditiveAttention

        return AdditiveAttention(
            spec.k_size, spec.q_size, spec.hiddens, spec.dropout, spec.bias, spec.causal
        )
    return MultiHeadAttention(
        spec.k_size,
        spec.q_size,
        spec.v_size,
        spec.hiddens,
        spec.heads,
        spec.dropout,
        bias=spec.bias,
        num_kv_heads=spec.kv_heads,
        value_mode=spec.value_mode,
        causal=spec.causal,
    )


def make_inputs(
    spec: AttentionSpec, device: torch.device, dtype: torch.dtype, sources: Sources
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shapes = (
        (spec.batch, spec.queries, spec.q_size),  # (b, q, query_size)
        (spec.batch, spec.kv, spec.k_size),  # (b, k, key_size)
        (spec.batch, spec.kv, spec.v_size),  # (b, k, value_size)
    )
    if device.type == "meta":
        return tuple(torch.empty(s, device=device, dtype=dtype) for s in shapes)  # type: ignore[return-value]
    if sources.inputs is not None:
        names = ("queries", "keys", "values")
        return tuple(sources.inputs[n].to(device=device, dtype=dtype) for n in names)  # type: ignore[return-value]
    if spec.inputs == "ones":  # the book's inputs: every query and key is the same vector
        return tuple(torch.ones(s, dtype=dtype, device=device) for s in shapes)  # type: ignore[return-value]
    # Drawn on the CPU from their own generator, so a seed gives the same inputs on any device.
    generator = torch.Generator().manual_seed(spec.seed)
    return tuple(torch.randn(s, generator=generator).to(device=device, dtype=dtype) for s in shapes)  # type: ignore[return-value]


def tensors_for_export(trace: Trace) -> dict[str, Any]:
    """`attention_weights` (b, h, q, k), `output` (b, q, H), and every stage under its name."""
    if not trace.tensors:
        raise MhaError(
            "--export needs computed tensors, and the meta device computes none; use --device cpu"
        )
    tensors: dict[str, Any] = dict(trace.tensors)
    tensors["attention_weights"] = trace.attention_weights
    tensors["output"] = trace.tensors[trace.stages[-1].name]
    return tensors
