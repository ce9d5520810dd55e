"""The per-head norms of queries and keys, as transformers has them: Qwen3's RMSNorm (`q_norm`,
`k_norm`), and the LayerNorm with one weight per head of StableLM and Cohere.

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


def layer_norm(
    x: torch.Tensor,  # (b, h, n, d): queries or keys after the head split
    weight: torch.Tensor,  # (h, d): one weight per head and feature
    eps: float,
) -> torch.Tensor:
    """`weight[h] * (x - mean) / sqrt(var + eps)` over the last axis, no bias: Cohere's
    `CohereLayerNorm` over (heads, head_dim), and StableLM's `StableLmLayerNormPerHead` (one
    bias-free nn.LayerNorm per head). Statistics in float32, the result in the input's dtype."""
    input_dtype = x.dtype
    x32 = x.to(torch.float32)
    mean = x32.mean(-1, keepdim=True)  # (b, h, n, 1)
    variance = (x32 - mean).pow(2).mean(-1, keepdim=True)  # (b, h, n, 1)
    normed = (x32 - mean) * torch.rsqrt(variance + eps)  # (b, h, n, d)
    return (weight.to(torch.float32)[:, None, :] * normed).to(input_dtype)


class HeadLayerNorm(nn.Module):
    """`layer_norm` with its (heads, head_dim) weight as a parameter."""

    def __init__(self, heads: int, head_dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(heads, head_dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, h, n, d)
        return layer_norm(x, self.weight, self.eps)
