"""The one axis vocabulary of mha, used alike in code comments, the stage table, the JSON and
the reshape explainer (which also accepts the short aliases below).

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


def folded(*names: str) -> str:
    """Name of an axis that holds several axes, outer first, einops-style: `(batch heads)`."""
    return "(" + " ".join(names) + ")"


BATCH_HEADS = folded(BATCH, HEADS)

# What a user may type for an axis (`mha reshape --axes`), and the canonical name it means.
ALIASES = {
    "b": BATCH,
    "examples": BATCH,
    "h": HEADS,
    "q": QUERIES,
    "k": KV_PAIRS,
    "kv": KV_PAIRS,
    "keys": KV_PAIRS,
}
# The noun for one index of an axis, singular and plural: "example 1", "key 3".
NOUNS = {
    BATCH: ("example", "examples"),
    HEADS: ("head", "heads"),
    KV_HEADS: ("kv head", "kv heads"),
    QUERIES: ("query", "queries"),
    KV_PAIRS: ("key", "keys"),
    HEAD_DIM: ("feature", "features"),
}


# What one index of each axis counts, grouped for the legend under the stage table: the readers
# ask which sizes are sequence lengths (number_of_QKV) and which are feature widths (length_of_QKV).
POSITIONS = (QUERIES, KV_PAIRS)
FEATURES = (QUERY_SIZE, KEY_SIZE, VALUE_SIZE, HIDDENS, HEAD_DIM)


def legend(names: list[str]) -> str:
    """One line saying what the axes among `names` count, e.g. `queries and kv pairs count
    positions in a sequence ...`; folded axes such as `(batch heads)` count each of theirs."""
    known = (BATCH, *POSITIONS, *FEATURES, HEADS, KV_HEADS)
    present: set[str] = set()
    for name in names:
        if name.startswith("("):
            present.update(k for k in known if k in name)
        else:
            present.add(name)
    parts = []
    positions = [n for n in POSITIONS if n in present]
    if positions:
        parts.append(
            f"{_and(positions)} count positions in a sequence (a length, such as num_steps)"
        )
    features = [n for n in FEATURES if n in present]
    if features:
        parts.append(f"{_and(features)} count features (a width, such as num_hiddens)")
    if BATCH in present:
        parts.append("batch counts examples")
    if HEADS in present or KV_HEADS in present:
        parts.append("heads count attention heads")
    return "axes: " + "; ".join(parts)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def canonical(name: str) -> str:
    """The vocabulary's name for `name` (an alias such as `keys` or `k`, or the name itself)."""
    return ALIASES.get(name, name)


def noun(name: str, count: int = 1) -> str:
    """The noun for one index of an axis: batch -> example(s), kv pairs -> key(s)."""
    singular, plural = NOUNS.get(name, (name, name))
    return singular if count == 1 else plural
