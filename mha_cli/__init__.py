"""mha: a shape and weight inspector for multi-head attention, as Dive into Deep Learning
writes it. The Python API gives the commands' answers as objects, for notebooks:

    >>> import mha_cli
    >>> report = mha_cli.inspect(heads=5, queries=4, kv=6)   # the stage table when printed
    >>> report.stage("queries.fold").shape
    (10, 4, 20)
    >>> figure = mha_cli.heatmap(valid_lens="3,2")            # a matplotlib Figure
    >>> figure = mha_cli.diagram(kv_heads=1)                  # the dataflow, shapes on arrows
    >>> mha_cli.explain_reshape("2,1,10", "1,1,2,10").verdict.value
    'folded'
    >>> mha_cli.compare(valid_lens="0,2").agrees                 # d2l against torch's attention
    True
    >>> mha_cli.weights(heads=5).layer.heads[0].qk.effective_rank   # per-head circuits
    19.16...
    >>> mha_cli.heads(heads=5).ranking()[0].head                      # could go first
    4

Each function takes the command line's option names as keyword arguments and raises
`MhaError` (with the command's one-line message) for a user's mistake.
"""

from __future__ import annotations

from typing import Any

from mha_cli.errors import ExpectationFailed, MhaError
from mha_cli.registry import api_names

__version__ = "0.2.0"

# name -> module that defines it, from the command registry; imported on first use, so
# `import mha_cli` (and `mha --help`) stays instant.
_API = api_names()

__all__ = [*_API, "ExpectationFailed", "MhaError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'mha_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
