"""T5's relative position bias: each head adds a learned number to the score of query i and
key j, looked up by the bucket of the distance j - i (`T5Attention.compute_bias`).

The table, (num_buckets, heads), is layer 0's `relative_attention_bias` in T5 and mT5: every
later layer adds the same bias. Distances below half the buckets get a bucket each; longer ones
share logarithmically wider buckets up to `max_distance`, beyond which all share the last one.
Bidirectional (the encoder): half the buckets for keys after the query. Unidirectional (the
decoder): keys after the query all fall in bucket 0, which the causal mask hides anyway.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def relative_position_bucket(
    relative_position: torch.Tensor,  # (...) long: key position - query position
    bidirectional: bool,
    num_buckets: int,
    max_distance: int,
) -> torch.Tensor:
    """`T5Attention._relative_position_bucket`, operation for operation: (...) long buckets
    in [0, num_buckets)."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    # now relative_position >= 0: half the buckets are exact, half logarithmic
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    if_large = max_exact + (
        torch.log(relative_position.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    if_large = torch.min(if_large, torch.full_like(if_large, num_buckets - 1))
    return buckets + torch.where(is_small, relative_position, if_large)


class RelativeBias(nn.Module):
    """The bias table (num_buckets, heads), T5's `nn.Embedding` weight as stored."""

    def __init__(self, num_buckets: int, num_heads: int, max_distance: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_buckets, num_heads))
        self.num_buckets, self.max_distance = num_buckets, max_distance

    def forward(
        self,
        query_pos: torch.Tensor,  # (q,) positions of the queries
        key_pos: torch.Tensor,  # (k,) positions of the keys
        bidirectional: bool,
    ) -> torch.Tensor:
        """(heads, q, k): the bias of every head for every query and key."""
        relative = key_pos.long()[None, :] - query_pos.long()[:, None]  # (q, k)
        bucket = relative_position_bucket(
            relative, bidirectional, self.num_buckets, self.max_distance
        )  # (q, k)
        return self.weight[bucket].permute(2, 0, 1)  # (h, q, k)

    def head(
        self, query_pos: torch.Tensor, key_pos: torch.Tensor, bidirectional: bool, head: int
    ) -> torch.Tensor:
        """(q, k): head `head`'s bias alone (the streamed path, one head at a time)."""
        relative = key_pos.long()[None, :] - query_pos.long()[:, None]  # (q, k)
        bucket = relative_position_bucket(
            relative, bidirectional, self.num_buckets, self.max_distance
        )
        return self.weight[:, head][bucket]  # (q, k)
