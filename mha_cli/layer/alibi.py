"""ALiBi (attention with linear biases, Press et al.): each head adds `slope_h * j` to the score
of key j, as Bloom's `build_alibi_tensor` builds it (MPT and Falcon use the same slopes).

Falcon builds the same slopes but rounds them and the products to bfloat16, and adds the bias
to the mask, so that it is scaled with the scores: (q·k + slope_h * j) / sqrt(d).

A bias that grows with the key's position j differs from the paper's `-slope_h * (i - j)` by a
constant per query row, which the softmax does not see: the weights are the paper's.
"""

from __future__ import annotations

import math

import torch


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Bloom's `_get_alibi_slopes`: (num_heads,) float32, 2^(-8 (h + 1) / n) for a power of 2
    heads, the odd powers of the next power of 2's base for the rest."""
    closest = 2 ** math.floor(math.log2(num_heads))
    base = torch.full((), 2 ** (-(2 ** -(math.log2(closest) - 3))), dtype=torch.float32)
    slopes = torch.pow(base, torch.arange(1, 1 + closest, dtype=torch.int32))
    if closest != num_heads:
        extra_base = torch.full(
            (), 2 ** (-(2 ** -(math.log2(2 * closest) - 3))), dtype=torch.float32
        )
        remaining = min(closest, num_heads - closest)
        extra = torch.pow(extra_base, torch.arange(1, 1 + 2 * remaining, 2, dtype=torch.int32))
        slopes = torch.cat([slopes, extra], dim=0)
    return slopes


def alibi_values(slopes: torch.Tensor, positions: torch.Tensor, bfloat16: bool) -> torch.Tensor:
    """(h, k) float32: slope of head h times key position j. `bfloat16`: as Falcon's
    `build_alibi_tensor` makes them, slopes and products rounded to bfloat16."""
    if bfloat16:  # slopes[..., None].bfloat16() * arange_tensor (an integer tensor)
        rounded = slopes.bfloat16()[:, None] * positions.to(torch.int64)[None, :]  # bfloat16
        return rounded.to(torch.float32)
    return slopes[:, None] * positions.to(torch.float32)[None, :]


def alibi_bias(
    num_heads: int, batch: int, keys: int, device: torch.device, bfloat16: bool = False
) -> torch.Tensor:
    """((b h), 1, k): slope of head h times the key's position j, batch-major as the folded
    scores ((b h) with b outer); `bfloat16`: Falcon's rounding."""
    slopes = alibi_slopes(num_heads).to(device)  # (h,)
    positions = torch.arange(keys, device=device)  # (k,)
    bias = alibi_values(slopes, positions, bfloat16)  # (h, k)
    return bias.repeat(batch, 1)[:, None, :]  # ((b h), 1, k)
