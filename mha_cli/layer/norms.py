"""The per-head RMSNorm of queries and keys (Qwen3's `q_norm`, `k_norm`), as transformers has it.

Applied to each head's vector (the last axis, head_dim) after the head split and before the
rotary embedding. Dtypes as `Qwen3RMSNorm.forward`: the statistics in float32, the normalised
vector cast back to the input's dtype, then multiplied by the weight, so the result takes the
promoted dtype of the weight and the input (a float32 weight on bfloat16 queries gives float32).
"""

from __future__ import annotations

import torch
from torch import nn


def rms_norm(
    x: torch.Tensor,  # (..., d): e.g. (b, h, n, d) queries after the head split
    weight: torch.Tensor,  # (d,)
    eps: float,
) -> torch.Tensor:
    """`weight * x / sqrt(mean(x²) + eps)` over the last axis."""
    input_dtype = x.dtype
    x32 = x.to(torch.float32)
    variance = x32.pow(2).mean(-1, keepdim=True)  # (..., 1)
    normed = x32 * torch.rsqrt(variance + eps)  # (..., d)
    return weight * normed.to(input_dtype)


class HeadRMSNorm(nn.Module):
    """`rms_norm` with its weight as a parameter, one weight shared by every head."""

    def __init__(self, head_dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(head_dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, h, n, d)
        return rms_norm(x, self.weight, self.eps)
