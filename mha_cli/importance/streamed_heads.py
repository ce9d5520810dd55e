"""`mha heads` at long context: each head's output and attention focus computed one (example,
head) and one block of queries at a time, never the (b h, q, k) weights at once.

What `head_importance.measure_heads` needs from the full pass is small: the concatenation
before W_o (b, q, h*w), the output, W_o, and per row of each head its attention entropy and
largest weight. Each block's weights (every key a query sees, softmax exactly as the layer's)
give those rows and `weights @ values` for the concatenation, then are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mha_cli.files.sources import resolve
from mha_cli.importance.ablation import Focus, _standard_error
from mha_cli.layer.head_roles import RoleTally
from mha_cli.layer.masking import MASK_VALUE, query_positions
from mha_cli.layer.role_records import HeadRole
from mha_cli.layer.run import make_inputs
from mha_cli.layer.streamed import (
    HeadProjections,
    _notes,
    block_mask,
    head_scores,
    key_span,
    streamed_layer,
)
from mha_cli.spec.spec import AttentionSpec, FinalSpec
from mha_cli.spec.streaming import StreamPlan, Window, plan_stream


@dataclass
class StreamedHeads:
    """What `measure_heads` reads from a run, computed streamed."""

    spec: FinalSpec
    source: Any
    notes: list[str]
    concat: torch.Tensor  # (b, q, h*w)
    output: torch.Tensor  # (b, q, H)
    parameters: dict[str, torch.Tensor]
    focus: Focus
    roles: list[HeadRole]
    roles_note: str | None


def stream_heads(spec: AttentionSpec) -> StreamedHeads:
    sources = resolve(spec)
    asked, spec = spec, sources.spec  # every size written out (FinalSpec)
    whole = plan_stream(spec, Window(0, spec.queries), Window(0, spec.kv))
    layer, device, dtype = streamed_layer(
        spec, asked, whole, sources.state, "mha heads streams the dot-product layer only; use "
        "--score dot",
    )  # fmt: skip
    queries, keys, values = make_inputs(spec, device, dtype, sources.inputs)
    lens = None
    if spec.valid_lens is not None:
        lens = torch.tensor(spec.valid_lens, dtype=torch.long, device=device)
    with torch.no_grad():
        tally = RoleTally(spec, spec.heads)  # what each head does, in words
        concat, entropy, confidence, rows = _stream(spec, layer, queries, keys, values, lens, tally)
        output = layer.W_o(concat)
    count = rows.sum(dim=(0, 2)).clamp_min(1)
    mean_entropy = (entropy * rows).sum(dim=(0, 2)) / count
    mean_confidence = (confidence * rows).sum(dim=(0, 2)) / count
    focus = Focus(
        mean_entropy.tolist(),
        mean_confidence.tolist(),
        _standard_error(entropy, mean_entropy, rows, count),
        _standard_error(confidence, mean_confidence, rows, count),
    )
    notes = [line for line in _notes(spec, whole, layer) if not line.startswith("streamed")]
    notes.append(
        f"streamed: attention computed one (example, head) and {whole.block_rows} queries at a "
        f"time, each softmax over all {spec.kv} keys"
    )
    return StreamedHeads(
        sources.spec,
        sources.source,
        notes,
        concat,
        output,
        dict(layer.state_dict()),
        focus,
        *tally.roles(),
    )


def _value_head(layer: Any, projected: torch.Tensor, kv_head: int) -> torch.Tensor:
    """One key-value head's values (k, d): its columns of the projected values."""
    d = layer.head_dim
    return projected[:, kv_head * d : (kv_head + 1) * d]


