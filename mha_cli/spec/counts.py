"""Figures that follow from the specification alone: parameter counts.

"The parameters do not depend on the number of heads" (when the head dim is num_hiddens /
num_heads) is a fact of the sizes, so it is computed here, with no layer built; a test checks
these counts against the torch layer's own.
"""

from __future__ import annotations

from dataclasses import replace

from mha_cli.spec.spec import AttentionSpec


def parameter_count(spec: AttentionSpec) -> int:
    """Parameters of the layer `spec` describes: weights, biases and per-head norms."""
    final = spec.final()  # every size written out
    hiddens = spec.hiddens
    if spec.score == "additive":  # W_q, W_k to num_hiddens, then w_v to one score
        weights = hiddens * (final.query_size + final.key_size) + hiddens
        return weights + (2 * hiddens + 1 if spec.bias else 0)
    d, h, g = final.head_dim, spec.heads, final.kv_heads
    full = spec.value_mode == "full"
    q_out, kv_out = h * d, g * d
    v_out = hiddens if full else kv_out
    concat = h * hiddens if full else q_out  # W_o's input: every head's output, side by side
    weights = (
        q_out * final.query_size
        + kv_out * final.key_size
        + v_out * final.value_size
        + hiddens * concat
    )
    biases = (q_out + v_out if spec.bias else 0) + (hiddens if final.out_bias else 0)
    biases += kv_out if final.key_bias else 0
    norms = 2 * d if spec.qk_norm else 0
    if spec.qk_norm and spec.qk_norm_whole:  # OLMo 2: one weight per feature of W_q and W_k
        norms = q_out + kv_out
    if spec.qk_norm and spec.qk_norm_layer:  # StableLM, Cohere: one weight per head and feature
        norms = q_out + kv_out
    table = spec.relative_buckets * h if spec.relative_buckets is not None else 0  # T5
    return weights + biases + norms + table


def parameters_depend_on_heads(spec: AttentionSpec) -> bool:
    """Would the same layer with one head have another parameter count?"""
    if spec.score == "additive":
        return False
    # head_dim follows the heads unless someone (an option, a file) fixed it
    head_dim = spec.head_dim if "head_dim" in spec.explicit else None
    one_head = replace(spec, heads=1, kv_heads=None, head_dim=head_dim)
    return parameter_count(spec) != parameter_count(one_head)
