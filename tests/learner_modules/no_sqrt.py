"""A learner's MultiHeadAttention: the scores are never divided by sqrt(d)."""

import torch
from chapter import DotProductAttention, masked_softmax
from chapter import MultiHeadAttention as Chapter


class UnscaledAttention(DotProductAttention):
    def forward(self, queries, keys, values, valid_lens=None):
        scores = torch.bmm(queries, keys.transpose(1, 2))  # d2l: / math.sqrt(d)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)


class MultiHeadAttention(Chapter):
    def __init__(self, key_size, query_size, value_size, num_hiddens, num_heads, dropout):
        super().__init__(key_size, query_size, value_size, num_hiddens, num_heads, dropout)
        self.attention = UnscaledAttention(dropout)
