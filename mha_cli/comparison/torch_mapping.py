"""d2l's weights and masks handed to `torch.nn.MultiheadAttention`, and what cannot be handed.

`nn.MultiheadAttention(embed_dim, num_heads, bias, kdim, vdim, batch_first=True)` is d2l's
layer with `embed_dim` = num_hiddens = query_size: its packed `in_proj_weight` (3E, E) is W_q,
W_k and W_v stacked by rows when key and value sizes equal E, and `q_proj_weight`,
`k_proj_weight`, `v_proj_weight` otherwise; `out_proj` is W_o. Heads are consecutive blocks of
E / num_heads rows, as d2l's `transpose_qkv` splits them. Its boolean masks mean True = ignore.
Shapes: b batch, q queries, k key-value pairs, h heads, g key-value heads, d head dim, E embed_dim.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from mha_cli.layer.masking import positional_mask
from mha_cli.spec.spec import FinalSpec

Tensors = Mapping[str, torch.Tensor]
# d2l's state dict (W_q.weight, ...) and the spec -> nn.MultiheadAttention's state dict. A test
# swaps in a wrong one to prove that `mha compare` notices.
WeightMapping = Callable[[Tensors, FinalSpec], dict[str, torch.Tensor]]


def unmapped_reasons(spec: FinalSpec) -> list[str]:
    """Why d2l's layer, as `spec` builds it, has no nn.MultiheadAttention twin (empty: it has)."""
    reasons = []
    if spec.score == "additive":
        return ["additive scoring: nn.MultiheadAttention only computes scaled dot products"]
    if spec.query_size != spec.hiddens:
        reasons.append(
            f"query_size {spec.query_size} != num_hiddens {spec.hiddens}: torch has no qdim "
            "(embed_dim is both the query's size and W_q's outputs), only kdim and vdim"
        )
    if spec.value_mode == "full":
        reasons.append(
            "values kept whole (--value-mode full): nn.MultiheadAttention splits values across "
            "heads, as d2l does"
        )
    if spec.head_dim * spec.heads != spec.hiddens:
        reasons.append(
            f"head dim {spec.head_dim} x {spec.heads} heads != num_hiddens {spec.hiddens}: "
            "torch's head dim is always embed_dim / num_heads"
        )
    if spec.rope != "none":
        reasons.append(
            "rotary embedding: nn.MultiheadAttention has no step between the projections and "
            "the scores where queries and keys could be rotated"
        )
    if spec.qk_norm:
        reasons.append("qk-norm: nn.MultiheadAttention has no per-head norm of queries and keys")
    if spec.clip_qkv is not None:
        reasons.append("clip_qkv: nn.MultiheadAttention cannot clamp its projections")
    if spec.alibi:
        reasons.append("ALiBi: nn.MultiheadAttention adds no per-head position bias")
    if spec.relative_buckets is not None:
        reasons.append(
            "relative position bias: nn.MultiheadAttention adds no learned per-head position bias"
        )
    if spec.softcap is not None:
        reasons.append("soft-capping: nn.MultiheadAttention has no step between scores and softmax")
    if spec.score_scale is not None:
        reasons.append(
            f"score scale {spec.score_scale:g}: nn.MultiheadAttention always scales by "
            "1/sqrt(head dim)"
        )
    return reasons


def packed(spec: FinalSpec) -> bool:
    """torch packs W_q, W_k, W_v into in_proj_weight exactly when kdim = vdim = embed_dim."""
    return spec.key_size == spec.hiddens and spec.value_size == spec.hiddens


def uses_bias(spec: FinalSpec) -> bool:
    """torch's one `bias` flag covers in_proj_bias and out_proj.bias together."""
    return spec.bias or spec.out_bias


def torch_mha_state(state: Tensors, spec: FinalSpec) -> dict[str, torch.Tensor]:
    """nn.MultiheadAttention's state dict holding d2l's weights `state` (d2l names)."""
    group = spec.heads // spec.kv_heads

    def widen(t: torch.Tensor) -> torch.Tensor:
        # (g*d, ...) -> (h*d, ...): grouped-query keys and values become one head per query
        # head, key-value head j repeated for query heads j*r .. j*r + r-1 (r = h / g).
        blocks = t.reshape(spec.kv_heads, -1, *t.shape[1:])  # (g, d, ...)
        return blocks.repeat_interleave(group, dim=0).reshape(-1, *t.shape[1:])  # (h*d, ...)

    weights = [state["W_q.weight"], widen(state["W_k.weight"]), widen(state["W_v.weight"])]
    mapped: dict[str, torch.Tensor] = {}
    if packed(spec):
        mapped["in_proj_weight"] = torch.cat(weights)  # (3E, E)
    else:
        for role, weight in zip("qkv", weights, strict=True):
            mapped[f"{role}_proj_weight"] = weight  # (E, query/key/value size)
    mapped["out_proj.weight"] = state["W_o.weight"]  # (E, E)
    if uses_bias(spec):
        # A bias d2l's layer lacks is a bias of zeros: Qwen2-style q/k/v biases without one on
        # W_o (or the reverse) map exactly.
        biases = [_bias_or_zeros(state, role) for role in "qkvo"]  # (E,), (g*d,), (g*d,), (E,)
        mapped["in_proj_bias"] = torch.cat([biases[0], widen(biases[1]), widen(biases[2])])
        mapped["out_proj.bias"] = biases[3]
    return mapped


