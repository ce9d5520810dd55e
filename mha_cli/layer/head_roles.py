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

from mha_cli.layer.role_records import HeadRole
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

    One (example, head) at a time, in float32 with float64 sums: a long sequence's
    (b, h, q, k) weights are never copied whole."""
    b, h, q, k = attention.shape
    attention = attention.detach()
    device = attention.device
    hidden = (
        torch.zeros(b, q, k, dtype=torch.bool, device=device)
        if mask is None
        else mask.detach().expand(b, h, q, k)[:, 0]
    )  # (b, q, k): the mask is the same for every head
    tally = RoleTally(spec, h)
    query_pos = torch.arange(q, device=device) + spec.query_offset  # (q,)
    key_pos = torch.arange(k, device=device)  # (k,)
    for example in range(b):
        rows = tally.rows(example, query_pos, hidden[example])  # (q,)
        tally.add_baseline(hidden[example], query_pos, key_pos, rows)
        for head in range(h):
            tally.add(head, attention[example, head].float(), query_pos, key_pos, rows)
    return tally.roles()


class RoleTally:
    """Sums of each head's figures over the rows that count, fed one (example, head) and block
    of queries at a time (the full pass, or the long-context stream), then averaged.

    A block's weights may cover a span of the keys only: keys left out must be masked for its
    rows (their weights exactly 0), as `streamed.key_span` guarantees."""

    NAMES = ("sink", "previous", "itself", "distance")

    def __init__(self, spec: FinalSpec, heads: int) -> None:
        self.spec, self.heads = spec, heads
        self.aligned = same_sequence(spec)
        # (heads + 1, 4): sum of figure x row weight, and of row weights; the last is even
        # attention over the same visible keys (the baseline a share must rise above)
        self.sums = torch.zeros(heads + 1, 4, dtype=torch.float64)
        self.counts = torch.zeros(heads + 1, 4, dtype=torch.float64)
        self.any_row = False

    def rows(
        self,
        example: int,
        query_pos: torch.Tensor,  # (r,) positions of the block's queries
        hidden: torch.Tensor,  # (r, n) True where masked; keys not given are masked too
    ) -> torch.Tensor:
        """(r,) float64: 1 for a row that counts: it sees a key and, in one sequence, its query
        is within its example's valid length (a padded query is no token)."""
        rows = ~hidden.all(-1)
        lens = self.spec.valid_lens
        if self.aligned and lens is not None and not isinstance(lens[0], tuple):
            rows = rows & (query_pos < int(lens[example]))  # type: ignore[arg-type]
        self.any_row = self.any_row or bool(rows.any())
        return rows.double()

    def add(
        self,
        head: int,
        weights: torch.Tensor,  # (r, n) float: one head's weights of r queries over n keys
        query_pos: torch.Tensor,  # (r,)
        key_pos: torch.Tensor,  # (n,) consecutive positions
        rows: torch.Tensor,  # (r,) float64 from `rows`
    ) -> None:
        figures = self._figures(weights, query_pos, key_pos)
        has_previous = (query_pos >= 1).to(rows)  # query 0 has no previous key: left out
        weights_of = {"previous": rows * has_previous}
        for i, name in enumerate(self.NAMES):
            figure = figures[name]
            if figure is None:
                continue
            weight = weights_of.get(name, rows)
            self.sums[head, i] += float((figure.double() * weight).sum())
            self.counts[head, i] += float(weight.sum())

    def add_baseline(
        self,
        hidden: torch.Tensor,  # (r, n)
        query_pos: torch.Tensor,
        key_pos: torch.Tensor,
        rows: torch.Tensor,
    ) -> None:
        """Even attention over each row's visible keys (uniform over all keys when none is)."""
        visible = (~hidden).float()
        counts = visible.sum(-1, keepdim=True)
        even = torch.where(counts > 0, visible / counts.clamp(min=1), 1.0 / hidden.shape[-1])
        self.add(self.heads, even, query_pos, key_pos, rows)

    def _figures(
        self, weights: torch.Tensor, query_pos: torch.Tensor, key_pos: torch.Tensor
    ) -> dict[str, torch.Tensor | None]:
        """Per row: the weight on key 0, on the previous and own position, and the mean
        distance |query position - key position|."""
        r, n = weights.shape
        first = int(key_pos[0])
        zeros = torch.zeros(r, dtype=weights.dtype, device=weights.device)
        figures: dict[str, torch.Tensor | None] = dict.fromkeys(self.NAMES)
        figures["sink"] = weights[:, 0] if first == 0 else zeros
        if not self.aligned:
            return figures

        def at(position: torch.Tensor) -> torch.Tensor:  # (r,) the weight on that key, or 0
            index = position - first
            inside = (index >= 0) & (index < n)
            picked = weights.gather(1, index.clamp(0, n - 1)[:, None])[:, 0]
            return torch.where(inside, picked, zeros)

        figures["itself"] = at(query_pos)
        figures["previous"] = at(query_pos - 1)
        if weights.dtype in (torch.float32, torch.float64):  # positions are exact in both
            # one (r, n) tensor, made in place: the same numbers as the int64 way, 3 passes less
            distances = torch.sub(
                query_pos.to(weights.dtype)[:, None], key_pos.to(weights.dtype)[None, :]
            ).abs_()
        else:
            distances = (query_pos[:, None] - key_pos[None, :]).abs().to(weights.dtype)
        figures["distance"] = distances.mul_(weights).sum(-1, dtype=torch.float64)  # (r,)
        return figures

    def roles(self) -> tuple[list[HeadRole], str | None]:
        means = torch.where(self.counts > 0, self.sums / self.counts.clamp(min=1), torch.nan)

        def shares(row: int) -> dict[str, float | None]:
            if not self.any_row or self.counts[row, 0] == 0:
                return dict.fromkeys(self.NAMES)
            return {
                name: None if (not self.aligned and name != "sink") or means[row, i].isnan()
                else float(means[row, i])
                for i, name in enumerate(self.NAMES)
            }  # fmt: skip

        baseline = shares(self.heads)
        roles = [_role(head, shares(head), baseline) for head in range(self.heads)]
        return roles, _note(self.spec, self.aligned, self.any_row)


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


def _note(spec: FinalSpec, aligned: bool, any_row: bool) -> str | None:
    if not any_row:
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
