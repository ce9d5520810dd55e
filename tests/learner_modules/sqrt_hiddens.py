"""A learner's MultiHeadAttention: the scores are divided by sqrt(num_hiddens), not by
sqrt(head dim)."""

import math

import torch
from chapter import DotProductAttention, masked_softmax
from chapter import MultiHeadAttention as Chapter


class HiddensScaledAttention(DotProductAttention):
    def __init__(self, num_hiddens, dropout):
        super().__init__(dropout)
        self.num_hiddens = num_hiddens

    def forward(self, queries, keys, values, valid_lens=None):
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(self.num_hiddens)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)


class MultiHeadAttention(Chapter):
    def __init__(self, key_size, query_size, value_size, num_hiddens, num_heads, dropout):
        super().__init__(key_size, query_size, value_size, num_hiddens, num_heads, dropout)
        self.attention = HiddensScaledAttention(num_hiddens, dropout)
