"""Independent computations of attention, written without any of mha's code."""

from __future__ import annotations

import math

import torch


def einsum_attention(
    queries: torch.Tensor,  # (b, q, query_size)
    keys: torch.Tensor,  # (b, k, key_size)
    values: torch.Tensor,  # (b, k, value_size)
    weights: dict[str, torch.Tensor],  # d2l names: W_q.weight, W_q.bias, ...
    heads: int,
    kv_heads: int,
    valid_lens: torch.Tensor | None,  # (b,) or (b, q)
    causal: bool,
    full_values: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention per head with einsum: output (b, q, H) and weights (b, h, q, k)."""

    def project(x: torch.Tensor, name: str) -> torch.Tensor:
        y = torch.einsum("bni,oi->bno", x, weights[f"{name}.weight"])
        bias = weights.get(f"{name}.bias")
        return y if bias is None else y + bias

    b, nq, _ = queries.shape
    nk = keys.shape[1]
    hiddens = weights["W_q.weight"].shape[0]
    d = hiddens // heads
    kv_of_head = torch.arange(heads) // (heads // kv_heads)  # which key-value head each head reads
    q = project(queries, "W_q").reshape(b, nq, heads, d)
    k = project(keys, "W_k").reshape(b, nk, kv_heads, d)[:, :, kv_of_head]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
    masked = torch.zeros(b, 1, nq, nk, dtype=torch.bool)
    key_pos = torch.arange(nk)
    if valid_lens is not None:
        lens = valid_lens[:, None].expand(b, nq) if valid_lens.dim() == 1 else valid_lens
        masked = masked | (key_pos[None, None, None, :] >= lens[:, None, :, None])
    if causal:  # queries are the last nq positions of the nk keys (decoding with a cache)
        query_pos = torch.arange(nq) + max(0, nk - nq)
        masked = masked | (key_pos[None, :] > query_pos[:, None])
    attention = torch.where(masked, torch.tensor(-1e6), scores).softmax(dim=-1)
    if full_values:
        v = project(values, "W_v")  # (b, k, H): every head reads all features
        mixed = torch.einsum("bhqk,bkf->bqhf", attention, v).reshape(b, nq, heads * hiddens)
    else:
        v = project(values, "W_v").reshape(b, nk, kv_heads, d)[:, :, kv_of_head]
        mixed = torch.einsum("bhqk,bkhd->bqhd", attention, v).reshape(b, nq, hiddens)
    return project(mixed, "W_o"), attention


def additive_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    weights: dict[str, torch.Tensor],
    valid_lens: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive scoring by loops over queries and keys: output (b, q, v), weights (b, q, k)."""
    b, nq, _ = queries.shape
    nk = keys.shape[1]
    q = queries @ weights["W_q.weight"].T  # (b, q, H)
    k = keys @ weights["W_k.weight"].T  # (b, k, H)
    w_v = weights["w_v.weight"][0]  # (H,)
    scores = torch.empty(b, nq, nk)
    for i in range(nq):
        for j in range(nk):
            scores[:, i, j] = torch.tanh(q[:, i] + k[:, j]) @ w_v
    if valid_lens is not None:
        lens = valid_lens[:, None].expand(b, nq) if valid_lens.dim() == 1 else valid_lens
        scores = torch.where(
            torch.arange(nk)[None, None, :] >= lens[:, :, None], torch.tensor(-1e6), scores
        )
    attention = scores.softmax(dim=-1)
    return attention @ values, attention
