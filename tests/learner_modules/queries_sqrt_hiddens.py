"""A learner's MultiHeadAttention: the queries divided by sqrt(num_hiddens) before the scores."""

import math

import torch
from chapter import DotProductAttention, masked_softmax
from chapter import MultiHeadAttention as Chapter


class A(DotProductAttention):
    def forward(self, queries, keys, values, valid_lens=None):
        queries = queries / math.sqrt(100)
        scores = torch.bmm(queries, keys.transpose(1, 2))
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)


class MultiHeadAttention(Chapter):
    def __init__(self, key_size, query_size, value_size, num_hiddens, num_heads, dropout):
        super().__init__(key_size, query_size, value_size, num_hiddens, num_heads, dropout)
        self.attention = A(dropout)
