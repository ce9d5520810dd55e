"""A learner's English-edition MultiHeadAttention (lazy projections) that forgets to repeat
valid_lens per head: masked_softmax raises before W_o is ever called."""

from english import MultiHeadAttention as English


class MultiHeadAttention(English):
    def forward(self, queries, keys, values, valid_lens):
        queries = self.transpose_qkv(self.W_q(queries))
        keys = self.transpose_qkv(self.W_k(keys))
        values = self.transpose_qkv(self.W_v(values))
        output = self.attention(queries, keys, values, valid_lens)  # d2l: repeat_interleave first
        return self.W_o(self.transpose_output(output))