def _bias_or_zeros(state: Tensors, role: str) -> torch.Tensor:
    weight = state[f"W_{role}.weight"]  # (out_features, in_features)
    bias = state.get(f"W_{role}.bias")
    return weight.new_zeros(weight.shape[0]) if bias is None else bias


def build_torch_mha(
    spec: FinalSpec,
    mapped: Tensors,
    device: torch.device,
    dtype: torch.dtype,
) -> nn.MultiheadAttention:
    """The module, built on meta (its own init would draw from the global generator) and
    given `mapped` as its parameters; eval mode, dropout 0. (`to_empty` would import sympy
    through torch's reference `empty_like`: 0.4 s.)"""
    module = nn.MultiheadAttention(
        spec.hiddens,
        spec.heads,
        dropout=0.0,
        bias=uses_bias(spec),
        kdim=spec.key_size,
        vdim=spec.value_size,
        batch_first=True,
        device="meta",
        dtype=dtype,
    )
    ready = {name: t.to(device=device, dtype=dtype) for name, t in mapped.items()}
    module.load_state_dict(ready, strict=True, assign=True)
    return module.eval()


def torch_mha_masks(
    spec: FinalSpec, valid_lens: torch.Tensor | None, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
    """(key_padding_mask, attn_mask, how they were made): d2l's masks in torch's convention,
    True = ignore."""
    b, h, q, k = spec.batch, spec.heads, spec.queries, spec.kv
    if valid_lens is not None and valid_lens.dim() == 1 and not spec.causal:
        padding = torch.arange(k, device=device)[None, :] >= valid_lens[:, None]  # (b, k)
        return padding, None, "key_padding_mask (b, k) = key position >= valid_len"
    mask = positional_mask(valid_lens, q, k, spec.causal, device, spec.window)  # (b|1, q, k)
    if mask is None:
        return None, None, "no mask"
    if mask.shape[0] == 1:
        return None, mask[0], "attn_mask (q, k): True at the keys each query may not see"
    per_head = mask.repeat_interleave(h, dim=0)  # ((b h), q, k): batch-major, as torch reads it
    why = "per-query valid_lens" if valid_lens is not None and valid_lens.dim() == 2 else "masks"
    return (
        None,
        per_head,
        f"attn_mask (b*h, q, k) = ({b * h}, {q}, {k}), {why} repeated per head, batch-major",
    )


def projections(
    module: nn.MultiheadAttention,
    queries: torch.Tensor,  # (b, q, E)
    keys: torch.Tensor,  # (b, k, kdim)
    values: torch.Tensor,  # (b, k, vdim)
) -> dict[str, torch.Tensor]:
    """Queries, keys and values as the module's own parameters project them, per head
    (b, h, n, d): the rows of in_proj_weight (or q/k/v_proj_weight) and in_proj_bias that
    torch's forward uses, so a wrong mapping shows at the projection it broke."""
    heads = module.num_heads
    if module.in_proj_weight is not None:
        weights = module.in_proj_weight.chunk(3)  # 3 x (E, E), as torch's forward splits it
    else:
        weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
    bias = module.in_proj_bias
    biases = (None, None, None) if bias is None else bias.chunk(3)  # 3 x (E,)
    result = {}
    inputs = (queries, keys, values)
    for name, x, w, b in zip(("W_q", "W_k", "W_v"), inputs, weights, biases, strict=True):
        y = nn.functional.linear(x, w, b)  # (b, n, E)
        result[name] = y.reshape(y.shape[0], y.shape[1], heads, -1).transpose(1, 2)  # (b,h,n,d)
    return result


def fast_path_blockers(spec: FinalSpec) -> list[str]:
    """Why torch's fast path (`torch._native_multi_head_attention`) is not the path compared.

    It needs, in eval mode without grad: self-attention (query, key and value the same tensor),
    packed weights with biases, an even number of heads, batch_first. d2l's call always hands
    three tensors, so the standard path (F.multi_head_attention_forward) is the one compared."""
    blockers = ["queries, keys and values are three tensors, not one"]
    if not packed(spec):
        blockers.append("no packed in_proj_weight")
    if not uses_bias(spec):
        blockers.append("no in_proj_bias")
    if spec.heads % 2:
        blockers.append(f"{spec.heads} heads, an odd number")
    return blockers
