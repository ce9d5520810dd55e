"""`mha trace FILE.py:NAME`: the stage table of the user's own attention module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from mha_cli.commands.options import spec_options
from mha_cli.commands.output import FORMAT, Format, emit

TARGET = Annotated[
    str,
    typer.Argument(
        help="your attention code: FILE.py:NAME or package.module:NAME; NAME is an nn.Module "
        "class (built with the sizes below) or a function returning (module, args[, kwargs])",
        metavar="FILE.py:NAME",
        show_default=False,
    ),
]
CHECK = Annotated[
    bool,
    typer.Option(
        "--check",
        help="run mha's reference (d2l's layer) with your module's weights and inputs; say "
        "whether your attention weights and output match, and if not, where they part; "
        "exit 1 if they differ or your module fails (raises, or never calls a layer); without "
        "--check a module that raises exits 2",
    ),
]


def trace(
    options: dict[str, Any], target: TARGET, check: CHECK = False, fmt: FORMAT = Format.table
) -> None:
    """Record every tensor operation inside YOUR attention module's forward, as a stage table.

    This imports and runs your code (as pytest does): trace only code you trust. Its print()s
    go to stderr; a module that raises shows its steps up to the failing operation, then one
    line naming your line, the operation and its shapes (exit 2; 1 with --check); a module
    that calls sys.exit is an error (exit 2).
    """
    from mha_cli.errors import ExpectationFailed
    from mha_cli.learner.user_code import ModuleFailed
    from mha_cli.tracing.api import trace as run_trace

    try:
        report = run_trace(target, check=check, config=options.pop("config"), **options)
    except ModuleFailed as failed:  # the table up to where it failed, then the one line
        emit(failed.report, fmt)
        raise
    emit(report, fmt)
    if report.check is not None and not report.check.agrees:
        step = report.check.divergence
        where = f"; first step that stops matching: #{step}" if step is not None else ""
        raise ExpectationFailed(f"--check: {target} differs from the reference{where}")


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("trace")(user_errors(spec_options(trace)))
