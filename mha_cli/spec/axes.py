"""The one axis vocabulary of mha, used alike in code comments, the table and the JSON.

Comments in the layer use the short letters: b batch, q queries, k key-value pairs,
h heads, g key-value heads, d head dim, H num_hiddens, and `(b h)` for heads folded
into the batch axis by `transpose_qkv`.
"""

from __future__ import annotations

BATCH = "batch"
QUERIES = "queries"
KV_PAIRS = "kv pairs"
HEADS = "heads"
KV_HEADS = "kv heads"
HEAD_DIM = "head dim"
HIDDENS = "hiddens"
QUERY_SIZE = "query size"
KEY_SIZE = "key size"
VALUE_SIZE = "value size"
# A head of the "full values" variant (seed Q12) keeps every hidden feature of the values.
VALUE_FEATURES = "hiddens"


def folded(*names: str) -> str:
    """Name of an axis that holds several axes, outer first, einops-style: `(batch heads)`."""
    return "(" + " ".join(names) + ")"


BATCH_HEADS = folded(BATCH, HEADS)
