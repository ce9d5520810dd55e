"""d2l's layer initialised with one constant in every weight (a learner's `nn.init.constant_`):
every head gets the same slice of W_q and W_k, so every head computes the same scores whatever
the inputs, and with random inputs every valid key gets the same score."""

from chapter import MultiHeadAttention as Chapter
from torch import nn


class MultiHeadAttention(Chapter):
    def __init__(self, key_size, query_size, value_size, num_hiddens, num_heads, dropout):
        super().__init__(key_size, query_size, value_size, num_hiddens, num_heads, dropout)
        for linear in (self.W_q, self.W_k, self.W_v, self.W_o):
            nn.init.constant_(linear.weight, 0.01)
