"""d2l's `MultiHeadAttention` (the Chinese edition's, with separate key, query and value sizes),
recording every step of its forward pass.

Besides the chapter's layer it builds what real models add: fewer key-value heads (grouped-
query and multi-query attention), values kept whole per head (`value_mode="full"`),
a head dim other than num_hiddens / num_heads, per-head RMSNorm of queries and keys, rotary
position embedding, a sliding window, and biases on some projections only.
Shapes use the letters of `mha_cli.spec.axes`: b batch, q queries, k key-value pairs,
h heads, g key-value heads, d head dim, H num_hiddens, (b h) heads folded into the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mha_cli.layer.alibi import alibi_bias
from mha_cli.layer.masking import masked_softmax, positional_mask, query_positions
from mha_cli.layer.norms import HeadLayerNorm, HeadRMSNorm
from mha_cli.layer.recording import STAGES, Record, linear_flops
from mha_cli.layer.relative_bias import RelativeBias
from mha_cli.layer.rope import apply_rope
from mha_cli.spec import axes as ax


@dataclass(frozen=True)
class Rotary:
    """Rotary position embedding of the first `2 * len(inv_freq)` features of each head."""

    inv_freq: torch.Tensor  # (rd/2,) float32
    pairing: str  # "half" or "interleaved"
    factor: float = 1.0  # YaRN's attention factor on cos and sin


def record_inputs(
    record: Record,
    queries: torch.Tensor,  # (b, q, query_size)
    keys: torch.Tensor,  # (b, k, key_size)
    values: torch.Tensor,  # (b, k, value_size)
    valid_lens: torch.Tensor | None,  # (b,) or (b, q)
) -> None:
    """The first rows of every layer's table: what goes in, before any weight touches it."""
    record("queries", queries)
    record("keys", keys)
    record("values", values)
    if valid_lens is not None:
        record("valid_lens", valid_lens, per_query=ax.QUERIES if valid_lens.dim() == 2 else "")


def project(name: str, layer: nn.Linear, x: torch.Tensor, out: str, record: Record) -> torch.Tensor:
    """`self.W_q(queries)` and its siblings: apply one projection and record it."""
    y = layer(x)  # (b, n, out_features)
    record(name, y, module=layer, flops=linear_flops(layer, y), out=out)
    return y


def scores_size(queries: torch.Tensor, keys: torch.Tensor) -> int:
    """How many scores ((b h) x q x k) the queries and keys make."""
    return queries.shape[0] * queries.shape[1] * keys.shape[1]


