"""`mha heatmap`: the same forward pass as `mha inspect`; saves per-head attention heatmaps."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from mha_cli.commands.options import DPI, default_text, out_option, spec_options
from mha_cli.commands.output import guarded_stdout, note, stdout_console, wrote
from mha_cli.commands.text_options import text_options

OUT = Annotated[
    str | None,
    out_option(
        help="image file (.png, .svg, .pdf), an interactive page (.html: self-contained, opens "
        "offline), or a folder (an existing one, or ending in '/': created if missing)"
        + default_text("./attention.png; with --per-head ./attention_heads/"),
        show_default=False,
    ),
]
PER_HEAD = Annotated[
    bool, typer.Option("--per-head", help="one file per (example, head) in the --out folder")
]
ANNOTATE = Annotated[
    bool, typer.Option("--annotate", help="print each weight in its cell (panels up to 16 x 16)")
]
TERMINAL = Annotated[
    bool,
    typer.Option(
        "--terminal", help="draw the grid in the terminal instead of a file (unless --out is given)"
    ),
]
IMAGE_FORMAT = Annotated[
    str | None,
    typer.Option(
        "--image-format",
        help="png, svg or pdf, for files named by a folder --out (and --per-head files)"
        + default_text("png, or --out's extension"),
        show_default=False,
    ),
]
MODULE = Annotated[
    str | None,
    typer.Option(
        "--module",
        help="draw YOUR module's attention weights instead (FILE.py:NAME or package.module:NAME, "
        "traced as `mha trace` does; this imports and runs your code)",
        show_default=False,
    ),
]


class Scale(str, Enum):
    auto = "auto"
    linear = "linear"
    log = "log"


SCALE = Annotated[
    Scale,
    typer.Option(
        "--scale",
        help="colour scale of the weights: linear, log, or auto (log when 90% of the weights "
        "are under a quarter of the largest, as over hundreds of keys)",
    ),
]
FORCE = Annotated[
    bool,
    typer.Option(
        "--force", help="with --per-head, write more than 256 files (one per example and head)"
    ),
]
EXPORT = Annotated[
    Path | None,
    typer.Option(
        "--export",
        help="save the plotted numbers, as `mha inspect --export` does",
        show_default=False,
    ),
]
QUERIES_RANGE = Annotated[
    str | None,
    typer.Option(
        "--queries-range",
        help="draw queries START:STOP only (each row's softmax still runs over every key), at "
        "full resolution where the picture has the pixels",
        show_default=False,
    ),
]
KEYS_RANGE = Annotated[
    str | None,
    typer.Option("--keys-range", help="draw keys START:STOP only, e.g. 0:128", show_default=False),
]


class Reduce(str, Enum):
    max = "max"
    mean = "mean"


REDUCE = Annotated[
    Reduce,
    typer.Option(
        "--reduce",
        help="at long context each pixel covers several weights: their max (a one-key sink "
        "column stays visible) or mean",
    ),
]


def heatmap(
    options: dict[str, Any],
    out: OUT = None,
    per_head: PER_HEAD = False,
    dpi: DPI = 100,
    annotate: ANNOTATE = False,
    terminal: TERMINAL = False,
    image_format: IMAGE_FORMAT = None,
    scale: SCALE = Scale.auto,
    export: EXPORT = None,
    module: MODULE = None,
    force: FORCE = False,
    queries_range: QUERIES_RANGE = None,
    keys_range: KEYS_RANGE = None,
    reduce: REDUCE = Reduce.max,
) -> None:
    """Run the layer and save its attention weights as a grid: rows are examples, columns heads."""
    from mha_cli.commands.progress_bar import stderr_progress
    from mha_cli.heatmaps.api import save_heatmaps
    from mha_cli.heatmaps.data import annotate_allowed

    with stderr_progress() as progress:
        files = save_heatmaps(
            out=out,
            per_head=per_head,
            image_format=image_format,
            dpi=dpi,
            annotate=annotate,
            scale=scale.value,
            export=export,
            draw=not (terminal and out is None),
            progress=progress.say,
            steps=progress.steps,
            module=module,
            force=force,
            queries_range=queries_range,
            keys_range=keys_range,
            reduce=reduce.value,
            config=options.pop("config"),
            **options,
        )
    for line in files.report.summary.notes:
        note(f"note: {line}")
    from mha_cli.render.head_roles import named_role_lines

    for line in named_role_lines(files.report.summary):
        note(f"note: {line}")
    if annotate and not annotate_allowed(files.data):
        note("note: --annotate skipped: panels are larger than 16 x 16, too small for numbers")
    if terminal:
        from mha_cli.heatmaps.terminal import terminal_grid

        console = stdout_console()
        with guarded_stdout():
            console.print(terminal_grid(files.data, max_width=console.width, scale=scale.value))
    if export is not None:
        wrote(export)
    for path in files.written:
        wrote(path)


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("heatmap")(user_errors(spec_options(text_options(heatmap))))
