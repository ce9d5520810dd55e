"""The differences `mha compare` explains rather than hides, one line each: what could not be
mapped and what is compared instead, the three masking conventions side by side, dropout,
biases, torch's fast path. Text only, from the spec and from what the runs did."""

from __future__ import annotations

from mha_cli.layer.masking import MASK_VALUE
from mha_cli.spec.spec import FinalSpec

FLOAT16_LOWEST = -65504.0  # float16 cannot hold d2l's -1e6


def mask_fill(spec: FinalSpec) -> float:
    return FLOAT16_LOWEST if spec.dtype == "float16" else MASK_VALUE


def not_mapped(spec: FinalSpec, reasons: list[str]) -> list[str]:
    """nn.MultiheadAttention's reasons, and what is compared instead."""
    if spec.score == "additive":
        return [
            *reasons,
            "scaled_dot_product_attention computes scaled dot products too; nothing in torch "
            "computes d2l's additive scores, so d2l is compared with its own float64 run only",
        ]
    if not reasons:
        return []
    extra = "".join(
        part
        for part, present in ((", rotated", spec.rope != "none"), (", normed", spec.qk_norm))
        if present
    )
    return [
        *(f"nn.MultiheadAttention: {reason}" for reason in reasons),
        f"compared instead: scaled_dot_product_attention on d2l's own projected{extra} heads; "
        "it takes any head dim, value width and number of key-value heads",
    ]


def masks(spec: FinalSpec, torch_mask: str | None) -> list[str]:
    """The conventions side by side; `torch_mask` is None when nn.MultiheadAttention did not run."""
    lines = [
        f"d2l: masked scores are filled with {mask_fill(spec):g}, so a row with no valid key "
        "is uniform (1/k on every key, padding included)"
    ]
    if spec.score == "additive":
        return lines
    here = "" if torch_mask is None else f"; here {torch_mask}"
    return [
        *lines,
        f"nn.MultiheadAttention: True = ignore{here}; masked scores become -inf, so a row with "
        "no valid key is NaN with need_weights=True, 0 with need_weights=False (which goes "
        "through scaled_dot_product_attention)",
        "scaled_dot_product_attention: True = attend, the opposite; given as (b, 1, q, k) = not "
        "masked; a row with no valid key gets zero weight",
    ]


def other_differences(
    spec: FinalSpec, fast_path_blockers: list[str] | None, gqa_native: bool
) -> list[str]:
    """`fast_path_blockers` is None when nn.MultiheadAttention did not run."""
    lines = []
    if fast_path_blockers is not None:
        lines += [
            "dropout: d2l records the attention weights before dropout, nn.MultiheadAttention "
            f"returns them after; the same here (eval mode, dropout {spec.dropout:g})",
            "bias: nn.MultiheadAttention defaults to bias=True, d2l to bias=False; mapped with "
            + _bias(spec),
            "torch's fast path (torch._native_multi_head_attention, eval mode without grad) is "
            "not the path compared: " + "; ".join(fast_path_blockers),
        ]
    if spec.score == "dot" and spec.kv_heads != spec.heads:
        lines.append(_grouped(spec, mapped=fast_path_blockers is not None, native=gqa_native))
    return lines


def _bias(spec: FinalSpec) -> str:
    if not (spec.bias or spec.out_bias):
        return "bias=False"
    both = spec.bias and spec.out_bias
    return "bias=True" + ("" if both else ", the biases d2l's layer lacks as zeros")


def _grouped(spec: FinalSpec, *, mapped: bool, native: bool) -> str:
    g, group = spec.kv_heads, spec.heads // spec.kv_heads
    sdpa = f"SDPA gets the {g} key-value head{'s' if g > 1 else ''} " + (
        "with enable_gqa=True" if native else "repeated (enable_gqa needs torch >= 2.5)"
    )
    if not mapped:
        return f"grouped-query attention: {sdpa}"
    which = "the key-value head has its" if g == 1 else f"each of the {g} key-value heads has its"
    return (
        f"grouped-query attention: nn.MultiheadAttention has none, so {which} rows of W_k and "
        f"W_v repeated for its {group} query heads (the same attention); {sdpa}"
    )
