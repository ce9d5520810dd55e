"""Long context: when a heatmap is computed one (example, head) and one block of queries at a
time, and what each pixel of the picture stands for.

Pure arithmetic, no torch: the window the user asked for (`--queries-range`, `--keys-range`),
how many queries and keys each pixel gathers (`factor`), how many query rows a block holds,
and the memory a streamed run needs at most, with the refusal (and a size that runs) when even
that cannot fit. The torch side is `mha_cli.layer.streamed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mha_cli.errors import MhaError
from mha_cli.messages import size_text
from mha_cli.spec.counts import parameter_count
from mha_cli.spec.memory import estimate_bytes
from mha_cli.spec.spec import AttentionSpec

# Above this many (batch x heads x queries x keys) cells the full map is not held at once.
STREAM_CELLS = 1 << 24  # 16.8 M: 64 MiB of float32, three times over in the full pass
# The picture shows about this many pixels along the side of the whole grid of panels.
GRID_PIXELS = 1536
MIN_PANEL_PIXELS = 64
BLOCK_CELLS = 1 << 21  # one block of scores: 8 MiB of float32 (its rows x all keys)
REDUCTIONS = ("max", "mean")
_HEADROOM = 0.8  # as spec.memory: the rest is Python, torch and the OS
_ELEMENT_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Window:
    """Positions start..stop-1 of one axis (queries or keys), as the user asked for them."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def parse_range(text: str | None, total: int, option: str, axis: str) -> Window:
    """`A:B` (either side may be left out) as positions A..B-1 of an axis of `total` positions;
    None is the whole axis. A bad range is the user's mistake: one line, how to fix it."""
    if text is None:
        return Window(0, total)
    first, colon, last = text.strip().partition(":")
    try:
        if not colon:
            raise ValueError
        start = int(first) if first.strip() else 0
        stop = int(last) if last.strip() else total
    except ValueError:
        raise MhaError(
            f"{option} {text!r} is not a range: give START:STOP, e.g. {option} 0:{min(total, 128)}"
        ) from None
    if not 0 <= start < stop <= total:
        raise MhaError(
            f"{option} {text}: the {total} {axis} are 0..{total - 1}, so START:STOP needs "
            f"0 <= START < STOP <= {total}; e.g. {option} 0:{min(total, 128)}"
        )
    return Window(start, stop)


@dataclass(frozen=True)
class StreamPlan:
    """How a streamed heatmap is computed and what each pixel holds."""

    queries: Window  # the query rows computed (each softmax still runs over every key)
    keys: Window  # the key columns kept
    query_factor: int  # queries gathered by one pixel row
    key_factor: int  # keys gathered by one pixel column
    block_rows: int  # query rows per block: a multiple of query_factor
    reduction: str  # "max" or "mean"

    @property
    def pixel_rows(self) -> int:
        return math.ceil(self.queries.size / self.query_factor)

    @property
    def pixel_cols(self) -> int:
        return math.ceil(self.keys.size / self.key_factor)

    @property
    def reduced(self) -> bool:
        return self.query_factor > 1 or self.key_factor > 1

    def describe(self) -> str:
        """For the title: what a pixel is."""
        if not self.reduced:
            return "every weight drawn (no reduction)"
        return (
            f"each pixel the {self.reduction} of {self.query_factor} queries x "
            f"{self.key_factor} keys (masked only where all are)"
        )