def _stream(
    spec: FinalSpec,
    layer: Any,
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    lens: torch.Tensor | None,
    tally: RoleTally,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The concatenation (b, q, h*w), and per (b, h, q) row: entropy, confidence (float64)
    and whether the row has a key to see."""
    b, h, q, k = spec.batch, spec.heads, spec.queries, spec.kv
    group = h // layer.num_kv_heads
    device = queries.device
    width = spec.hiddens if layer.full_values else layer.head_dim
    concat = torch.empty((b, q, h * width), dtype=queries.dtype, device=device)
    entropy = torch.zeros((b, h, q), dtype=torch.float64)
    confidence = torch.zeros((b, h, q), dtype=torch.float64)
    rows_seen = torch.zeros((b, h, q), dtype=torch.float64)
    key_pos = torch.arange(k, device=device)
    query_pos = query_positions(q, k, device)
    plan = plan_stream(spec, Window(0, q), Window(0, k))
    block = max(1, plan.block_rows // plan.query_factor * plan.query_factor)
    offset = max(0, k - q)
    # Only keys no query of a block sees are left out, and only where every row sees a key
    # (a row with none is uniform over ALL keys in d2l's softmax, and so is its output).
    narrow = lens is None and (spec.window is None or q <= k)
    for example in range(b):
        key_heads = HeadProjections(layer, keys[example], "keys", key_pos)
        query_heads = HeadProjections(layer, queries[example], "queries", query_pos)
        projected = layer.W_v(values[example])  # (k, g*d), or (k, H) when kept whole
        if layer.clip_qkv is not None:  # OLMo clamps the values too
            projected = projected.clamp(-layer.clip_qkv, layer.clip_qkv)
        blocks: dict[int, _Block] = {}  # the mask is every head's: made once per block
        for head in range(h):
            head_keys = key_heads(head // group)  # grouped-query heads share one key head
            head_values = (
                projected if layer.full_values else _value_head(layer, projected, head // group)
            )
            head_queries = query_heads(head)
            for start in range(0, q, block):
                stop = min(q, start + block)
                if start not in blocks:
                    blocks[start] = _block(
                        spec, example, start, stop, offset, narrow, plan, lens, query_pos,
                        key_pos, tally,
                    )  # fmt: skip
                    if head == 0:  # one baseline per block
                        shared = blocks[start]
                        tally.add_baseline(
                            shared.hidden, shared.queries, shared.keys, shared.tally_rows
                        )
                shared = blocks[start]
                low, high = shared.low, shared.high
                scores = head_scores(
                    layer,
                    head_queries[start:stop],
                    head_keys[low:high],
                    key_pos[low:high],
                    head,
                    query_pos[start:stop],
                )  # (r, high - low)
                if shared.mask is not None:  # masking.masked_softmax's fill, in place
                    scores.masked_fill_(shared.mask, max(MASK_VALUE, torch.finfo(scores.dtype).min))
                weights = torch.softmax(scores, dim=-1)  # (r, high - low)
                del scores
                cols = slice(head * width, (head + 1) * width)
                concat[example, start:stop, cols] = weights @ head_values[low:high]
                # A masked weight is exactly 0 in a row that sees a key, and adds nothing;
                # a row that sees none is left out of the means (rows_seen 0).
                p = weights.float()
                row_entropy = -torch.special.xlogy(p, p).sum(-1)  # (r,)
                entropy[example, head, start:stop] = row_entropy.to(torch.float64).cpu()
                confidence[example, head, start:stop] = p.amax(-1).to(torch.float64).cpu()
                rows_seen[example, head, start:stop] = shared.seen
                tally.add(head, p, shared.queries, shared.keys, shared.tally_rows)
    return concat, entropy, confidence, rows_seen


@dataclass
class _Block:
    """What a block of queries shares across heads: its keys, its mask, the rows it counts."""

    low: int
    high: int
    mask: torch.Tensor | None  # (r, high - low) True where masked
    hidden: torch.Tensor  # (r, high - low): the mask, or no cell hidden
    queries: torch.Tensor  # (r,) positions
    keys: torch.Tensor  # (high - low,) positions
    seen: torch.Tensor  # (r,) float64 on the cpu: 1 for a row with a key to see
    tally_rows: torch.Tensor  # (r,) float64: the rows the head roles count


def _block(
    spec: FinalSpec,
    example: int,
    start: int,
    stop: int,
    offset: int,
    narrow: bool,
    plan: StreamPlan,
    lens: torch.Tensor | None,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    tally: RoleTally,
) -> _Block:
    k = spec.kv
    span = key_span(start + offset, stop - 1 + offset, k, spec.causal, spec.window, plan)
    low, high = span if span is not None and narrow else (0, k)
    example_lens = None
    if lens is not None:
        example_lens = lens[example]
        if example_lens.dim() == 1:
            example_lens = example_lens[start:stop]
    block_queries, block_keys = query_pos[start:stop], key_pos[low:high]
    mask = block_mask(example_lens, block_queries, block_keys, spec.causal, spec.window)
    if mask is not None:  # one valid length, nothing causal: one row, the block's every row
        mask = mask.expand(stop - start, high - low)
    if mask is None or narrow:
        seen = torch.ones(stop - start, dtype=torch.float64)
    else:
        seen = (~mask).any(-1).cpu().to(torch.float64)
    hidden = (
        mask
        if mask is not None
        else torch.zeros((stop - start, high - low), dtype=torch.bool, device=query_pos.device)
    )
    rows = tally.rows(example, block_queries, hidden).to(query_pos.device)
    return _Block(low, high, mask, hidden, block_queries, block_keys, seen, rows)
