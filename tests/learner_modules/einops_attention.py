"""Multi-head attention written with einops, as the English edition's signature has it."""

import math

import torch
from einops import einsum, rearrange
from torch import nn


class EinopsAttention(nn.Module):
    def __init__(self, num_hiddens, num_heads, dropout, bias=False):
        super().__init__()
        self.heads = num_heads
        self.to_q = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.to_k = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.to_v = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.to_out = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, keys, values, valid_lens):
        q = rearrange(self.to_q(queries), "b n (h d) -> b h n d", h=self.heads)
        k = rearrange(self.to_k(keys), "b n (h d) -> b h n d", h=self.heads)
        v = rearrange(self.to_v(values), "b n (h d) -> b h n d", h=self.heads)
        scores = einsum(q, k, "b h i d, b h j d -> b h i j") / math.sqrt(q.shape[-1])
        padding = torch.arange(k.shape[2], device=k.device)[None, :] >= valid_lens[:, None]
        scores = scores.masked_fill(rearrange(padding, "b j -> b 1 1 j"), -1e6)
        weights = self.dropout(scores.softmax(dim=-1))
        out = einsum(weights, v, "b h i j, b h j d -> b h i d")
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))