def panel_pixels(batch: int, heads: int) -> int:
    """Pixels along one panel's side: the grid of batch x heads panels about GRID_PIXELS wide."""
    return max(MIN_PANEL_PIXELS, GRID_PIXELS // math.ceil(math.sqrt(batch * heads)))


def wants_streaming(spec: AttentionSpec, windowed: bool) -> bool:
    """Stream when a window is asked for, or when the full (b, h, q, k) map is large. Only the
    dot-product layer streams (the additive one is the book's small example)."""
    if spec.score != "dot":
        return False
    return windowed or spec.batch * spec.heads * spec.queries * spec.kv > STREAM_CELLS


def plan_stream(
    spec: AttentionSpec, queries: Window, keys: Window, reduction: str = "max"
) -> StreamPlan:
    """The factors that bring the window to the picture's pixels, and the block size."""
    if reduction not in REDUCTIONS:
        raise MhaError(f"--reduce {reduction!r} is not one of {', '.join(REDUCTIONS)}")
    side = panel_pixels(spec.batch, spec.heads)
    query_factor = math.ceil(queries.size / side)
    key_factor = math.ceil(keys.size / side)
    rows = max(1, BLOCK_CELLS // max(1, spec.kv)) // query_factor * query_factor
    rows = min(max(rows, query_factor), queries.size)
    return StreamPlan(queries, keys, query_factor, key_factor, rows, reduction)


def streamed_bytes(spec: AttentionSpec, plan: StreamPlan) -> int:
    """At most what a streamed run holds at once: the queries and keys, the layer's weights,
    one head's projected queries and keys (with rotation temporaries), one block of scores,
    mask and weights, and the reduced picture."""
    b, q, k = spec.batch, spec.queries, spec.kv
    final = spec.final()  # every size written out
    element = _ELEMENT_BYTES.get(spec.dtype, 4)
    inputs = b * (q * final.query_size + k * final.key_size)
    head = 3 * (q + k) * final.head_dim
    block = 3 * plan.block_rows * k  # scores, weights, a temporary
    picture = b * spec.heads * plan.pixel_rows * plan.pixel_cols * 2  # values and counts
    elements = inputs + parameter_count(spec) + head + block + picture
    return elements * element + 2 * plan.block_rows * k + picture  # + the block's masks


def check_stream_fits(
    spec: AttentionSpec,
    plan: StreamPlan,
    available: int | None,
    asked: AttentionSpec | None = None,
) -> None:
    """Refuse a streamed run that cannot fit even so, with sizes that do: changes of `asked`,
    the spec as the user gave it (before every size was written out)."""
    if available is None:
        return
    total = streamed_bytes(spec, plan)
    if total <= _HEADROOM * available:
        return
    raise MhaError(
        f"this configuration needs about {size_text(total)} even computed one head and "
        f"{plan.block_rows} queries at a time (its inputs and weights alone take "
        f"{size_text(total - _block_bytes(spec, plan))}) but {spec.device} has "
        f"{size_text(available)} free; {smaller_streamed(asked or spec, plan, available)}"
    )


def _block_bytes(spec: AttentionSpec, plan: StreamPlan) -> int:
    element = _ELEMENT_BYTES.get(spec.dtype, 4)
    return (3 * element + 2) * plan.block_rows * spec.kv


def smaller_streamed(spec: AttentionSpec, plan: StreamPlan, available: int) -> str:
    """The longest power-of-two context (then fewer hiddens) whose streamed run fits."""
    length = 1 << max(spec.queries, spec.kv).bit_length()
    while length > 1:
        length //= 2
        smaller = replace(spec, queries=min(spec.queries, length), kv=min(spec.kv, length))
        if _fits(smaller, plan.reduction, available):
            return f"use smaller sizes, e.g. --queries {smaller.queries} --kv {smaller.kv}"
    # The weights alone do not fit: fewer hiddens (a multiple of the heads), at full length.
    hiddens = spec.hiddens
    while hiddens // 2 >= spec.heads:
        hiddens = hiddens // 2 // spec.heads * spec.heads
        given = (spec.head_dim, spec.query_size, spec.key_size, spec.value_size)
        if any(size is not None for size in given):
            break  # sizes given beside --hiddens would not follow it
        if _fits(replace(spec, hiddens=hiddens), plan.reduction, available):
            return f"use smaller sizes, e.g. --hiddens {hiddens}"
    return "use smaller sizes (--batch, --heads, --hiddens)"


def _fits(spec: AttentionSpec, reduction: str, available: int) -> bool:
    """Whether `spec` runs, by the path it would take: streamed, or the full pass when small."""
    if not wants_streaming(spec, windowed=False):
        return estimate_bytes(spec, "heatmap")[0] <= _HEADROOM * available
    whole = plan_stream(spec, Window(0, spec.queries), Window(0, spec.kv), reduction)
    return streamed_bytes(spec, whole) <= _HEADROOM * available


def attention_weights_bytes(spec: AttentionSpec) -> int:
    """The full (b, h, q, k) attention weights, as `--export` would write them."""
    element = _ELEMENT_BYTES.get(spec.dtype, 4)
    return spec.batch * spec.heads * spec.queries * spec.kv * element
