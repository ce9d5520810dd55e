"""d2l's `AdditiveAttention` (the scoring-functions chapter), recording every step.

Single-head: W_q and W_k map queries and keys to num_hiddens features, `w_v` scores
their tanh'd sum, values are not projected. Imported only when `--score additive`.
Shapes: b batch, q queries, k key-value pairs, H num_hiddens, v value size.
"""

from __future__ import annotations

import torch
from torch import nn

from mha_cli.layer.layer import project, record_inputs
from mha_cli.layer.masking import masked_softmax, positional_mask
from mha_cli.layer.recording import ADDITIVE_STAGES, Record, linear_flops
from mha_cli.spec import axes as ax


class AdditiveAttention(nn.Module):
    stages = ADDITIVE_STAGES  # what each recorded step is: its d2l code and axes

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
        q = project("W_q", self.W_q, queries, ax.HIDDENS, record)  # (b, q, H)
        k = project("W_k", self.W_k, keys, ax.HIDDENS, record)  # (b, k, H)
        q4 = q.unsqueeze(2)  # (b, q, 1, H)
        record("queries.unsqueeze", q4)
        k4 = k.unsqueeze(1)  # (b, 1, k, H)
        record("keys.unsqueeze", k4)
        features = torch.tanh(q4 + k4)  # (b, q, k, H): every query paired with every key
        record("features", features)
        scored = self.w_v(features)  # (b, q, k, 1)
        record("w_v", scored, module=self.w_v, flops=linear_flops(self.w_v, scored))
        scores = scored.squeeze(-1)  # (b, q, k)
        record("scores", scores)
        mask = positional_mask(
            valid_lens, q.shape[1], k.shape[1], self.causal, scores.device
        )  # (b, q, k)
        weights = masked_softmax(scores, mask)  # (b, q, k)
        record("masked_softmax", weights, rows=ax.BATCH)
        dropped = self.dropout(weights)  # (b, q, k): the identity in eval mode
        if self.dropout.p > 0 and self.training:
            record("dropout", dropped, rows=ax.BATCH)
        output = torch.bmm(dropped, values)  # (b, q, v)
        record(
            "weighted_sum",
            output,
            rows=ax.BATCH,
            feature=ax.VALUE_SIZE,
            flops=2 * output.numel() * values.shape[1],
        )
        return output, weights, mask
