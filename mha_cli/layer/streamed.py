"""Attention weights at long context, one (example, head) and one block of queries at a time,
each block reduced to the picture's pixels as soon as it is computed.

The full pass (`run.run_attention`) holds the ((b h), q, k) scores, masked scores and weights
at once: 8192 tokens x 32 heads is 24 GiB. Here one head's queries and keys are projected from
the layer's own weights (its slice of W_q and W_k, then the same qk-norm and rotation), and
each block of queries gets its scores against EVERY key, the layer's mask and its softmax, so
each row is normalised exactly as the layer normalises it. Only then is the block cut to the
window asked for and reduced: each pixel holds the max (or the mean) of the weights it covers
that are not masked, and is masked only when every one of them is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mha_cli.errors import MhaError
from mha_cli.files.sources import resolve
from mha_cli.layer.alibi import alibi_slopes, alibi_values
from mha_cli.layer.layer import MultiHeadAttention
from mha_cli.layer.masking import MASK_VALUE, query_positions
from mha_cli.layer.norms import layer_norm
from mha_cli.layer.rope import apply_rope
from mha_cli.layer.run import build_layer, resolve_device, stream_seed
from mha_cli.spec import memory
from mha_cli.spec.spec import AttentionSpec, FinalSpec
from mha_cli.spec.streaming import StreamPlan, check_stream_fits, parse_range, plan_stream

if TYPE_CHECKING:
    from mha_cli.heatmaps.data import HeatmapData

Steps = Callable[[int, int], None]  # (blocks done, blocks in all)


@dataclass
class StreamedSummary:
    """What the command prints under a streamed heatmap: the run's notes."""

    notes: list[str]


@dataclass
class StreamedRun:
    """A streamed run: its spec (JSON-ready), notes, and how each pixel was made."""

    spec: FinalSpec
    summary: StreamedSummary
    plan: StreamPlan


@dataclass
class Picture:
    """The reduced weights (b, h, rows, cols) float32 and where every cell covered is masked."""

    values: torch.Tensor
    masked: torch.Tensor


def stream_heatmap(
    spec: AttentionSpec,
    queries_range: str | None,
    keys_range: str | None,
    reduction: str = "max",
    steps: Steps | None = None,
    inputs: dict[str, Any] | None = None,
) -> tuple[StreamedRun, Picture]:
    """The layer `spec` describes, its attention weights computed per (example, head) and
    block of queries and reduced to the picture's pixels. `inputs` (queries, keys, values)
    replace the spec's: a text's captured hidden states."""
    sources = resolve(spec)
    asked, spec = spec, sources.spec  # every size written out (FinalSpec)
    plan = plan_stream(
        spec,
        parse_range(queries_range, spec.queries, "--queries-range", "queries"),
        parse_range(keys_range, spec.kv, "--keys-range", "keys"),
        reduction,
    )
    layer, device, dtype = streamed_layer(
        spec, asked, plan, sources.state, "streamed heatmaps need the dot-product layer; drop "
        "--score additive",
    )  # fmt: skip
    given = inputs if inputs is not None else sources.inputs
    queries, keys = _queries_and_keys(spec, device, dtype, given)
    lens = None
    if spec.valid_lens is not None:
        lens = torch.tensor(spec.valid_lens, dtype=torch.long, device=device)  # (b,) or (b, q)
    with torch.no_grad():
        picture = _stream(spec, plan, layer, queries, keys, lens, steps)
    return StreamedRun(sources.spec, StreamedSummary(_notes(spec, plan, layer)), plan), picture


def streamed_layer(
    spec: FinalSpec, asked: AttentionSpec, plan: StreamPlan, state: Any, refusal: str
) -> tuple[MultiHeadAttention, torch.device, torch.dtype]:
    """The layer a streamed run computes with, in eval mode, once its plan is known to fit the
    device's free memory; `refusal` is the line for a layer that does not stream."""
    device = resolve_device(spec.device)
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    available = memory.available_bytes() if device.type == "cpu" else free
    check_stream_fits(spec, plan, available, asked)
    dtype = getattr(torch, spec.dtype)
    layer = build_layer(spec, device, dtype, state)
    if not isinstance(layer, MultiHeadAttention):
        raise MhaError(refusal)
    layer.eval()
    return layer, device, dtype


