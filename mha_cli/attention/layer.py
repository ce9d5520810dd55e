"""d2l's `MultiHeadAttention` (the Chinese edition's, with separate key, query and value
sizes), recording every step of its forward pass.

Only imported by commands that run the layer: it imports torch at module level.
Shapes use the letters of `mha_cli.spec.axes`: b batch, q queries, k key-value pairs,
h heads, g key-value heads, d head dim, H num_hiddens, (b h) heads folded into batch.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from mha_cli.attention.masking import masked_softmax, positional_mask
from mha_cli.spec import axes as ax


class Record(Protocol):
    def __call__(
        self,
        name: str,
        tensor: torch.Tensor,
        code: str,
        axes: tuple[str, ...],
        *,
        module: nn.Module | None = None,
        flops: int = 0,
    ) -> None: ...


def linear_flops(layer: nn.Linear, output: torch.Tensor) -> int:
    """A multiply-add is 2 FLOPs; the bias add is not counted (as torch.utils.flop_counter)."""
    return 2 * output.numel() * layer.in_features


def record_inputs(
    record: Record,
    queries: torch.Tensor,  # (b, q, query_size)
    keys: torch.Tensor,  # (b, k, key_size)
    values: torch.Tensor,  # (b, k, value_size)
    valid_lens: torch.Tensor | None,  # (b,) or (b, q)
) -> None:
    """The first rows of every layer's table: what goes in, before any weight touches it."""
    record("queries", queries, "queries", (ax.BATCH, ax.QUERIES, ax.QUERY_SIZE))
    record("keys", keys, "keys", (ax.BATCH, ax.KV_PAIRS, ax.KEY_SIZE))
    record("values", values, "values", (ax.BATCH, ax.KV_PAIRS, ax.VALUE_SIZE))
    if valid_lens is not None:
        lens_axes = (ax.BATCH,) if valid_lens.dim() == 1 else (ax.BATCH, ax.QUERIES)
        record("valid_lens", valid_lens, "valid_lens", lens_axes)


_PROJECTED = {"W_q": "queries", "W_k": "keys", "W_v": "values"}


def project(
    name: str, layer: nn.Linear, x: torch.Tensor, seq_axis: str, record: Record
) -> torch.Tensor:
    """`self.W_q(queries)` and its siblings: apply one projection and record it."""
    y = layer(x)  # (b, n, out_features)
    record(
        name,
        y,
        f"self.{name}({_PROJECTED[name]})",
        (ax.BATCH, seq_axis, ax.HIDDENS),
        module=layer,
        flops=linear_flops(layer, y),
    )
    return y


