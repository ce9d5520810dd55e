"""What each head does on a text, in words: where its attention goes on average.

For each head, over every real (unpadded) query after the first of every text: the share of
attention on the first token (an attention sink), on the previous token, on the token itself;
and over every real query, the mean distance back (or forward) to the keys it attends, weighted
by attention. A share above `CLEAR` names the head's pattern ("previous token 0.91").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mha_cli.text.records import HeadPattern

if TYPE_CHECKING:
    import torch

CLEAR = 0.5  # a share above this names what the head does


def head_patterns(attention: torch.Tensor, valid_lens: list[int]) -> list[HeadPattern]:
    """`attention` (b, h, n, n); `valid_lens` the real tokens of each example."""
    import torch

    weights = attention.detach().double().cpu()
    b, h, n, _ = weights.shape
    rows = torch.zeros(b, n, dtype=torch.bool)
    for example, length in enumerate(valid_lens):
        rows[example, :length] = True
    index = torch.arange(n)
    first = weights[..., 0]  # (b, h, n)
    itself = weights.diagonal(dim1=-2, dim2=-1)  # (b, h, n)
    previous = torch.zeros_like(first)
    previous[..., 1:] = weights[..., index[1:], index[:-1]]
    distance = (weights * (index[:, None] - index[None, :]).abs().double()).sum(-1)  # (b, h, n)
    later = rows.clone()
    # The first query has no previous token, and under a causal mask it sees only itself (the
    # first token): the shares are taken over the queries after it, or a short text would call
    # every head a sink.
    later[:, 0] = False
    patterns = []
    for head in range(h):

        def mean(values: torch.Tensor, where: torch.Tensor, head: int = head) -> float:
            picked = values[:, head][where]
            return float(picked.mean()) if picked.numel() else 0.0

        shares = {
            "first token": mean(first, later),
            "previous token": mean(previous, later),
            "itself": mean(itself, later),
        }
        name, share = max(shares.items(), key=lambda item: item[1])
        patterns.append(
            HeadPattern(
                head=head,
                first=shares["first token"],
                previous=shares["previous token"],
                itself=shares["itself"],
                distance=mean(distance, rows),
                pattern=f"{name} {share:.2f}" if share > CLEAR else "spread",
            )
        )
    return patterns
