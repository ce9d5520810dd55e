"""`mha_cli.trace(...)`: record every tensor operation inside the user's own attention module."""

from __future__ import annotations

import os
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.spec.entry import load_heavy, specification
from mha_cli.tracing.report import TraceReport


def trace(target: Any, *, check: bool = False, config: Any = None, **options: Any) -> TraceReport:
    """Trace `target`: "FILE.py:NAME" or "package.module:NAME" (this imports and runs that code,
    as pytest does), or the class, module or function itself. A class is built with the
    specification's sizes (the command line's option names: `heads=5, valid_lens="3,2"`, ...)
    and given its inputs; a function returns `(module, args)` or `(module, args, kwargs)`.

    Returns a `TraceReport`: the traced table when printed, with the module's attention weights
    (b, h, q, k) and output beside it. `check=True` compares the module with mha's reference run
    with the same weights and inputs: `report.check.agrees`, and what differs where it does not.

    A module whose forward raises (or, with `check=True`, leaves a lazy layer such as W_o
    uncalled) raises `ModuleFailed` (mha_cli.learner.user_code): one line naming the user's line,
    the operation and its shapes, with the steps recorded up to there as `error.report`. The
    user's code printing goes to stderr while it runs; a `sys.exit` in it is a `UserCodeError`.
    """
    return trace_report(target, config, options, check=check)


def trace_report(
    target: Any,
    config: Any,
    options: dict[str, Any],
    *,
    check: bool = False,
    keep_values: bool = False,
) -> TraceReport:
    """What `trace` and `heatmap(module=...)` share: the specification, the target, the run."""
    spec = specification(config, options)
    if spec.weights is not None:
        raise MhaError(
            "--weights: mha trace runs your module with its own weights; load a checkpoint in a "
            "function target (return module, args) instead"
        )
    load_heavy("mha_cli.tracing.run")
    from mha_cli.learner.user_code import load_target, target_of_object
    from mha_cli.tracing.run import trace_module

    if isinstance(target, str | os.PathLike):
        loaded = load_target(os.fspath(target))
    else:
        loaded = target_of_object(target)
    return trace_module(loaded, spec, check=check, keep_values=keep_values)
