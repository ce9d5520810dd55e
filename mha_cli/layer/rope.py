"""Rotary position embedding (RoPE), computed exactly as `transformers` 5 computes it.

Two pairings of a head's features: "half" rotates feature j with feature j + rd/2 (Llama,
Mistral, Qwen, GPT-NeoX: `rotate_half`), "interleaved" rotates 2j with 2j + 1 (GPT-J:
`rotate_every_two`). Only the first `rotary_dim` features of each head turn; the rest pass
unchanged (GPT-NeoX's `rotary_pct`, GPT-J's `rotary_dim`).

Dtypes follow transformers to the bit: the inverse frequencies and the angles
`position * inv_freq` are float32 whatever the layer's dtype, their cos and sin are then cast to
the dtype of the queries and keys, and the rotation itself runs in that dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

PAIRINGS = ("half", "interleaved")


def inverse_frequencies(
    rotary_dim: int,
    theta: float,
    scaling: Mapping[str, Any] | None = None,
    positions: int | None = None,
) -> torch.Tensor:
    """`theta^(-2j/rd)` for j < rd/2, float32, (rotary_dim // 2,); `linear` or `llama3` scaled.

    `scaling` is None or {"rope_type": "linear", "factor": f} or {"rope_type": "llama3",
    "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}, as
    `hf_config` gives it. `positions` is how many positions the run has: longrope's factors
    are its long ones beyond its original context, its short ones up to it.
    """
    # As _compute_default_rope_parameters: int64 arange, then float32, raised in float32.
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.int64).to(torch.float32) / rotary_dim
    inv_freq = 1.0 / (theta**exponents)  # (rd/2,)
    if scaling is None or scaling["rope_type"] == "default":
        return inv_freq
    kind = scaling["rope_type"]
    if kind == "linear":  # scaling positions by 1/factor is scaling the frequencies
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        return _llama3(inv_freq, scaling)
    if kind == "dynamic":  # the default frequencies up to its context (run.py refuses beyond)
        return inv_freq
    if kind == "yarn":
        return _yarn(rotary_dim, theta, scaling)
    if kind == "longrope":
        return _longrope(rotary_dim, theta, scaling, positions)
    raise ValueError(f"rope scaling {kind!r} is not implemented")  # hf_config refuses it first


def _llama3(inv_freq: torch.Tensor, scaling: Mapping[str, Any]) -> torch.Tensor:
    """_compute_llama3_parameters, step for step (the same operations give the same bits)."""
    factor = scaling["factor"]
    low_freq_factor = scaling["low_freq_factor"]
    high_freq_factor = scaling["high_freq_factor"]
    old_context_len = scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor

    wavelen = 2 * math.pi / inv_freq
    # Long wavelengths (low frequencies) are divided by factor, short ones kept ...
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    # ... and those between are interpolated smoothly.
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def _longrope(
    dim: int, base: float, scaling: Mapping[str, Any], positions: int | None
) -> torch.Tensor:
    """_compute_longrope_parameters' frequencies: the default ones, each divided by its factor,
    the long factors when the sequence (max position + 1) is beyond the original context, as
    transformers' longrope_frequency_update picks them for every position at once."""
    long = positions is not None and positions > scaling["original_max_position_embeddings"]
    factors = scaling["long_factor" if long else "short_factor"]
    if len(factors) != dim // 2:
        raise ValueError(f"longrope needs {dim // 2} factors, one per frequency")  # checked first
    ext_factors = torch.tensor(factors, dtype=torch.float32)
    inv_freq_shape = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    return 1.0 / (ext_factors * base**inv_freq_shape)


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    """yarn_get_mscale: `0.1 * mscale * log(scale) + 1` (1 for scale <= 1)."""
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def attention_factor(scaling: Mapping[str, Any] | None) -> float:
    """The factor YaRN and LongRoPE multiply cos and sin by (1 for every other scaling), as
    _compute_yarn_parameters and _compute_longrope_parameters infer it."""
    if scaling is None or scaling.get("rope_type") not in ("yarn", "longrope"):
        return 1.0
    if scaling["rope_type"] == "longrope":
        if scaling.get("attention_factor") is not None:
            return float(scaling["attention_factor"])
        factor, context = scaling["factor"], scaling["original_max_position_embeddings"]
        return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(context))
    if scaling.get("attention_factor") is not None:
        return float(scaling["attention_factor"])
    factor, mscale, all_dim = (
        scaling["factor"],
        scaling.get("mscale"),
        scaling.get("mscale_all_dim"),
    )
    if mscale and all_dim:
        return float(_yarn_mscale(factor, mscale) / _yarn_mscale(factor, all_dim))
    return _yarn_mscale(factor)


def _yarn(dim: int, base: float, scaling: Mapping[str, Any]) -> torch.Tensor:
    """_compute_yarn_parameters' frequencies, step for step: interpolated (divided by factor)
    below the correction range, extrapolated (kept) above it, blended linearly between."""
    factor = scaling["factor"]
    context = scaling["original_max_position_embeddings"]
    beta_fast = scaling.get("beta_fast") or 32
    beta_slow = scaling.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(context / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if scaling.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # as transformers: no division by zero
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2).to(dtype=torch.float) / dim)
    extrapolation = 1.0 / pos_freqs
    interpolation = 1.0 / (factor * pos_freqs)
    extrapolation_factor = 1 - ramp
    return interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor


def rope_angles(positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """`position * inv_freq` in float32: (n, rd/2) for positions (n,), (b, n, rd/2) for (b, n)."""
    return positions[..., None].float() * inv_freq.to(device=positions.device, dtype=torch.float32)


def apply_rope(
    x: torch.Tensor,  # (b, h, n, d): queries or keys after the head split
    positions: torch.Tensor,  # (n,) or (b, n): the absolute position of each row
    inv_freq: torch.Tensor,  # (rotary_dim // 2,)
    rotary_dim: int,
    pairing: str,
    factor: float = 1.0,  # YaRN's attention factor on cos and sin
) -> torch.Tensor:
    """`x` with the first `rotary_dim` features of every head rotated by its position's angles."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing {pairing!r}: expected one of {PAIRINGS}")
    angles = rope_angles(positions, inv_freq)  # (n, rd/2) or (b, n, rd/2), float32
    if angles.dim() == 3:
        angles = angles[:, None]  # (b, 1, n, rd/2): the same angles for every head
    if pairing == "half":
        angles = torch.cat((angles, angles), dim=-1)  # (..., n, rd): j and j + rd/2 share one
    else:
        angles = torch.repeat_interleave(angles, 2, dim=-1)  # (..., n, rd): 2j, 2j+1 share one
    cos, sin = angles.cos(), angles.sin()
    if factor != 1.0:  # YaRN: cos and sin scaled in float32, as the rotary embedding does
        cos, sin = cos * factor, sin * factor
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]  # (b, h, n, rd), (b, h, n, d - rd)
    turned = _rotate_half(x_rot) if pairing == "half" else _rotate_every_two(x_rot)
    rotated = x_rot * cos + turned * sin  # (b, h, n, rd)
    return torch.cat((rotated, x_pass), dim=-1)  # (b, h, n, d)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) with x1, x2 the two halves of the last axis."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)."""
    pairs = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1)  # (..., rd/2, 2)
    return pairs.flatten(-2)  # (..., rd)
