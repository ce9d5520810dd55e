"""A learner's MultiHeadAttention: the heads split from the wrong end of the features.

Every shape is right, so nothing fails: the last axis of (b, n, -1, num_heads) is taken as the
heads and moved to the front, so head i gets every num_heads-th feature."""

from chapter import MultiHeadAttention as Chapter


class MultiHeadAttention(Chapter):
    def split(self, X):
        X = X.reshape(X.shape[0], X.shape[1], -1, self.num_heads)  # (b, n, d, h)
        X = X.permute(0, 3, 1, 2)  # (b, h, n, d)
        return X.reshape(-1, X.shape[2], X.shape[3])  # ((b h), n, d)
