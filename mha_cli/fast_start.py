"""Import torch and matplotlib without paying the cyclic garbage collector for it.

`import torch` creates about 165,000 objects that the collector tracks; it traverses them
again and again while they are being created (0.47 s of a 1.48 s `import torch` on the
reference machine), and would go on traversing them at every full collection, although they
live until the process exits. So the collector is off while the heavy modules import, what they
created is frozen (`gc.freeze` keeps it out of all later collections), and the collector is
back on for the run's own objects.
"""

from __future__ import annotations

import gc
import importlib
import sys


def import_heavy(*names: str) -> None:
    """Import `names` (torch, matplotlib, and the modules built on them) once, collector off."""
    missing = [name for name in names if name not in sys.modules]
    if not missing:
        return  # already imported: nothing to speed up, nothing new to freeze
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in missing:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
