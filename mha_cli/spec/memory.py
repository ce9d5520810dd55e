"""Refuse a run whose tensors cannot fit in memory, before allocating any of them.

The estimate is what each command holds at its peak, measured: the forward pass's inputs,
weights and projections, and its (b h, q, k) score-sized tensors (scores, masked scores,
weights, the mask), which dominate at long context, times what the command keeps beside them
(the table's recorded stages, the heatmap's image, the comparison's other implementations and
float64 run, the ablations). tests/test_memory.py measures peaks against these estimates.
`--device meta` traces any size without allocating.
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

# What a command holds at its peak, in units of one forward pass's tensors: (the tensors other
# than the scores, the score-sized tensors). Peak resident memory measured above the same
# command at a tiny size, float32, one thread (tests/test_memory.py):
HOLDS = {
    "inspect": (1.2, 6.3),  # every stage's tensor, kept for the table and --export
    "heatmap": (1.5, 18.0),  # + the weights as numpy, and matplotlib's image and resampling
    "compare": (4.0, 16.0),  # + a float64 run, nn.MultiheadAttention and each SDPA backend
    "heads": (1.2, 8.5),  # + the ablated runs and the per-head outputs
}
# `mha weights`: the layer's parameters, and the head slices and circuits made from them.
WEIGHTS_HOLD = 2.0


def estimate_bytes(spec: AttentionSpec, command: str = "inspect") -> tuple[int, int]:
    """(total bytes `command` holds at its peak, bytes of one scores tensor) for `spec`."""
    final = spec.final()  # every size written out
    b, q, k, h, hid = spec.batch, spec.queries, spec.kv, spec.heads, spec.hiddens
    value_width = hid if spec.value_mode == "full" else final.head_dim
    inputs = b * (q * final.query_size + k * final.key_size + k * final.value_size)
    weights = parameter_count(spec)
    projected = b * (q * h * final.head_dim + 2 * k * h * value_width)  # after the head fold
    scores = b * h * q * k
    others = inputs + weights + 2 * projected + 2 * b * q * h * value_width
    element = _ELEMENT_BYTES.get(spec.dtype, 4)
    other_share, score_share = HOLDS.get(command, HOLDS["inspect"])
    total = (other_share * others + score_share * scores) * element
    return int(total), scores * element


def weights_bytes(spec: AttentionSpec) -> int:
    """What `mha weights` holds for one layer of `spec`."""
    return int(WEIGHTS_HOLD * parameter_count(spec) * _ELEMENT_BYTES.get(spec.dtype, 4))


def available_bytes() -> int | None:
    """Memory a run can have here, or None where the OS does not say: Linux's MemAvailable
    (free memory and the caches the kernel gives back on demand), else the free pages; less
    where an address-space limit (`ulimit -v`) leaves this process less room than that."""
    free = _system_available()
    room = _address_space_left()
    if room is not None:
        free = room if free is None else min(free, room)
    return free


def _system_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left() -> int | None:
    """RLIMIT_AS less the address space already mapped, where a limit is set (Linux)."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return max(limit - int(line.split()[1]) * 1024, 0)
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return None


def check_fits(
    spec: AttentionSpec,
    available: int | None,
    *,
    needs_values: bool = False,
    command: str = "inspect",
) -> None:
    """Refuse a run that cannot fit in `available` bytes, with a way out that works for the
    command: `--device meta` where shapes are enough, smaller sizes where values are needed."""
    if available is None:
        return
    total, scores = estimate_bytes(spec, command)
    if total <= _HEADROOM * available:
        return
    scores_shape = f"({spec.batch * spec.heads}, {spec.queries}, {spec.kv})"
    need = (
        f"this configuration needs about {size_text(total)} for its tensors (the scores "
        f"{scores_shape} alone take {size_text(scores)} each) but {spec.device} has "
        f"{size_text(available)} free"
    )
    if needs_values:  # the meta device would give no values: only smaller sizes help
        raise MhaError(f"{need}; {smaller_sizes(spec, available, command)}")
    streams = (
        ""
        if spec.score != "dot"
        else ("; mha heatmap and mha heads compute it one head at a time and run at this size")
    )
    raise MhaError(
        f"{need}; add --device meta for its shapes, parameters, FLOPs and bytes without "
        f"allocating anything{streams}"
    )


def check_weights_fit(spec: AttentionSpec, available: int | None) -> None:
    """`mha weights` on a layer too big for memory: refuse it before drawing its weights."""
    if available is None:
        return
    total = weights_bytes(spec)
    if total <= _HEADROOM * available:
        return
    fix = "use smaller sizes (--hiddens, --heads)"
    width = 1 << max(spec.final().head_dim or 1, 1).bit_length()
    while width > 1:  # heads x a power of two: divisible by the heads, an even head width
        width //= 2
        hiddens = spec.heads * width
        if hiddens < spec.hiddens and weights_bytes(_resized(spec, hiddens)) <= (
            _HEADROOM * available
        ):
            fix = f"use smaller sizes, e.g. --hiddens {hiddens}"
            break
    raise MhaError(
        f"this layer needs about {size_text(total)} (its {parameter_count(spec):,} "
        f"parameters, and the head circuits made from them) but {spec.device} has "
        f"{size_text(available)} free; {fix}"
    )


def _resized(spec: AttentionSpec, hiddens: int) -> AttentionSpec:
    """`spec` with `hiddens` (input sizes left unset follow it)."""
    return replace(spec, hiddens=hiddens)


def smaller_sizes(spec: AttentionSpec, available: int, command: str = "inspect") -> str:
    """The fix when values are needed: the longest power-of-two context that fits."""
    length = 1 << max(spec.queries, spec.kv).bit_length()
    while length > 1:
        length //= 2
        smaller = replace(spec, queries=min(spec.queries, length), kv=min(spec.kv, length))
        if estimate_bytes(smaller, command)[0] <= _HEADROOM * available:
            return f"use smaller sizes, e.g. --queries {smaller.queries} --kv {smaller.kv}"
    return "use smaller sizes (--batch, --heads, --hiddens)"


def refuse_meta_for_values(spec: AttentionSpec, what: str, command: str = "inspect") -> None:
    """`what` (heatmaps, a comparison...) needs computed values, which the meta device has not:
    say so, with sizes that fit this machine's memory (for `command`) when the spec's do not."""
    if spec.device != "meta":
        return
    on_cpu = replace(spec, device="cpu")
    available = available_bytes()
    fits = available is None or estimate_bytes(on_cpu, command)[0] <= _HEADROOM * available
    fix = "use --device cpu"
    if not fits and available is not None:
        smaller = smaller_sizes(on_cpu, available, command).removeprefix("use ")
        fix += f" and, to fit {size_text(available)} of free memory, {smaller}"
    raise MhaError(f"{what} need computed values, and --device meta computes none; {fix}")
