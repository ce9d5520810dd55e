"""What each head does, in words, from the attention weights a run computed.

For each head: the share of its attention on the first key (an attention sink), on the previous
position (key = query position - 1), on its own position (the diagonal), and its mean distance
|query position - key position| weighted by attention. Each is averaged over the valid query
rows of every example: a row whose every key is masked, and a padded query (at or beyond its
example's valid length, when queries and keys are one sequence), are left out. The previous
token is averaged over the rows that have one (query position 1 on).

Positions are the ones the mask uses (`masking.query_positions`): queries and keys are one
sequence when there are as many of each, or when a causal or rotary layer takes fewer queries
as the last positions of the keys (decoding with a cache). Otherwise (cross-attention) no query
sits at a key's position: previous, itself and distance are n/a, and the first key's share is
all there is.
"""

from __future__ import annotations

import torch

from mha_cli.layer.records import HeadRole
from mha_cli.spec.spec import FinalSpec

# A head is named by a share when the share is at least DOMINANT and at least MARGIN above what
# attention spread evenly over the same visible keys would give (with 2 causal keys, even
# attention already puts 0.75 on the first key: that is no sink).
DOMINANT = 0.5
MARGIN = 0.2

KIND_WORDS = {"sink": "first token (sink)", "previous": "previous token", "itself": "itself"}


def same_sequence(spec: FinalSpec) -> bool:
    """Do queries sit at key positions (self-attention, or its last positions)?"""
    if spec.queries == spec.kv:
        return True
    return spec.queries < spec.kv and (spec.causal or spec.rope != "none")


def head_roles(
    spec: FinalSpec,
    attention: torch.Tensor,  # (b, h, q, k)
    mask: torch.Tensor | None,  # (b, h, q, k) True where masked, or None
) -> tuple[list[HeadRole], str | None]:
    """One `HeadRole` per head, and a note saying which figures are n/a and why (or None).

    One head at a time, in float32 with float64 sums: a long sequence's (b, h, q, k) weights
    are never copied whole."""
    b, h, q, k = attention.shape
    attention = attention.detach()
    device = attention.device
    hidden = (
        torch.zeros(b, q, k, dtype=torch.bool, device=device)
        if mask is None
        else mask.detach().expand(b, h, q, k)[:, 0]
    )  # (b, q, k): the mask is the same for every head
    aligned = same_sequence(spec)
    rows = valid_rows(spec, hidden, aligned).double()  # (b, q)
    offset = spec.query_offset
    distances = None
    if aligned:
        query_pos = torch.arange(q, device=device) + offset  # (q,)
        key_pos = torch.arange(k, device=device)  # (k,)
        distances = (query_pos[:, None] - key_pos[None, :]).abs().float()  # (q, k)
    visible = (~hidden).float()
    counts = visible.sum(-1, keepdim=True)
    even = torch.where(counts > 0, visible / counts.clamp(min=1), 1.0 / k)  # (b, q, k)
    baseline = _shares(even, rows, offset, None, aligned)
    shares = [
        _shares(attention[:, head].float(), rows, offset, distances, aligned) for head in range(h)
    ]
    roles = [_role(head, shares[head], baseline) for head in range(h)]
    return roles, _note(spec, aligned, rows.bool())


def valid_rows(spec: FinalSpec, hidden: torch.Tensor, aligned: bool) -> torch.Tensor:
    """(b, q) bool: rows that see at least one key, and, in one sequence, queries within their
    example's valid length (a padded query is no token)."""
    q = hidden.shape[1]
    rows = ~hidden.all(-1)
    lens = spec.valid_lens
    if aligned and lens is not None and not isinstance(lens[0], tuple):
        positions = torch.arange(q, device=hidden.device) + spec.query_offset
        limit = torch.tensor([int(n) for n in lens], device=hidden.device)  # type: ignore[arg-type]
        rows = rows & (positions[None, :] < limit[:, None])
    return rows


def _shares(
    weights: torch.Tensor,  # (b, q, k) one head's weights
    rows: torch.Tensor,  # (b, q) float64: 1 for a row that counts
    offset: int,  # position of the first query
    distances: torch.Tensor | None,  # (q, k) |query position - key position|, or None
    aligned: bool,
) -> dict[str, float | None]:
    """The figures of one head: each row's share, averaged over the rows that count."""
    figures: dict[str, float | None] = dict.fromkeys(("sink", "previous", "itself", "distance"))
    total = float(rows.sum())
    if total == 0:
        return figures

    def mean(per_row: torch.Tensor, weight: torch.Tensor = rows) -> float | None:
        n = float(weight.sum())
        return None if n == 0 else float((per_row.double() * weight).sum()) / n

    figures["sink"] = mean(weights[..., 0])
    if not aligned:
        return figures
    # query i sits at position i + offset: itself is key i + offset, its previous key one less
    figures["itself"] = mean(torch.diagonal(weights, offset=offset, dim1=1, dim2=2))
    previous = torch.diagonal(weights, offset=offset - 1, dim1=1, dim2=2)  # (b, q or q - 1)
    if offset == 0:  # query 0 has no previous key: left out
        previous = torch.nn.functional.pad(previous, (1, 0))
        figures["previous"] = mean(previous, rows * (torch.arange(rows.shape[1]) >= 1).to(rows))
    else:
        figures["previous"] = mean(previous)
    if distances is not None:
        figures["distance"] = mean((weights * distances).sum(-1, dtype=torch.float64))
    return figures


def _role(
    head: int, shares: dict[str, float | None], baseline: dict[str, float | None]
) -> HeadRole:
    sink, previous, itself, distance = (
        shares[name] for name in ("sink", "previous", "itself", "distance")
    )
    if sink is None:
        return HeadRole(head, None, None, None, None, "n/a", "n/a (no valid query row)")
    candidates = [
        (share, kind)
        for kind, share in (("previous", previous), ("sink", sink), ("itself", itself))
        if share is not None and share >= DOMINANT and share >= (baseline[kind] or 0.0) + MARGIN
    ]
    if candidates:
        share, kind = max(candidates)
        role = f"{KIND_WORDS[kind]} {share:.2f}"
    else:
        kind = "spread"
        role = "spread" if distance is None else f"spread (mean distance {distance:.1f})"
    return HeadRole(head, sink, previous, itself, distance, kind, role)


def _note(spec: FinalSpec, aligned: bool, rows: torch.Tensor) -> str | None:
    if not bool(rows.any()):
        return (
            "head roles n/a: every query row is padding or sees no key (valid lengths), so no "
            "attention is left to measure"
        )
    if not aligned:
        return (
            f"previous token, itself and distance are n/a: the {spec.queries} queries and "
            f"{spec.kv} keys are different sequences (cross-attention), so no query sits at a "
            "key's position; the first key's share still applies (self-attention has as many "
            "queries as keys, or --causal with the queries as the last positions)"
        )
    return None
