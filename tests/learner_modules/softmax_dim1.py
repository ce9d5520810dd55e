"""A learner's MultiHeadAttention: masked_softmax normalises over dim=1 (the queries)."""

import torch
from chapter import DotProductAttention, sequence_mask
from chapter import MultiHeadAttention as Chapter
from torch import nn


def masked_softmax(X, valid_lens):
    shape = X.shape
    valid_lens = torch.repeat_interleave(valid_lens, shape[1])
    X = sequence_mask(X.reshape(-1, shape[-1]), valid_lens, value=-1e6)
    return nn.functional.softmax(X.reshape(shape), dim=1)  # d2l: dim=-1


class WrongAxisAttention(DotProductAttention):
    def forward(self, queries, keys, values, valid_lens=None):
        scores = torch.bmm(queries, keys.transpose(1, 2)) / queries.shape[-1] ** 0.5
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)


class MultiHeadAttention(Chapter):
    def __init__(self, key_size, query_size, value_size, num_hiddens, num_heads, dropout):
        super().__init__(key_size, query_size, value_size, num_hiddens, num_heads, dropout)
        self.attention = WrongAxisAttention(dropout)
