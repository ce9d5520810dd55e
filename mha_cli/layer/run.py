"""One forward pass of the layer a spec describes, recorded stage by stage.

The core: it computes and returns a `Report` (plain records, and the tensors beside them);
it never prints. Weights and inputs are drawn from two independent seeded generators on the
CPU, so a seed gives the same numbers on any device and the process's global random state
is left alone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mha_cli import fast_start
from mha_cli.errors import MhaError
from mha_cli.files.sources import Resolved
from mha_cli.layer.layer import MultiHeadAttention, Rotary
from mha_cli.layer.norms import HeadLayerNorm, HeadRMSNorm
from mha_cli.layer.recording import Recorder
from mha_cli.layer.relative_bias import RelativeBias
from mha_cli.layer.report import Report
from mha_cli.layer.rope import attention_factor, inverse_frequencies
from mha_cli.layer.summary import summarize
from mha_cli.spec.memory import available_bytes, check_fits
from mha_cli.spec.spec import FinalSpec

if TYPE_CHECKING:
    from mha_cli.layer.additive import AdditiveAttention

Tensors = Mapping[str, torch.Tensor]


def run_attention(
    sources: Resolved,
    *,
    value_ranges: bool = True,
    needs_values: bool = False,
    memory_for: str | None = "inspect",
) -> Report:
    """Build the layer `sources.spec` describes, run one forward pass, record every stage.

    `sources` is what `files.sources.resolve` returns: the final spec, and the weights
    (`state`, d2l names) and `inputs` (queries, keys, values) its files hold, or others of the
    caller's, so the same numbers can be run again in another dtype. `value_ranges=False` skips
    each stage's min/max, which only the table and JSON show. `needs_values` (heatmaps,
    comparisons) makes a spec too big for memory suggest smaller sizes instead of the meta
    device. `memory_for` names the command whose peak the memory check estimates (None: the
    caller checked already, for the whole command).
    """
    spec = sources.spec
    if not isinstance(spec, FinalSpec):
        raise TypeError("run_attention takes a resolved spec: files.sources.resolve(spec)")
    device = resolve_device(spec.device)
    if device.type != "meta" and memory_for is not None:
        check_fits(spec, free_memory(device), needs_values=needs_values, command=memory_for)
    dtype = getattr(torch, spec.dtype)
    layer = build_layer(spec, device, dtype, sources.state)
    queries, keys, values = make_inputs(spec, device, dtype, sources.inputs)
    valid_lens = None
    if spec.valid_lens is not None:
        valid_lens = torch.tensor(spec.valid_lens, dtype=torch.long, device=device)  # (b,)/(b, q)
    recorder = Recorder(device.type != "meta", value_ranges, layer.stages)
    layer.train(spec.train)
    with torch.no_grad():
        # weights: ((b h), q, k); mask: ((b h), q, k), or (1, q, k) when only causal
        _, weights, mask = layer(queries, keys, values, valid_lens, recorder)
    b, h, q, k = spec.batch, spec.heads, spec.queries, spec.kv
    attention = weights.reshape(b, h, q, k)  # (b, h, q, k): transpose_qkv folds batch-major
    mask4 = None if mask is None else mask.expand(b * h, q, k).reshape(b, h, q, k)
    computed = recorder.keep_tensors
    summary = summarize(
        spec, layer, recorder.stages, attention if computed else None, mask4 if computed else None
    )
    return Report(
        spec=spec,
        stages=recorder.stages,
        summary=summary,
        source=sources.source,
        tensors=recorder.tensors,
        attention_weights=attention if computed else None,
        mask=mask4 if computed else None,
        parameters=dict(layer.state_dict()) if computed else {},
    )


def free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return available_bytes() if device.type == "cpu" else None


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise MhaError("--device cuda: no CUDA device is available here; use --device cpu or meta")
    if name == "meta":
        fast_start.before_meta()
    return torch.device(name)


def stream_seed(seed: int, stream: str) -> int:
    """A seed of its own for each random stream (weights, inputs), derived from the user's:
    two generators seeded alike would draw the same numbers, and the inputs would correlate
    with the weights."""
    digest = hashlib.blake2b(f"{seed}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # below 2**63: any torch generator takes it


def build_layer(
    spec: FinalSpec, device: torch.device, dtype: torch.dtype, state: Tensors | None
) -> MultiHeadAttention | AdditiveAttention:
    """The layer, with its weights from `state` or drawn as nn.Linear draws them, seeded."""
    with torch.device("meta"):  # shapes first: no memory, no draw from the global generator
        layer = make_layer(spec)
    if device.type == "meta":
        return layer.to(dtype=dtype)  # meta has no values: sizes are all it needs
    if state is not None and all(t.dtype == dtype and t.device == device for t in state.values()):
        # The file's own tensors become the parameters: a 7B model's layer read memory-mapped
        # costs its pages once, not a second copy.
        layer.load_state_dict(dict(state), strict=True, assign=True)
        return layer
    materialize(layer)
    if state is None:  # drawn in float32, so a seed gives the same weights in every dtype
        init_weights(layer, torch.Generator().manual_seed(stream_seed(spec.seed, "weights")))
    layer = layer.to(dtype=dtype)
    if state is not None:
        layer.load_state_dict(dict(state), strict=True)  # copies cast to the layer's dtype
    return layer.to(device=device)


def materialize(layer: nn.Module) -> None:
    """Give every meta parameter uninitialised CPU memory of its shape. (`Module.to_empty` does
    the same through torch's reference `empty_like`, whose first call imports sympy: 0.4 s.)"""
    for module in layer.modules():
        for name, param in module.named_parameters(recurse=False):
            empty = torch.empty(param.shape, dtype=param.dtype, device="cpu")
            module._parameters[name] = nn.Parameter(empty, requires_grad=param.requires_grad)


def init_weights(layer: nn.Module, generator: torch.Generator) -> None:
    """nn.Linear's own distribution, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases,
    drawn from `generator`; norms start at one, a relative bias table N(0, 1)."""
    with torch.no_grad():
        for module in layer.modules():
            if isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(module, HeadRMSNorm | HeadLayerNorm):
                module.weight.fill_(1.0)
            elif isinstance(module, RelativeBias):  # nn.Embedding's N(0, 1), as T5's table
                module.weight.normal_(0.0, 1.0, generator=generator)


def make_layer(spec: FinalSpec) -> MultiHeadAttention | AdditiveAttention:
    if spec.score == "additive":
        from mha_cli.layer.additive import AdditiveAttention

        return AdditiveAttention(
            spec.key_size, spec.query_size, spec.hiddens, spec.dropout, spec.bias, spec.causal
        )
    rotary = None
    if spec.rope != "none":
        scaling = None if spec.rope_scaling is None else dict(spec.rope_scaling)
        _refuse_longrope_lengths(spec, scaling)
        with torch.device("cpu"):  # a constant of the layer, never a meta tensor
            inv_freq = inverse_frequencies(
                spec.rotary_dim or spec.head_dim,
                spec.rope_theta,
                scaling,
                positions=max(spec.kv, spec.queries),
            )
        _refuse_non_finite_angles(spec, inv_freq)
        _refuse_beyond_dynamic(spec, scaling)
        rotary = Rotary(inv_freq, spec.rope, attention_factor(scaling))
    return MultiHeadAttention(
        spec.key_size,
        spec.query_size,
        spec.value_size,
        spec.hiddens,
        spec.heads,
        spec.dropout,
        spec.bias,
        num_kv_heads=spec.kv_heads,
        head_dim=spec.head_dim,
        value_mode=spec.value_mode,
        out_bias=spec.out_bias,
        key_bias=spec.key_bias,
        causal=spec.causal,
        window=spec.window,
        qk_norm=spec.qk_norm,
        norm_eps=spec.norm_eps,
        rotary=rotary,
        scale=spec.score_scale,
        softcap=spec.softcap,
        clip_qkv=spec.clip_qkv,
        qk_norm_whole=spec.qk_norm_whole,
        alibi=spec.alibi,
        qk_norm_layer=spec.qk_norm_layer,
        alibi_scaled=spec.alibi_scaled,
        relative_buckets=spec.relative_buckets,
        relative_max_distance=spec.relative_max_distance,
    )


def _refuse_longrope_lengths(spec: FinalSpec, scaling: dict[str, Any] | None) -> None:
    """LongRoPE divides each frequency by its own factor: one per frequency, rotary_dim / 2."""
    if scaling is None or scaling.get("rope_type") != "longrope":
        return
    needed = (spec.rotary_dim or spec.head_dim) // 2
    for key in ("short_factor", "long_factor"):
        if len(scaling[key]) != needed:
            raise MhaError(
                f"longrope rope scaling: {key} has {len(scaling[key])} factors, and the rotation "
                f"has {needed} frequencies (rotary dims / 2); fix the config"
            )


def _refuse_beyond_dynamic(spec: FinalSpec, scaling: dict[str, Any] | None) -> None:
    """Dynamic NTK scaling is the default rotation up to its original context, and changes the
    frequencies with the sequence length beyond it: mha reproduces the first part only."""
    if scaling is None or scaling.get("rope_type") != "dynamic":
        return
    context = int(scaling["original_max_position_embeddings"])
    if max(spec.kv, spec.queries) > context:
        raise MhaError(
            f"dynamic rope scaling is the default rotation up to {context} positions and "
            f"rescales beyond; {max(spec.kv, spec.queries)} positions are beyond: use at most "
            f"{context} queries and kv pairs"
        )


def _refuse_non_finite_angles(spec: FinalSpec, inv_freq: torch.Tensor) -> None:
    """Angles `position * inv_freq` that overflow float32 turn every stage from the rotation
    on into NaN: a base or scaling this extreme is refused, not run."""
    last = float(max(spec.kv, spec.queries))
    largest = float(inv_freq.abs().max()) * last if inv_freq.numel() else 0.0
    if not (bool(torch.isfinite(inv_freq).all()) and largest < torch.finfo(torch.float32).max):
        scaled = "" if spec.rope_scaling is None else " and rope_scaling"
        raise MhaError(
            f"{spec.given('rope_theta')}{scaled} make the rotary angles overflow float32 (every "
            "stage from queries.rope on would be NaN); use a base such as 10000"
        )


def make_inputs(
    spec: FinalSpec, device: torch.device, dtype: torch.dtype, given: Tensors | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shapes = (
        (spec.batch, spec.queries, spec.query_size),  # (b, q, query_size)
        (spec.batch, spec.kv, spec.key_size),  # (b, k, key_size)
        (spec.batch, spec.kv, spec.value_size),  # (b, k, value_size)
    )
    if device.type == "meta":
        made = [torch.empty(s, device=device, dtype=dtype) for s in shapes]
    elif given is not None:
        made = [
            given[name].to(device=device, dtype=dtype) for name in ("queries", "keys", "values")
        ]
    elif spec.inputs == "ones":  # the book's inputs: every query and key is the same vector
        made = [torch.ones(s, dtype=dtype, device=device) for s in shapes]
    else:
        generator = torch.Generator().manual_seed(stream_seed(spec.seed, "inputs"))
        made = [torch.randn(s, generator=generator).to(device=device, dtype=dtype) for s in shapes]
    return made[0], made[1], made[2]


def tensors_for_export(report: Report) -> dict[str, Any]:
    """`attention_weights` (b, h, q, k), `output` (b, q, H), and every stage under its name."""
    if not report.tensors:
        raise MhaError(
            "--export needs computed tensors, and the meta device computes none; use --device cpu"
        )
    tensors: dict[str, Any] = dict(report.tensors)
    tensors["attention_weights"] = report.attention_weights
    tensors["output"] = report.output_tensor
    return tensors
