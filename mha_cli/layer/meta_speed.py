"""Keep the meta-device trace fast: avoid the one-second `torch._dynamo` import.

On the meta device torch runs its Python reference kernels (`torch._refs`). Each of them
is wrapped by `torch._disable_dynamo`, whose wrapper imports `torch._dynamo` (about 1 s,
more than the whole trace) on first call, only to mark the function as "do not compile",
and caches the result on the function as `__dynamo_disable`. mha never compiles, so we
fill that cache with the function itself. If a torch release changes this private detail,
nothing breaks: the first meta op is just slower again (the benchmark reports it).
"""

from __future__ import annotations

import sys
from types import CodeType, ModuleType

_MODULES = (
    "torch._refs",
    "torch._refs.nn.functional",
    "torch._refs.special",
    "torch._refs.linalg",
    "torch._decomp.decompositions",
    "torch._meta_registrations",
)


def skip_dynamo_import() -> int:
    """Pre-fill the `_disable_dynamo` caches; returns how many functions were marked."""
    if "torch._dynamo" in sys.modules:
        return 0  # already paid for: nothing to save
    import torch

    # functools.wraps copies the name onto the wrapper: recognise it by its code object.
    wrapper_code = torch._disable_dynamo(_probe).__code__
    marked = 0
    for name in _MODULES:
        module = sys.modules.get(name) or _try_import(name)
        if module is None:
            continue
        for obj in list(vars(module).values()):
            marked += _mark_chain(obj, wrapper_code)
    return marked


def _probe() -> None:
    """A function to wrap, only to learn what the wrapper's code looks like."""


def _try_import(name: str) -> ModuleType | None:
    try:
        __import__(name)
    except ImportError:
        return None
    return sys.modules[name]


def _mark_chain(obj: object, wrapper_code: CodeType) -> int:
    """Follow a decorator chain (`__wrapped__`) and mark each `_disable_dynamo` wrapper."""
    marked = 0
    for _ in range(8):  # decorator chains are short; never loop forever on odd objects
        if not callable(obj):
            break
        if getattr(obj, "__code__", None) is wrapper_code:
            # The wrapper caches on its closure variable `fn` (not on `__wrapped__`, which
            # functools.wraps may have overwritten with an inner function).
            cells = dict(zip(wrapper_code.co_freevars, obj.__closure__ or (), strict=False))  # type: ignore[attr-defined]
            target = cells["fn"].cell_contents if "fn" in cells else None
            if target is not None and getattr(target, "__dynamo_disable", None) is None:
                target.__dynamo_disable = target  # type: ignore[attr-defined]
                marked += 1
        obj = getattr(obj, "__wrapped__", None)
    return marked