class DotProductAttention(nn.Module):
    """d2l's `DotProductAttention`: scores, the mask, softmax, dropout and the weighted sum,
    each recorded. `feature` names the values' last axis (head dim, or hiddens when the values
    are kept whole)."""

    def __init__(
        self,
        dropout: float,
        causal: bool,
        window: int | None,
        feature: str = ax.HEAD_DIM,
        scale: float | None = None,
        softcap: float | None = None,
        alibi_heads: int | None = None,
        alibi_scaled: bool = False,
    ) -> None:
        super().__init__()
        self.alibi_heads = alibi_heads  # ALiBi with this many heads (Bloom), or None
        self.alibi_scaled = alibi_scaled  # Falcon's: bfloat16, scaled with the scores
        self.dropout = nn.Dropout(dropout)
        self.causal, self.window, self.feature = causal, window, feature
        self.scale = scale  # None: 1/sqrt(d), d2l's
        self.softcap = softcap  # None: none (Gemma 2: 50)

    def forward(
        self,
        queries: torch.Tensor,  # ((b h), q, d)
        keys: torch.Tensor,  # ((b h), k, d)
        values: torch.Tensor,  # ((b h), k, d) or ((b h), k, H)
        valid_lens: torch.Tensor | None,  # ((b h),) or ((b h), q)
        record: Record,
        position_bias: torch.Tensor | None = None,  # (h, q, k): T5's relative position bias
        bias_table: nn.Module | None = None,  # the table it came from, for its parameters
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        d = queries.shape[-1]
        flops = 2 * scores_size(queries, keys) * d
        if self.scale is None:
            scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)  # ((b h), q, k)
            record("scores", scores, rows=ax.BATCH_HEADS, flops=flops)
        else:  # Granite: attention_multiplier replaces 1/sqrt(d)
            scores = torch.bmm(queries, keys.transpose(1, 2)) * self.scale  # ((b h), q, k)
            code = f"torch.bmm(queries, keys.transpose(1, 2)) * {self.scale:g}  # not / sqrt(d)"
            record("scores", scores, rows=ax.BATCH_HEADS, flops=flops, code=code)
        if self.alibi_heads is not None:  # Bloom: a bias per head growing with the key position
            batch = scores.shape[0] // self.alibi_heads
            bias = alibi_bias(
                self.alibi_heads, batch, keys.shape[1], scores.device, self.alibi_scaled
            ).to(scores.dtype)  # ((b h), 1, k)
            if not self.alibi_scaled:
                scores = scores + bias  # ((b h), q, k)
                record("alibi", scores, rows=ax.BATCH_HEADS, flops=scores.numel())
            else:  # Falcon: the bias goes into the mask, scaled as the scores are
                factor = f"* {self.scale:g}" if self.scale is not None else "/ math.sqrt(d)"
                bias = bias * self.scale if self.scale is not None else bias / math.sqrt(d)
                scores = scores + bias  # ((b h), q, k)
                code = f"scores + alibi {factor}  # Falcon: slopes[h] * j in bfloat16, scaled"
                record("alibi", scores, rows=ax.BATCH_HEADS, flops=2 * scores.numel(), code=code)
        if position_bias is not None:  # T5: a learned bias per head and bucket of j - i
            h = position_bias.shape[0]
            biased = scores.reshape(-1, h, *scores.shape[1:]) + position_bias.to(scores.dtype)
            scores = biased.reshape(scores.shape)  # ((b h), q, k)
            record(
                "relative_bias", scores, module=bias_table, rows=ax.BATCH_HEADS,
                flops=scores.numel(),
            )  # fmt: skip
        if self.softcap is not None:  # Gemma 2: before the mask, as its eager_attention_forward
            scores = torch.tanh(scores / self.softcap) * self.softcap  # ((b h), q, k)
            record("softcap", scores, rows=ax.BATCH_HEADS, flops=3 * scores.numel())
        mask = positional_mask(
            valid_lens, queries.shape[1], keys.shape[1], self.causal, scores.device, self.window
        )  # ((b h), q, k), or (1, q, k) when only causal
        weights = masked_softmax(scores, mask)  # ((b h), q, k)
        record("masked_softmax", weights, rows=ax.BATCH_HEADS)
        dropped = self.dropout(weights)  # ((b h), q, k): the identity in eval mode
        if self.dropout.p > 0 and self.training:
            record("dropout", dropped, rows=ax.BATCH_HEADS)
        out = torch.bmm(dropped, values)  # ((b h), q, d) or ((b h), q, H)
        flops = 2 * out.numel() * values.shape[1]
        record("weighted_sum", out, rows=ax.BATCH_HEADS, feature=self.feature, flops=flops)
        return out, weights, mask


