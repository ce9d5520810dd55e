"""The per-head RMSNorm that Qwen3 applies to queries and keys before the rotation."""

from __future__ import annotations

import torch
from torch import nn


class HeadRMSNorm(nn.Module):
    """`x * rsqrt(mean(x^2) + eps) * weight` over a head's features, computed in float32
    and cast back, as transformers' Qwen3RMSNorm does."""

    def __init__(self, head_dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(head_dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, h, n, d)
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)
