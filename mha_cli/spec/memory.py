"""Refuse a run whose tensors cannot fit in memory, before allocating any of them.

The estimate is an upper bound of what one forward pass holds at once: inputs, weights,
projections and their folded copies, and the (b h, q, k) scores, masked scores and weights,
which dominate at long context. `--device meta` traces any size without allocating.
"""

from __future__ import annotations

import os
from dataclasses import replace

from mha_cli.errors import MhaError
from mha_cli.messages import size_text
from mha_cli.spec.counts import parameter_count
from mha_cli.spec.spec import AttentionSpec

_ELEMENT_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
# Use at most this share of the memory that is free: the rest is Python, torch and the OS.
_HEADROOM = 0.8


def estimate_bytes(spec: AttentionSpec) -> tuple[int, int]:
    """(total bytes, bytes of the attention scores alone) for one forward pass of `spec`."""
    final = spec.final()  # every size written out
    b, q, k, h, hid = spec.batch, spec.queries, spec.kv, spec.heads, spec.hiddens
    value_width = hid if spec.value_mode == "full" else final.head_dim
    inputs = b * (q * final.query_size + k * final.key_size + k * final.value_size)
    weights = parameter_count(spec)
    projected = b * (q * h * final.head_dim + 2 * k * h * value_width)  # after the head fold
    scores = b * h * q * k  # scores, masked scores, softmax: 3 live at once
    elements = inputs + weights + 2 * projected + 3 * scores + 2 * b * q * h * value_width
    element = _ELEMENT_BYTES.get(spec.dtype, 4)
    return elements * element + b * h * q * k, scores * element  # + the boolean mask


def available_bytes() -> int | None:
    """Free memory on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(spec: AttentionSpec, available: int | None, *, needs_values: bool = False) -> None:
    """Refuse a run that cannot fit in `available` bytes, with a way out that works for the
    command: `--device meta` where shapes are enough, smaller sizes where values are needed."""
    if available is None:
        return
    total, scores = estimate_bytes(spec)
    if total <= _HEADROOM * available:
        return
    scores_shape = f"({spec.batch * spec.heads}, {spec.queries}, {spec.kv})"
    need = (
        f"this configuration needs about {size_text(total)} for its tensors (the scores "
        f"{scores_shape} alone take {size_text(scores)}) but {spec.device} has "
        f"{size_text(available)} free"
    )
    if needs_values:  # the meta device would give no values: only smaller sizes help
        raise MhaError(f"{need}; {smaller_sizes(spec, available)}")
    raise MhaError(
        f"{need}; add --device meta for its shapes, parameters, FLOPs and bytes without "
        "allocating anything"
    )


def smaller_sizes(spec: AttentionSpec, available: int) -> str:
    """The fix when values are needed: the longest power-of-two context that fits."""
    length = 1 << max(spec.queries, spec.kv).bit_length()
    while length > 1:
        length //= 2
        smaller = replace(spec, queries=min(spec.queries, length), kv=min(spec.kv, length))
        if estimate_bytes(smaller)[0] <= _HEADROOM * available:
            return f"use smaller sizes, e.g. --queries {smaller.queries} --kv {smaller.kv}"
    return "use smaller sizes (--batch, --heads, --hiddens)"


def refuse_meta_for_values(spec: AttentionSpec, what: str) -> None:
    """`what` (heatmaps, a comparison...) needs computed values, which the meta device has not:
    say so, with sizes that fit this machine's memory when the spec's do not."""
    if spec.device != "meta":
        return
    on_cpu = replace(spec, device="cpu")
    available = available_bytes()
    fits = available is None or estimate_bytes(on_cpu)[0] <= _HEADROOM * available
    fix = "use --device cpu"
    if not fits and available is not None:
        smaller = smaller_sizes(on_cpu, available).removeprefix("use ")
        fix += f" and, to fit {size_text(available)} of free memory, {smaller}"
    raise MhaError(f"{what} need computed values, and --device meta computes none; {fix}")
