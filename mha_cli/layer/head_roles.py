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
    """One `HeadRole` per head, and a note saying which figures are n/a and why (or None)."""
    b, h, q, k = attention.shape
    weights = attention.detach().to(device="cpu", dtype=torch.float64)
    hidden = (
        torch.zeros(b, q, k, dtype=torch.bool)
        if mask is None
        else mask.detach().to("cpu").expand(b, h, q, k)[:, 0]
    )  # (b, q, k): the mask is the same for every head
    aligned = same_sequence(spec)
    rows = valid_rows(spec, hidden, aligned)  # (b, q)
    visible = (~hidden).double()
    counts = visible.sum(-1, keepdim=True)
    even = torch.where(counts > 0, visible / counts.clamp(min=1), 1.0 / k)  # (b, q, k)
    shares = _shares(weights, rows, aligned, spec.query_offset)
    baseline = _shares(even[:, None], rows, aligned, spec.query_offset)
    roles = [_role(head, shares, baseline) for head in range(h)]
    return roles, _note(spec, aligned, rows, b, q)


def valid_rows(spec: FinalSpec, hidden: torch.Tensor, aligned: bool) -> torch.Tensor:
    """(b, q) bool: rows that see at least one key, and, in one sequence, queries within their
    example's valid length (a padded query is no token)."""
    q = hidden.shape[1]
    rows = ~hidden.all(-1)
    lens = spec.valid_lens
    if aligned and lens is not None and not isinstance(lens[0], tuple):
        positions = torch.arange(q) + spec.query_offset
        limit = torch.tensor([int(n) for n in lens])  # type: ignore[arg-type]
        rows = rows & (positions[None, :] < limit[:, None])
    return rows


def _shares(
    weights: torch.Tensor, rows: torch.Tensor, aligned: bool, offset: int
) -> dict[str, torch.Tensor | None]:
    """Each figure per head (h,) from float64 weights (b, h or 1, q, k) and rows (b, q)."""
    _, _, q, k = weights.shape
    w = rows.double()  # (b, q)
    total = w.sum()
    figures: dict[str, torch.Tensor | None] = dict.fromkeys(
        ("sink", "previous", "itself", "distance")
    )
    if total == 0:
        return figures
    figures["sink"] = torch.einsum("bhq,bq->h", weights[..., 0], w) / total
    if not aligned:
        return figures
    query_pos = torch.arange(q) + offset  # (q,)
    key_pos = torch.arange(k)  # (k,)
    diagonal = (key_pos[None, :] == query_pos[:, None]).double()  # (q, k)
    previous = (key_pos[None, :] == query_pos[:, None] - 1).double()
    distance = (query_pos[:, None] - key_pos[None, :]).abs().double()
    figures["itself"] = torch.einsum("bhqk,qk,bq->h", weights, diagonal, w) / total
    figures["distance"] = torch.einsum("bhqk,qk,bq->h", weights, distance, w) / total
    with_previous = w * (query_pos >= 1).double()[None, :]
    if with_previous.sum() > 0:
        figures["previous"] = (
            torch.einsum("bhqk,qk,bq->h", weights, previous, with_previous) / with_previous.sum()
        )
    return figures


def _value(figures: dict[str, torch.Tensor | None], name: str, head: int) -> float | None:
    values = figures[name]
    if values is None:
        return None
    return float(values[min(head, values.shape[0] - 1)])  # the baseline has one "head"


def _role(
    head: int,
    shares: dict[str, torch.Tensor | None],
    baseline: dict[str, torch.Tensor | None],
) -> HeadRole:
    sink, previous, itself, distance = (
        _value(shares, name, head) for name in ("sink", "previous", "itself", "distance")
    )
    if sink is None:
        return HeadRole(head, None, None, None, None, "n/a", "n/a (no valid query row)")
    candidates = [
        (share, kind)
        for kind, share in (("previous", previous), ("sink", sink), ("itself", itself))
        if share is not None
        and share >= DOMINANT
        and share >= (_value(baseline, kind, head) or 0.0) + MARGIN
    ]
    if candidates:
        share, kind = max(candidates)
        role = f"{KIND_WORDS[kind]} {share:.2f}"
    else:
        kind = "spread"
        role = "spread" if distance is None else f"spread (mean distance {distance:.1f})"
    return HeadRole(head, sink, previous, itself, distance, kind, role)


def _note(spec: FinalSpec, aligned: bool, rows: torch.Tensor, b: int, q: int) -> str | None:
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
