"""`mha inspect`: build the layer, run one forward pass, print the stage table."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mha_cli.commands.options import spec_options
from mha_cli.commands.output import Format, note, stdout_console
from mha_cli.spec.spec import AttentionSpec

FORMAT = Annotated[Format, typer.Option("--format", "-f", help="table, json or markdown")]
EXPECT = Annotated[
    list[str] | None,
    typer.Option(
        "--expect",
        "-e",
        help="assert a shape (output=2,4,100, scores=10,4,6) or a figure (params=40000); "
        "exit 1 if it fails; repeatable",
        show_default=False,
    ),
]
EXPORT = Annotated[
    Path | None,
    typer.Option(
        "--export",
        help="save attention_weights (b, h, q, k), output and every stage's tensor "
        "to .pt or .safetensors",
        show_default=False,
    ),
]


def inspect(
    spec: AttentionSpec, fmt: FORMAT = Format.table, expect: EXPECT = None, export: EXPORT = None
) -> None:
    """Build the layer, run one forward pass, print every stage: shape, axes, params, FLOPs."""
    from mha_cli.expectations import check, parse_expectation, raise_if_failed
    from mha_cli.fast_start import import_heavy

    import_heavy("torch", "mha_cli.attention.run")
    from mha_cli.attention.run import run_attention, tensors_for_export
    from mha_cli.files.tensor_files import check_export_path, save_tensors

    expectations = [
        parse_expectation(text) for text in expect or []
    ]  # bad ones fail before the run
    if export is not None:
        check_export_path(export)
    trace = run_attention(spec)
    if export is not None:
        save_tensors(export, tensors_for_export(trace))
        note(f"wrote {export}")
    report = trace.report()
    results = check(expectations, report)
    emit(report, fmt, results)
    raise_if_failed(results)


def emit(report: Any, fmt: Format, results: list[dict[str, Any]]) -> None:
    if fmt is Format.json:
        from mha_cli.render.json_out import report_json

        sys.stdout.write(report_json(report, results) + "\n")
    elif fmt is Format.markdown:
        from mha_cli.render.markdown import report_markdown

        sys.stdout.write(report_markdown(report))
    else:
        from mha_cli.render.table import inspect_renderable

        stdout_console().print(inspect_renderable(report))


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("inspect")(user_errors(spec_options(inspect)))
