"""Rotary position embedding, as the Hugging Face decoders apply it to queries and keys.

Frequencies `inv_freq[j] = theta^(-2j/rd)` for j < rd/2 (rd: the rotated features of a head),
optionally rescaled (`linear`, `llama3`). The angles are computed in float32, as transformers
does, and the rotation turns pairs of features: (j, j + rd/2) for "half" (Llama, Mistral, Qwen,
GPT-NeoX) or (2j, 2j+1) for "interleaved" (GPT-J). Features beyond rd pass unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def inverse_frequencies(
    rotary_dim: int, theta: float, scaling: Mapping[str, Any] | None = None
) -> torch.Tensor:
    """(rd/2,) float32 angular frequencies, scaled as the config's rope scaling says."""
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim
    inv_freq = 1.0 / (theta**exponents)
    kind = None if scaling is None else scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        return inv_freq / float(scaling["factor"])  # type: ignore[index]
    if kind == "llama3":
        return _llama3(inv_freq, scaling)  # type: ignore[arg-type]
    return inv_freq


def _llama3(inv_freq: torch.Tensor, scaling: Mapping[str, Any]) -> torch.Tensor:
    """Llama 3.1's scaling: long wavelengths slowed by `factor`, short ones kept, a smooth
    blend between (transformers' `_compute_llama3_parameters`)."""
    factor = float(scaling["factor"])
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    old_context = float(scaling["original_max_position_embeddings"])
    low_wavelen, high_wavelen = old_context / low, old_context / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


def apply_rope(
    x: torch.Tensor,  # (b, h, n, d)
    positions: torch.Tensor,  # (n,) integer positions
    inv_freq: torch.Tensor,  # (rd/2,) float32
    pairing: str,  # "half" or "interleaved"
) -> torch.Tensor:
    """Rotate the first rd features of every head of `x` by its position's angles."""
    rotary_dim = 2 * inv_freq.shape[0]
    angles = positions.to(torch.float32)[:, None] * inv_freq.to(x.device)[None, :]  # (n, rd/2)
    if pairing == "half":
        angles = torch.cat((angles, angles), dim=-1)  # (n, rd): pair j with j + rd/2
    else:
        angles = angles.repeat_interleave(2, dim=-1)  # (n, rd): pair 2j with 2j+1
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    rotated, passed = x[..., :rotary_dim], x[..., rotary_dim:]
    turned = _rotate_half(rotated) if pairing == "half" else _rotate_pairs(rotated)
    out = rotated * cos + turned * sin  # (b, h, n, rd)
    return torch.cat((out, passed), dim=-1) if passed.shape[-1] else out


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def _rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    even, odd = x[..., ::2], x[..., 1::2]
    return torch.stack((-odd, even), dim=-1).flatten(-2)
