"""d2l's `AdditiveAttention` (the scoring-functions chapter), recording every step.

Single-head: W_q and W_k map queries and keys to num_hiddens features, `w_v` scores
their tanh'd sum, values are not projected. Imported only when `--score additive`.
Shapes: b batch, q queries, k key-value pairs, H num_hiddens, v value size.
"""

from __future__ import annotations

import torch
from torch import nn

from mha_cli.attention.layer import Record, linear_flops, project, record_inputs
from mha_cli.attention.masking import masked_softmax, positional_mask
from mha_cli.spec import axes as ax


class AdditiveAttention(nn.Module):
    def __init__(
        self,
        key_size: int,
        query_size: int,
        num_hiddens: int,
        dropout: float,
        bias: bool = False,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.causal = causal
        self.W_k = nn.Linear(key_size, num_hiddens, bias=bias)
        self.W_q = nn.Linear(query_size, num_hiddens, bias=bias)
        self.w_v = nn.Linear(num_hiddens, 1, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        queries: torch.Tensor,  # (b, q, query_size)
        keys: torch.Tensor,  # (b, k, key_size)
        values: torch.Tensor,  # (b, k, v)
        valid_lens: torch.Tensor | None,  # (b,) or (b, q)
        record: Record,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        record_inputs(record, queries, keys, values, valid_lens)
        q = project("W_q", self.W_q, queries, ax.QUERIES, record)  # (b, q, H)
        k = project("W_k", self.W_k, keys, ax.KV_PAIRS, record)  # (b, k, H)
        q4 = q.unsqueeze(2)  # (b, q, 1, H)
        record(
            "queries.unsqueeze", q4, "queries.unsqueeze(2)", (ax.BATCH, ax.QUERIES, "1", ax.HIDDENS)
        )
        k4 = k.unsqueeze(1)  # (b, 1, k, H)
        record("keys.unsqueeze", k4, "keys.unsqueeze(1)", (ax.BATCH, "1", ax.KV_PAIRS, ax.HIDDENS))
        features = torch.tanh(q4 + k4)  # (b, q, k, H): every query paired with every key
        record(
            "features",
            features,
            "torch.tanh(queries.unsqueeze(2) + keys.unsqueeze(1))",
            (ax.BATCH, ax.QUERIES, ax.KV_PAIRS, ax.HIDDENS),
        )
        scored = self.w_v(features)  # (b, q, k, 1)
        record(
            "w_v",
            scored,
            "self.w_v(features)",
            (ax.BATCH, ax.QUERIES, ax.KV_PAIRS, "1"),
            module=self.w_v,
            flops=linear_flops(self.w_v, scored),
        )
        scores = scored.squeeze(-1)  # (b, q, k)
        record(
            "scores", scores, "self.w_v(features).squeeze(-1)", (ax.BATCH, ax.QUERIES, ax.KV_PAIRS)
        )
        mask = positional_mask(
            valid_lens, q.shape[1], k.shape[1], self.causal, scores.device
        )  # (b, q, k)
        weights = masked_softmax(scores, mask)  # (b, q, k)
        record(
            "masked_softmax",
            weights,
            "self.attention_weights = masked_softmax(scores, valid_lens)",
            (ax.BATCH, ax.QUERIES, ax.KV_PAIRS),
        )
        dropped = self.dropout(weights)  # (b, q, k): identity in eval mode
        if self.dropout.p > 0 and self.training:  # in eval mode dropout is the identity
            record(
                "dropout",
                dropped,
                "self.dropout(self.attention_weights)",
                (ax.BATCH, ax.QUERIES, ax.KV_PAIRS),
            )
        output = torch.bmm(dropped, values)  # (b, q, v)
        record(
            "weighted_sum",
            output,
            "torch.bmm(self.dropout(self.attention_weights), values)",
            (ax.BATCH, ax.QUERIES, ax.VALUE_SIZE),
            flops=2 * output.numel() * values.shape[1],
        )
        return output, weights, mask