class MultiHeadAttention(nn.Module):
    stages = STAGES  # what each recorded step is: its d2l code and axes

    def __init__(
        self,
        key_size: int,
        query_size: int,
        value_size: int,
        num_hiddens: int,
        num_heads: int,
        dropout: float,
        bias: bool = False,
        *,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        value_mode: str = "split",
        out_bias: bool | None = None,
        key_bias: bool | None = None,
        causal: bool = False,
        window: int | None = None,
        qk_norm: bool = False,
        norm_eps: float = 1e-6,
        rotary: Rotary | None = None,
        scale: float | None = None,
        softcap: float | None = None,
        clip_qkv: float | None = None,
        qk_norm_whole: bool = False,
        alibi: bool = False,
        qk_norm_layer: bool = False,
        alibi_scaled: bool = False,
        relative_buckets: int | None = None,
        relative_max_distance: int = 128,
    ) -> None:
        super().__init__()
        self.clip_qkv = clip_qkv  # OLMo: projections clamped to [-c, c]
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads or num_heads
        self.head_dim = head_dim or num_hiddens // num_heads
        self.full_values = value_mode == "full"
        self.rotary = rotary
        d, h, g = self.head_dim, num_heads, self.num_kv_heads
        self.feature = ax.HIDDENS if self.full_values else ax.HEAD_DIM  # each head's output
        self.attention = DotProductAttention(
            dropout, causal, window, self.feature, scale, softcap, num_heads if alibi else None,
            alibi_scaled,
        )  # fmt: skip
        self.W_q = nn.Linear(query_size, h * d, bias=bias)
        # Only g heads get their own keys; Whisper's W_k alone has no bias.
        self.W_k = nn.Linear(key_size, g * d, bias=bias if key_bias is None else key_bias)
        self.W_v = nn.Linear(value_size, num_hiddens if self.full_values else g * d, bias=bias)
        # Full values: every head returns H features, so the concatenation is h * H wide.
        concat = h * num_hiddens if self.full_values else h * d
        self.W_o = nn.Linear(concat, num_hiddens, bias=bias if out_bias is None else out_bias)
        self.qk_norm_whole = qk_norm and qk_norm_whole  # OLMo 2: over h*d (g*d) features
        self.qk_norm_layer = qk_norm and qk_norm_layer  # StableLM, Cohere: (heads, d) weights
        self.q_norm: HeadLayerNorm | HeadRMSNorm
        self.k_norm: HeadLayerNorm | HeadRMSNorm
        if self.qk_norm_layer:
            self.q_norm = HeadLayerNorm(h, d, norm_eps)
            self.k_norm = HeadLayerNorm(g, d, norm_eps)
        elif qk_norm:
            self.q_norm = HeadRMSNorm(h * d if self.qk_norm_whole else d, norm_eps)
            self.k_norm = HeadRMSNorm(g * d if self.qk_norm_whole else d, norm_eps)
        self.qk_norm = qk_norm
        # T5: a table of biases (buckets, h), added to the scores by the bucket of j - i
        self.relative_bias = (
            None
            if relative_buckets is None
            else RelativeBias(relative_buckets, h, relative_max_distance)
        )
        # Axis names of the projections' outputs: "hiddens" exactly when h * d is num_hiddens.
        self.q_axis = ax.HIDDENS if h * d == num_hiddens else ax.folded(ax.HEADS, ax.HEAD_DIM)
        self.kv_axis = self.q_axis if g == h else ax.folded(ax.KV_HEADS, ax.HEAD_DIM)

    def forward(
        self,
        queries: torch.Tensor,  # (b, q, query_size)
        keys: torch.Tensor,  # (b, k, key_size)
        values: torch.Tensor,  # (b, k, value_size)
        valid_lens: torch.Tensor | None,  # (b,) or (b, q)
        record: Record,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        record_inputs(record, queries, keys, values, valid_lens)
        value_axis = ax.HIDDENS if self.full_values else self.kv_axis
        q = project("W_q", self.W_q, queries, self.q_axis, record)  # (b, q, h*d)
        k = project("W_k", self.W_k, keys, self.kv_axis, record)  # (b, k, g*d)
        v = project("W_v", self.W_v, values, value_axis, record)  # (b, k, g*d) or (b, k, H)
        if self.clip_qkv is not None:  # OLMo: before the split into heads
            c = self.clip_qkv
            q, k, v = q.clamp(-c, c), k.clamp(-c, c), v.clamp(-c, c)
            record("queries.clip", q, seq=ax.QUERIES, out=self.q_axis)
            record("keys.clip", k, seq=ax.KV_PAIRS, out=self.kv_axis)
            record("values.clip", v, seq=ax.KV_PAIRS, out=value_axis)
        if self.qk_norm_whole:  # OLMo 2: one norm over all heads' features, before the split
            q = self.q_norm(q)  # (b, q, h*d)
            record("queries.norm_whole", q, module=self.q_norm, seq=ax.QUERIES, out=self.q_axis)
            k = self.k_norm(k)  # (b, k, g*d)
            record("keys.norm_whole", k, module=self.k_norm, seq=ax.KV_PAIRS, out=self.kv_axis)

        # Positions for the rotation: keys at 0..k-1, queries the last q of them.
        key_pos = torch.arange(keys.shape[1], device=keys.device)  # (k,)
        query_pos = query_positions(queries.shape[1], keys.shape[1], keys.device)  # (q,)
        q = self.transpose_qkv(q, "queries", record, query_pos)  # ((b h), q, d)
        k = self.transpose_qkv(k, "keys", record, key_pos)  # ((b h), k, d)
        if self.full_values:
            v = self.expand_values(v, record)  # ((b h), k, H)
        else:
            v = self.transpose_qkv(v, "values", record)  # ((b h), k, d)
        valid_lens = self.repeat_valid_lens(valid_lens, record)  # ((b h),) or ((b h), q)
        position_bias = None
        if self.relative_bias is not None:  # the encoder's buckets see both sides (not causal)
            position_bias = self.relative_bias(query_pos, key_pos, not self.attention.causal)
        out, weights, mask = self.attention(
            q, k, v, valid_lens, record, position_bias, self.relative_bias
        )  # ((b h), q, d|H)
        concat = self.transpose_output(out, self.feature, record)  # (b, q, h*d) or (b, q, h*H)
        output = self.W_o(concat)  # (b, q, H)
        record("W_o", output, module=self.W_o, flops=linear_flops(self.W_o, output))
        return output, weights, mask

    def expand_values(self, v: torch.Tensor, record: Record) -> torch.Tensor:
        """Values kept whole (seed Q12): every head gets all H features of every value."""
        v = v.unsqueeze(1).expand(-1, self.num_heads, -1, -1)  # (b, h, k, H)
        record("values.expand", v)
        v = v.reshape(-1, v.shape[2], v.shape[3])  # ((b h), k, H)
        record("values.fold", v, seq=ax.KV_PAIRS, feature=ax.HIDDENS)
        return v

    def repeat_valid_lens(
        self, valid_lens: torch.Tensor | None, record: Record
    ) -> torch.Tensor | None:
        """Each head of an example sees that example's padding: batch-major, like the fold."""
        if valid_lens is None:
            return None
        valid_lens = torch.repeat_interleave(valid_lens, repeats=self.num_heads, dim=0)
        record("valid_lens.repeat", valid_lens, per_query=_per_query(valid_lens))
        return valid_lens

    def transpose_qkv(
        self, X: torch.Tensor, role: str, record: Record, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """d2l's `transpose_qkv`, one recorded step at a time: split the heads and fold them
        into the batch, with what modern decoders do to queries and keys in between."""
        heads = self.num_heads if role == "queries" else self.num_kv_heads
        seq = ax.QUERIES if role == "queries" else ax.KV_PAIRS
        head_axis = ax.HEADS if heads == self.num_heads else ax.KV_HEADS

        def step(name: str, tensor: torch.Tensor, module: nn.Module | None = None) -> None:
            record(
                f"{role}.{name}", tensor, module=module, seq=seq, heads=head_axis,
                feature=ax.HEAD_DIM,
            )  # fmt: skip

        X = X.reshape(X.shape[0], X.shape[1], heads, -1)  # (b, n, h, d)
        step("split", X)
        X = X.permute(0, 2, 1, 3)  # (b, h, n, d)
        step("permute", X)
        if self.qk_norm and not self.qk_norm_whole and role != "values":
            norm = self.q_norm if role == "queries" else self.k_norm
            X = norm(X)  # (b, h, n, d)
            if self.qk_norm_layer:
                code = f"self.{role[0]}_norm(X)  # LayerNorm per head: weight (heads, d), no bias"
                record(
                    f"{role}.norm", X, module=norm, seq=seq, heads=head_axis,
                    feature=ax.HEAD_DIM, code=code,
                )  # fmt: skip
            else:
                step("norm", X, norm)
        if self.rotary is not None and positions is not None:
            rotary_dim = 2 * self.rotary.inv_freq.shape[0]
            X = apply_rope(
                X, positions, self.rotary.inv_freq, rotary_dim, self.rotary.pairing,
                self.rotary.factor,
            )  # fmt: skip
            step("rope", X)
        if heads != self.num_heads:
            # Grouped-query attention: key-value head j serves query heads j*r .. j*r + r-1.
            X = X.repeat_interleave(self.num_heads // heads, dim=1)  # (b, h, n, d)
            record(f"{role}.share", X, seq=seq, feature=ax.HEAD_DIM)
        X = X.reshape(-1, X.shape[2], X.shape[3])  # ((b h), n, d)
        record(f"{role}.fold", X, seq=seq, feature=ax.HEAD_DIM)
        return X

    def transpose_output(self, X: torch.Tensor, feature: str, record: Record) -> torch.Tensor:
        """d2l's `transpose_output`: undo the head fold, then concatenate the heads."""
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2])  # (b, h, q, d)
        record("output.unfold", X, feature=feature)
        X = X.permute(0, 2, 1, 3)  # (b, q, h, d)
        record("output.permute", X, feature=feature)
        X = X.reshape(X.shape[0], X.shape[1], -1)  # (b, q, h*d)
        concat = self.q_axis if feature == ax.HEAD_DIM else ax.folded(ax.HEADS, ax.HIDDENS)
        record("output.concat", X, out=concat)
        return X


def _per_query(valid_lens: torch.Tensor) -> str:
    return ax.QUERIES if valid_lens.dim() == 2 else ""
