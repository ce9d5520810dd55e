"""Refuse a run whose tensors cannot fit in memory, before allocating any of them.

The estimate is an upper bound of what one forward pass holds at once: inputs, weights,
projections and their folded copies, and the (b h, q, k) scores, masked scores and weights,
which dominate at long context. `--device meta` traces any size without allocating.
"""

from __future__ import annotations

import os

from mha_cli.errors import MhaError
from mha_cli.spec.counts import parameter_count
from mha_cli.spec.spec import AttentionSpec

_ELEMENT_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
# Use at most this share of the memory that is free: the rest is Python, torch and the OS.
_HEADROOM = 0.8


def estimate_bytes(spec: AttentionSpec) -> tuple[int, int]:
    """(total bytes, bytes of the attention scores alone) for one forward pass of `spec`."""
    b, q, k, h, hid = spec.batch, spec.queries, spec.kv, spec.heads, spec.hiddens
    value_width = hid if spec.value_mode == "full" else spec.head_width
    inputs = b * (q * spec.q_size + k * spec.k_size + k * spec.v_size)
    weights = parameter_count(spec)
    projected = b * (q * h * spec.head_width + 2 * k * h * value_width)  # after the head fold
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


def check_fits(spec: AttentionSpec, available: int | None) -> None:
    if spec.device == "meta" or available is None:
        return
    total, scores = estimate_bytes(spec)
    if total > _HEADROOM * available:
        raise MhaError(
            f"this configuration needs about {_size(total)} for its tensors (the scores "
            f"({spec.batch * spec.heads}, {spec.queries}, {spec.kv}) alone take {_size(scores)}) "
            "but "
            f"{spec.device} has {_size(available)} free; add --device meta for its shapes, "
            "parameters, FLOPs and bytes without allocating anything"
        )


def _size(n: int) -> str:
    for scale, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
