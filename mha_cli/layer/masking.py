"""d2l's masking: padding by position (`valid_lens`) and, optionally, future keys (causal) and
keys beyond a sliding window.

The mask is positional, not top-k: a key is masked because it is padding, in the
future, or too far in the past, never because its score is low. Keys sit at positions
0..k-1; with fewer queries than keys the queries are the last positions (decoding with a cache).
"""

from __future__ import annotations

import torch
from torch import nn

# d2l's `masked_softmax` fills masked scores with -1e6, so a row with no valid key
# becomes uniform instead of NaN (torch.nn.MultiheadAttention differs there).
MASK_VALUE = -1e6


def query_positions(num_queries: int, num_keys: int, device: torch.device) -> torch.Tensor:
    """(q,) positions of the queries: the last q of the k key positions when q <= k."""
    return torch.arange(num_queries, device=device) + max(0, num_keys - num_queries)


def positional_mask(
    valid_lens: torch.Tensor | None,  # (n,) or (n, q): n is batch, or (b h) after the repeat
    num_queries: int,
    num_keys: int,
    causal: bool,
    device: torch.device,
    window: int | None = None,
) -> torch.Tensor | None:
    """True where a key position is masked: beyond its valid length, in the future (causal),
    or `window` or more positions back (sliding window: query i sees keys i-W+1..i)."""
    mask: torch.Tensor | None = None
    key_pos = torch.arange(num_keys, device=device)  # (k,)
    if valid_lens is not None:
        lens = valid_lens if valid_lens.dim() == 2 else valid_lens[:, None].expand(-1, num_queries)
        mask = key_pos[None, None, :] >= lens[:, :, None]  # (n, q, k)
    if causal:
        query_pos = query_positions(num_queries, num_keys, device)  # (q,)
        hidden = key_pos[None, :] > query_pos[:, None]  # (q, k): the future
        if window is not None:
            hidden = hidden | (key_pos[None, :] <= query_pos[:, None] - window)  # too far back
        mask = hidden[None] if mask is None else mask | hidden  # (n, q, k) or (1, q, k)
    return mask


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis with masked positions filled as d2l does."""
    if mask is None:
        return nn.functional.softmax(scores, dim=-1)
    # float16 cannot hold -1e6: use its lowest finite value, which exp() also sends to 0.
    fill = max(MASK_VALUE, torch.finfo(scores.dtype).min)
    return nn.functional.softmax(scores.masked_fill(mask, fill), dim=-1)
