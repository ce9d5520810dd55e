"""A learner's MultiHeadAttention: the projection folded into (batch*heads, n, d) in one reshape."""

from chapter import MultiHeadAttention as Chapter


class MultiHeadAttention(Chapter):
    def split(self, X):
        return X.reshape(X.shape[0] * self.num_heads, X.shape[1], -1)