def _queries_and_keys(
    spec: FinalSpec, device: torch.device, dtype: torch.dtype, given: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """`run.make_inputs`'s queries and keys (the values are not needed for the weights):
    drawn from the same generator in the same order, so the numbers are the full run's."""
    q_shape = (spec.batch, spec.queries, spec.query_size)
    k_shape = (spec.batch, spec.kv, spec.key_size)
    if given is not None:
        return (
            given["queries"].to(device=device, dtype=dtype),
            given["keys"].to(device=device, dtype=dtype),
        )
    if spec.inputs == "ones":
        return (
            torch.ones(q_shape, dtype=dtype, device=device),
            torch.ones(k_shape, dtype=dtype, device=device),
        )
    generator = torch.Generator().manual_seed(stream_seed(spec.seed, "inputs"))
    made = [torch.randn(s, generator=generator) for s in (q_shape, k_shape)]
    return made[0].to(device=device, dtype=dtype), made[1].to(device=device, dtype=dtype)


PROJECTION_BYTES = 64 << 20  # heads are projected together up to this many bytes per role


def head_rows(
    layer: MultiHeadAttention,
    x: torch.Tensor,  # (n, size): one example's queries or keys
    first: int,  # a query head, or a key-value head for keys
    role: str,  # "queries" or "keys"
    positions: torch.Tensor,  # (n,) positions, for the rotation
    count: int = 1,
) -> torch.Tensor:
    """Heads first..first+count-1's projected queries (or keys), (count, n, d): their rows of
    W_q (W_k), then the same qk-norm and rotation the layer applies after its head split."""
    d = layer.head_dim
    linear: nn.Linear = layer.W_q if role == "queries" else layer.W_k
    norm = (layer.q_norm if role == "queries" else layer.k_norm) if layer.qk_norm else None
    if layer.qk_norm_whole:  # OLMo 2: the norm sees every head's features, so project them all
        y = linear(x)  # (n, heads * d)
        if layer.clip_qkv is not None:
            y = y.clamp(-layer.clip_qkv, layer.clip_qkv)
        assert norm is not None  # whole-projection norms come with qk_norm
        y = norm(y)[:, first * d : (first + count) * d]  # (n, count * d)
    else:
        rows = slice(first * d, (first + count) * d)
        bias = None if linear.bias is None else linear.bias[rows]
        y = nn.functional.linear(x, linear.weight[rows], bias)  # (n, count * d)
        if layer.clip_qkv is not None:  # OLMo: a clamp per feature, so a slice is the same
            y = y.clamp(-layer.clip_qkv, layer.clip_qkv)
    y = y.reshape(1, x.shape[0], count, d).permute(0, 2, 1, 3)  # (1, count, n, d)
    if norm is not None and layer.qk_norm_layer:  # StableLM, Cohere: these heads' weights
        y = layer_norm(y, norm.weight[first : first + count], norm.eps)
    elif norm is not None and not layer.qk_norm_whole:
        y = norm(y)
    if layer.rotary is not None:
        rotary_dim = 2 * layer.rotary.inv_freq.shape[0]
        y = apply_rope(
            y, positions, layer.rotary.inv_freq, rotary_dim, layer.rotary.pairing,
            layer.rotary.factor,
        )  # fmt: skip
    return y[0]


class HeadProjections:
    """One example's per-head queries (or keys), projected a group of heads at a time (one
    wide matrix product is faster than many thin ones), the group at most PROJECTION_BYTES."""

    def __init__(
        self, layer: MultiHeadAttention, x: torch.Tensor, role: str, positions: torch.Tensor
    ) -> None:
        self.layer, self.x, self.role, self.positions = layer, x, role, positions
        heads = layer.num_heads if role == "queries" else layer.num_kv_heads
        per_head = x.shape[0] * layer.head_dim * x.element_size()
        size = max(1, min(heads, PROJECTION_BYTES // max(1, per_head)))
        self.heads, self.size = heads, heads if layer.qk_norm_whole else size
        self.first, self.group = -1, torch.empty(0)

    def __call__(self, head: int) -> torch.Tensor:  # (n, d)
        if not self.first <= head < self.first + self.group.shape[0]:
            self.first = head // self.size * self.size
            count = min(self.size, self.heads - self.first)
            self.group = head_rows(self.layer, self.x, self.first, self.role, self.positions, count)
        return self.group[head - self.first]


def head_scores(
    layer: MultiHeadAttention,
    rows: torch.Tensor,  # (r, d): one head's queries
    keys: torch.Tensor,  # (n, d): its keys
    key_pos: torch.Tensor,  # (n,) the keys' positions
    head: int,
    query_pos: torch.Tensor | None = None,  # (r,) the queries' positions (T5's bias needs them)
) -> torch.Tensor:
    """One head's scores (r, n), as `DotProductAttention` makes them before the mask: the
    scale (1/sqrt(d), or the family's), ALiBi's bias, T5's relative position bias and Gemma 2's
    soft-capping."""
    attention = layer.attention
    scores = rows @ keys.T  # (r, n)
    if attention.scale is None:
        scores.div_(math.sqrt(rows.shape[-1]))
    else:
        scores.mul_(attention.scale)
    if attention.alibi_heads is not None:  # slope of this head times the key's position
        slopes = alibi_slopes(attention.alibi_heads)[head : head + 1].to(scores.device)
        bias = alibi_values(slopes, key_pos, attention.alibi_scaled)[0].to(scores.dtype)  # (n,)
        if attention.alibi_scaled:  # Falcon: scaled as the scores are
            if attention.scale is None:
                bias = bias / math.sqrt(rows.shape[-1])
            else:
                bias = bias * attention.scale
        scores.add_(bias[None, :])
    if layer.relative_bias is not None:  # this head's column of the table, by bucket of j - i
        if query_pos is None:
            raise ValueError("head_scores: a relative position bias needs the queries' positions")
        bias = layer.relative_bias.head(query_pos, key_pos, not attention.causal, head)
        scores.add_(bias.to(scores.dtype))
    if attention.softcap is not None:
        scores = torch.tanh(scores / attention.softcap) * attention.softcap
    return scores


def block_mask(
    lens: torch.Tensor | None,  # () or (rows,): the example's valid length(s) for these rows
    query_pos: torch.Tensor,  # (rows,) positions of the block's queries
    key_pos: torch.Tensor,  # (k,)
    causal: bool,
    window: int | None,
) -> torch.Tensor | None:
    """`masking.positional_mask` for one example and one block of queries: (rows, k)."""
    mask = None
    if lens is not None:
        mask = key_pos[None, :] >= (lens[:, None] if lens.dim() == 1 else lens)
    if causal:
        hidden = key_pos[None, :] > query_pos[:, None]
        if window is not None:
            hidden = hidden | (key_pos[None, :] <= query_pos[:, None] - window)
        mask = hidden if mask is None else mask | hidden
    return mask


def _pool(t: torch.Tensor, query_factor: int, key_factor: int, how: str) -> torch.Tensor:
    """Max or sum over (query_factor x key_factor) tiles, the last ones short where the sides
    do not divide: torch's pooling, with missing cells left out (ceil mode, no padding)."""
    if query_factor == 1 and key_factor == 1:
        return t
    x = t[None, None]  # (1, 1, rows, cols)
    kernel = (query_factor, key_factor)
    if how == "max":
        return nn.functional.max_pool2d(x, kernel, kernel, ceil_mode=True)[0, 0]
    return nn.functional.avg_pool2d(x, kernel, kernel, ceil_mode=True, divisor_override=1)[0, 0]


def reduce_block(
    weights: torch.Tensor,  # (rows, cols) float
    masked: torch.Tensor | None,  # (rows, cols) bool, or broadcastable; None: nothing masked
    query_factor: int,
    key_factor: int,
    reduction: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each (query_factor x key_factor) group of cells as one pixel: the max or mean of its
    unmasked weights, float32; and True where every cell of the group is masked."""
    weights = weights.float()
    if masked is None:
        values = _pool(weights, query_factor, key_factor, reduction)
        if reduction == "mean":
            cells = _pool(torch.ones_like(weights), query_factor, key_factor, "sum")
            values = values / cells
        return values, torch.zeros(values.shape, dtype=torch.bool, device=values.device)
    masked = masked.expand(weights.shape)
    seen = (~masked).float()  # (rows, cols)
    counts = _pool(seen, query_factor, key_factor, "sum")
    hidden = counts == 0
    if reduction == "max":
        # Weights are >= 0, so a masked cell counted as 0 changes no maximum, except in a row
        # whose keys are all masked (d2l makes it uniform): only then are they zeroed first.
        empty_rows = masked.all(-1)
        kept = weights if not bool(empty_rows.any()) else weights * seen
        values = _pool(kept, query_factor, key_factor, "max")
    else:
        values = _pool(weights * seen, query_factor, key_factor, "sum") / counts.clamp(min=1)
    return values.masked_fill(hidden, 0.0), hidden


def _stream(
    spec: FinalSpec,
    plan: StreamPlan,
    layer: MultiHeadAttention,
    queries: torch.Tensor,  # (b, q, query_size)
    keys: torch.Tensor,  # (b, k, key_size)
    lens: torch.Tensor | None,  # (b,) or (b, q)
    steps: Steps | None,
) -> Picture:
    b, h, k = spec.batch, spec.heads, spec.kv
    group = h // layer.num_kv_heads
    device = queries.device
    values = torch.zeros((b, h, plan.pixel_rows, plan.pixel_cols), dtype=torch.float32)
    hidden = torch.ones((b, h, plan.pixel_rows, plan.pixel_cols), dtype=torch.bool)
    key_pos = torch.arange(k, device=device)  # (k,)
    window_q = slice(plan.queries.start, plan.queries.stop)
    query_pos = query_positions(spec.queries, k, device)[window_q]  # (n,)
    n = plan.queries.size
    starts = range(0, n, plan.block_rows)
    total, done = b * h * len(starts), 0
    offset = max(0, k - spec.queries)  # queries are the last positions when fewer than keys
    for example in range(b):
        key_heads = HeadProjections(layer, keys[example], "keys", key_pos)
        query_heads = HeadProjections(layer, queries[example, window_q], "queries", query_pos)
        for head in range(h):
            example_keys = key_heads(head // group)  # grouped-query heads share one key head
            rows_of = query_heads(head)
            for start in starts:
                stop = min(n, start + plan.block_rows)
                first = plan.queries.start + start + offset  # positions of the block's queries
                last = plan.queries.start + stop - 1 + offset
                span = key_span(first, last, k, spec.causal, spec.window, plan)
                if span is not None:
                    example_lens = None
                    if lens is not None:
                        example_lens = lens[example] if lens.dim() == 1 else lens[example, window_q]
                        if example_lens.dim() == 1:
                            example_lens = example_lens[start:stop]
                    pixels, empty, left = _block(
                        rows_of[start:stop], example_keys, span, example_lens,
                        query_pos[start:stop], key_pos, spec, plan, layer, head,
                    )  # fmt: skip
                    top = start // plan.query_factor
                    rows_at = slice(top, top + pixels.shape[0])
                    cols_at = slice(left, left + pixels.shape[1])
                    values[example, head, rows_at, cols_at] = pixels.cpu()
                    hidden[example, head, rows_at, cols_at] = empty.cpu()
                done += 1
                if steps is not None:
                    steps(done, total)
    return Picture(values, hidden)


def key_span(
    first: int, last: int, num_keys: int, causal: bool, window: int | None, plan: StreamPlan
) -> tuple[int, int] | None:
    """The keys whose scores a block of queries at positions first..last needs: every key any
    of them sees (a causal block sees none beyond `last`, a window none before first-W+1),
    widened to whole pixel columns of the window drawn. Keys outside it are masked for every
    query of the block, so their weights are exactly 0 and leaving them out changes no
    softmax. None when the window drawn holds none of the keys seen."""
    low, high = 0, num_keys
    if causal:
        high = min(num_keys, last + 1)
        if window is not None:
            low = max(0, first - window + 1)
    start, stop, factor = plan.keys.start, plan.keys.stop, plan.key_factor
    if high <= start or low >= stop:
        return None
    aligned_low = start + max(0, low - start) // factor * factor
    aligned_high = min(stop, start + math.ceil(max(0, high - start) / factor) * factor)
    return min(low, aligned_low), max(high, aligned_high)


def _block(
    rows: torch.Tensor,  # (r, d): the block's queries, one head
    keys: torch.Tensor,  # (k, d): that head's keys
    span: tuple[int, int],
    lens: torch.Tensor | None,
    query_pos: torch.Tensor,  # (r,)
    key_pos: torch.Tensor,  # (k,)
    spec: FinalSpec,
    plan: StreamPlan,
    layer: MultiHeadAttention,
    head: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One block's pixels, which pixels are masked, and the first pixel column they start at."""
    low, high = span
    scores = head_scores(
        layer, rows, keys[low:high], key_pos[low:high], head, query_pos
    )  # (r, high-low)
    mask = block_mask(lens, query_pos, key_pos[low:high], spec.causal, spec.window)
    if mask is not None:  # masking.masked_softmax's fill, in place
        scores.masked_fill_(mask, max(MASK_VALUE, torch.finfo(scores.dtype).min))
    weights = torch.softmax(scores, dim=-1)  # each row normalised over every key it sees
    del scores
    cut = slice(max(low, plan.keys.start) - low, min(high, plan.keys.stop) - low)
    own_key = spec.window is None or spec.queries <= spec.kv  # every query sees a key
    if lens is None and mask is not None and plan.reduction == "max" and own_key:
        # Positions alone mask (causal, window): which pixels are all masked is arithmetic,
        # and every row sees a key, so masked weights are 0 and leave maxima alone.
        hidden = positional_pixels(
            int(query_pos[0]), rows.shape[0], max(low, plan.keys.start), cut, plan, spec.window
        ).to(weights.device)
        values = _pool(weights[:, cut].float(), plan.query_factor, plan.key_factor, "max")
        start = (max(low, plan.keys.start) - plan.keys.start) // plan.key_factor
        return values.masked_fill_(hidden, 0.0), hidden, start
    pixels, empty = reduce_block(
        weights[:, cut],
        None if mask is None else mask[:, cut],
        plan.query_factor,
        plan.key_factor,
        plan.reduction,
    )
    return pixels, empty, (max(low, plan.keys.start) - plan.keys.start) // plan.key_factor


def positional_pixels(
    first_query: int, rows: int, first_key: int, cut: slice, plan: StreamPlan, window: int | None
) -> torch.Tensor:
    """(pixel rows, pixel cols) True where a causal (windowed) mask hides every cell: queries
    at positions first_query.. in groups of query_factor, keys first_key.. in groups of
    key_factor. A pixel is all masked unless some key k and query p in it have
    p - window < k <= p: its smallest key <= its last query, and its largest key > its first
    query - window."""
    keys = cut.stop - cut.start
    q0 = torch.arange(0, rows, plan.query_factor) + first_query  # first query of each row
    q1 = torch.clamp(q0 + plan.query_factor, max=first_query + rows) - 1  # last query
    k0 = torch.arange(0, keys, plan.key_factor) + first_key
    k1 = torch.clamp(k0 + plan.key_factor, max=first_key + keys) - 1
    seen = k0[None, :] <= q1[:, None]
    if window is not None:
        seen &= k1[None, :] > q0[:, None] - window
    return ~seen


def reduce_full(
    attention: torch.Tensor,  # (b, h, q, k)
    mask: torch.Tensor | None,  # (b, h, q, k) bool
    plan: StreamPlan,
) -> Picture:
    """The same reduction of weights a full pass already holds (`--export` needs them all)."""
    b, h = attention.shape[:2]
    values = torch.zeros((b, h, plan.pixel_rows, plan.pixel_cols), dtype=torch.float32)
    hidden = torch.ones((b, h, plan.pixel_rows, plan.pixel_cols), dtype=torch.bool)
    window_q = slice(plan.queries.start, plan.queries.stop)
    window_k = slice(plan.keys.start, plan.keys.stop)
    for example in range(b):
        for head in range(h):
            masked = None if mask is None else mask[example, head, window_q, window_k]
            pixels, empty = reduce_block(
                attention[example, head, window_q, window_k], masked, plan.query_factor,
                plan.key_factor, plan.reduction,
            )  # fmt: skip
            values[example, head], hidden[example, head] = pixels.cpu(), empty.cpu()
    return Picture(values, hidden)


def _notes(spec: FinalSpec, plan: StreamPlan, layer: nn.Module) -> list[str]:
    """The full run's notes that do not need its (b, h, q, k) weights, and how it streamed."""
    from mha_cli.layer.summary import _notes as run_notes

    notes = [line for line in run_notes(spec, None, layer) if not line.startswith("meta device")]
    notes.append(
        f"streamed: computed one (example, head) and {plan.block_rows} queries at a time, each "
        f"softmax over all {spec.kv} keys; {plan.describe()}"
    )
    return notes


def picture_data(run: StreamedRun, picture: Picture, text: str | None = None) -> HeatmapData:
    """The reduced weights as the renderers' `HeatmapData`: ticks at the positions each pixel
    starts at, and a title that says what a pixel is (and, for a --text run, `text`: which
    layer of which model ran on it)."""
    from mha_cli.heatmaps.data import HeatmapData
    from mha_cli.heatmaps.plot_data import _title

    plan, spec = run.plan, run.spec
    title = f"{_title(spec, text)}; {plan.describe()}"
    if plan.queries.size < spec.queries or plan.keys.size < spec.kv:
        title += (
            f"; queries {plan.queries.start}..{plan.queries.stop - 1} of {spec.queries}, "
            f"keys {plan.keys.start}..{plan.keys.stop - 1} of {spec.kv}"
        )
    return HeatmapData(
        weights=picture.values.numpy(),
        masked=picture.masked.numpy(),
        title=title,
        query_start=plan.queries.start,
        query_step=plan.query_factor,
        key_start=plan.keys.start,
        key_step=plan.key_factor,
        key_count=spec.kv,
    )