class MultiHeadAttention(nn.Module):
    """d2l's layer, plus two variants: fewer key-value heads (grouped-query / multi-query
    attention) and values kept whole per head (`value_mode="full"`, seed question Q12)."""

    def __init__(
        self,
        key_size: int,
        query_size: int,
        value_size: int,
        num_hiddens: int,
        num_heads: int,
        dropout: float,
        bias: bool = False,
        num_kv_heads: int | None = None,
        value_mode: str = "split",
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads or num_heads
        self.full_values = value_mode == "full"
        self.causal = causal
        head_dim = num_hiddens // num_heads
        kv_hiddens = self.num_kv_heads * head_dim  # g * d: only g heads get their own keys
        self.dropout = nn.Dropout(dropout)
        self.W_q = nn.Linear(query_size, num_hiddens, bias=bias)
        self.W_k = nn.Linear(key_size, kv_hiddens, bias=bias)
        self.W_v = nn.Linear(value_size, num_hiddens if self.full_values else kv_hiddens, bias=bias)
        # Full values: every head returns H features, so the concatenation is h * H wide.
        concat = num_heads * num_hiddens if self.full_values else num_hiddens
        self.W_o = nn.Linear(concat, num_hiddens, bias=bias)

    def forward(
        self,
        queries: torch.Tensor,  # (b, q, query_size)
        keys: torch.Tensor,  # (b, k, key_size)
        values: torch.Tensor,  # (b, k, value_size)
        valid_lens: torch.Tensor | None,  # (b,) or (b, q)
        record: Record,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        record_inputs(record, queries, keys, values, valid_lens)

        q = project("W_q", self.W_q, queries, ax.QUERIES, record)  # (b, q, H)
        k = project("W_k", self.W_k, keys, ax.KV_PAIRS, record)  # (b, k, g*d)
        v = project("W_v", self.W_v, values, ax.KV_PAIRS, record)  # (b, k, g*d) or (b, k, H)

        q = self._transpose_qkv(q, "queries", ax.QUERIES, record)  # ((b h), q, d)
        k = self._transpose_qkv(k, "keys", ax.KV_PAIRS, record)  # ((b h), k, d)
        if self.full_values:
            v = self._share_full_values(v, record)  # ((b h), k, H)
        else:
            v = self._transpose_qkv(v, "values", ax.KV_PAIRS, record)  # ((b h), k, d)

        if valid_lens is not None:
            # Each head of an example sees that example's padding: batch-major, like the fold.
            valid_lens = torch.repeat_interleave(valid_lens, repeats=self.num_heads, dim=0)
            per_query = (ax.QUERIES,) if valid_lens.dim() == 2 else ()
            repeated_axes = (ax.BATCH_HEADS, *per_query)
            record(
                "valid_lens.repeat",
                valid_lens,
                "torch.repeat_interleave(valid_lens, repeats=self.num_heads, dim=0)",
                repeated_axes,
            )

        d = q.shape[-1]
        scores = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(d)  # ((b h), q, k)
        record(
            "scores",
            scores,
            "torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)",
            (ax.BATCH_HEADS, ax.QUERIES, ax.KV_PAIRS),
            flops=2 * scores.numel() * d,
        )
        mask = positional_mask(
            valid_lens, q.shape[1], k.shape[1], self.causal, scores.device
        )  # ((b h), q, k)
        weights = masked_softmax(scores, mask)  # ((b h), q, k)
        record(
            "masked_softmax",
            weights,
            "self.attention_weights = masked_softmax(scores, valid_lens)",
            (ax.BATCH_HEADS, ax.QUERIES, ax.KV_PAIRS),
        )
        dropped = self.dropout(weights)  # ((b h), q, k): identity in eval mode
        if self.dropout.p > 0 and self.training:  # in eval mode dropout is the identity
            record(
                "dropout",
                dropped,
                "self.dropout(self.attention_weights)",
                (ax.BATCH_HEADS, ax.QUERIES, ax.KV_PAIRS),
            )
        out = torch.bmm(dropped, v)  # ((b h), q, d) or ((b h), q, H)
        feature = ax.VALUE_FEATURES if self.full_values else ax.HEAD_DIM
        record(
            "weighted_sum",
            out,
            "torch.bmm(self.dropout(self.attention_weights), values)",
            (ax.BATCH_HEADS, ax.QUERIES, feature),
            flops=2 * out.numel() * v.shape[1],
        )
        concat = self._transpose_output(out, feature, record)  # (b, q, H) or (b, q, h*H)
        output = self.W_o(concat)  # (b, q, H)
        record(
            "W_o",
            output,
            "self.W_o(output_concat)",
            (ax.BATCH, ax.QUERIES, ax.HIDDENS),
            module=self.W_o,
            flops=linear_flops(self.W_o, output),
        )
        return output, weights, mask

    def _transpose_qkv(
        self, X: torch.Tensor, role: str, seq_axis: str, record: Record
    ) -> torch.Tensor:
        """d2l's `transpose_qkv`, one recorded step at a time: fold the heads into the batch."""
        heads = self.num_heads if role == "queries" else self.num_kv_heads
        head_axis = ax.HEADS if heads == self.num_heads else ax.KV_HEADS
        X = X.reshape(X.shape[0], X.shape[1], heads, -1)  # (b, n, h, d)
        record(
            f"{role}.split",
            X,
            "X.reshape(X.shape[0], X.shape[1], num_heads, -1)",
            (ax.BATCH, seq_axis, head_axis, ax.HEAD_DIM),
        )
        X = X.permute(0, 2, 1, 3)  # (b, h, n, d)
        record(
            f"{role}.permute",
            X,
            "X.permute(0, 2, 1, 3)",
            (ax.BATCH, head_axis, seq_axis, ax.HEAD_DIM),
        )
        if heads != self.num_heads:
            # Grouped-query attention: key-value head j serves query heads j*r .. j*r + r-1.
            X = X.repeat_interleave(self.num_heads // heads, dim=1)  # (b, h, n, d)
            record(
                f"{role}.share",
                X,
                "X.repeat_interleave(num_heads // num_kv_heads, dim=1)",
                (ax.BATCH, ax.HEADS, seq_axis, ax.HEAD_DIM),
            )
        X = X.reshape(-1, X.shape[2], X.shape[3])  # ((b h), n, d)
        record(
            f"{role}.fold",
            X,
            "X.reshape(-1, X.shape[2], X.shape[3])",
            (ax.BATCH_HEADS, seq_axis, ax.HEAD_DIM),
        )
        return X

    def _share_full_values(self, V: torch.Tensor, record: Record) -> torch.Tensor:
        """Seed Q12: values are not split; every head weighs all H features of the same values."""
        V = V.unsqueeze(1).expand(-1, self.num_heads, -1, -1)  # (b, h, k, H)
        record(
            "values.share",
            V,
            "values.unsqueeze(1).expand(-1, num_heads, -1, -1)",
            (ax.BATCH, ax.HEADS, ax.KV_PAIRS, ax.VALUE_FEATURES),
        )
        V = V.reshape(-1, V.shape[2], V.shape[3])  # ((b h), k, H)
        record(
            "values.fold",
            V,
            "X.reshape(-1, X.shape[2], X.shape[3])",
            (ax.BATCH_HEADS, ax.KV_PAIRS, ax.VALUE_FEATURES),
        )
        return V

    def _transpose_output(self, X: torch.Tensor, feature: str, record: Record) -> torch.Tensor:
        """d2l's `transpose_output`: undo the head fold, then concatenate the heads."""
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2])  # (b, h, q, d)
        record(
            "output.unfold",
            X,
            "X.reshape(-1, num_heads, X.shape[1], X.shape[2])",
            (ax.BATCH, ax.HEADS, ax.QUERIES, feature),
        )
        X = X.permute(0, 2, 1, 3)  # (b, q, h, d)
        record(
            "output.permute", X, "X.permute(0, 2, 1, 3)", (ax.BATCH, ax.QUERIES, ax.HEADS, feature)
        )
        X = X.reshape(X.shape[0], X.shape[1], -1)  # (b, q, h*d)
        concat_axis = ax.HIDDENS if feature == ax.HEAD_DIM else ax.folded(ax.HEADS, ax.HIDDENS)
        record(
            "output.concat",
            X,
            "X.reshape(X.shape[0], X.shape[1], -1)",
            (ax.BATCH, ax.QUERIES, concat_axis),
        )
        return X
