"""Start-up speed tricks for the `mha` process only, never for a notebook that imports mha_cli.

`import torch` creates about 165,000 objects that the cyclic garbage collector tracks; it
traverses them again and again while they are being created (0.47 s of a 1.48 s `import torch`
on the reference machine) and at every later full collection, although they live until the
process exits. And on the meta device torch's reference kernels import `torch._dynamo` (about
1 s) only to mark themselves "do not compile" (`layer/meta_speed.py`).

And while matplotlib imports, it writes for every Artist class a docstring of its `set()` that
lists all its properties (about 0.07 s of a 2.3 s heatmap process); in the `mha` process no one
reads them, so they are left empty there (`_artist_docs_left_empty`).

These tricks change the whole process: `gc.freeze()` keeps every object alive so far out of all
later collections, the dynamo marks stay on torch's functions, the `set()` docstrings stay
empty. That is harmless in the `mha` command, which exits when its command is done, and wrong in
a user's own process. So they apply only after `enable()`, which the command-line entry point
(`mha_cli.cli.main`) alone calls; the Python API imports torch and matplotlib plainly.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
from collections.abc import Iterator

_enabled = False


def enable() -> None:
    """Allow the tricks in this process. Only the `mha` entry point calls this."""
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def import_heavy(*names: str) -> None:
    """Import `names` (torch, matplotlib, the modules built on them); in the `mha` process,
    with the collector off while they import and what they made frozen afterwards."""
    missing = [name for name in names if name not in sys.modules]
    if not missing:
        return
    if not _enabled:
        for name in missing:
            importlib.import_module(name)
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        plotting = any(name.startswith("matplotlib") for name in missing)
        with _artist_docs_left_empty() if plotting else contextlib.nullcontext():
            for name in missing:
                importlib.import_module(name)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def _artist_docs_left_empty() -> Iterator[None]:
    """While matplotlib's modules import: `matplotlib.artist.kwdoc` (the property listing each
    Artist subclass puts in its `set()` docstring) returns "". Restored afterwards; where a
    matplotlib has no `kwdoc`, nothing is changed."""
    try:
        from matplotlib import artist
    except ImportError:  # no matplotlib: the import that follows says so
        yield
        return
    kwdoc = getattr(artist, "kwdoc", None)
    if kwdoc is None:
        yield
        return
    artist.kwdoc = lambda _: ""  # type: ignore[assignment]
    try:
        yield
    finally:
        artist.kwdoc = kwdoc


def before_meta() -> None:
    """Called before the first meta-device operation: in the `mha` process, skip the
    `torch._dynamo` import that it would trigger."""
    if _enabled:
        from mha_cli.layer.meta_speed import skip_dynamo_import

        skip_dynamo_import()
