"""The words every message shares: shapes as Python writes them, typo suggestions, short listings.

Pure Python: the spec, the reshape explainer, the file readers and the renderers all format
through here, so a shape reads `(2, 4, 100)` and a typo gets the same hint everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

SHOWN_NAMES = 8  # a whole model's state dict has hundreds of keys; messages show a few


def shape_text(shape: Sequence[int] | Any) -> str:
    """`(2, 4, 100)`, and `(10,)` for one axis; a tensor or array gives its own shape."""
    dims = getattr(shape, "shape", shape)
    return repr(tuple(int(d) for d in dims))


def suggest(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'heads'?`, or an empty string when nothing known is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def listing(names: Iterable[Any], shown: int = SHOWN_NAMES) -> str:
    """At most a few names, then how many more: `a, b, c, ... 120 more`."""
    texts = [str(name) for name in names]
    if not texts:
        return "(none)"
    rest = len(texts) - shown
    head = ", ".join(texts[:shown])
    return f"{head}, ... {rest} more" if rest > 0 else head


_BINARY = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def size_text(n: int) -> str:
    """Bytes in binary units: `3.1 KiB`, `4.0 GiB`, `16 B`."""
    for scale, unit in _BINARY:
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
