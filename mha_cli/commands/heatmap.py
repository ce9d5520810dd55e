"""`mha heatmap`: the same forward pass as `mha inspect`; saves per-head attention heatmaps."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mha_cli.commands.options import spec_options
from mha_cli.commands.output import note, stdout_console
from mha_cli.spec.spec import AttentionSpec

DEFAULT_NAME = "attention.png"

OUT = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help=f"image file (.png, .svg, .pdf) or folder [default: ./{DEFAULT_NAME}]",
        show_default=False,
    ),
]
PER_HEAD = Annotated[
    bool, typer.Option("--per-head", help="one file per (example, head) in the --out folder")
]
DPI = Annotated[int, typer.Option("--dpi", help="resolution of PNG images", min=10, max=1200)]
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
    str, typer.Option("--image-format", help="format of --per-head files: png, svg or pdf")
]
EXPORT = Annotated[
    Path | None,
    typer.Option(
        "--export",
        help="save the plotted numbers, as `mha inspect --export` does",
        show_default=False,
    ),
]


def heatmap(
    spec: AttentionSpec,
    out: OUT = None,
    per_head: PER_HEAD = False,
    dpi: DPI = 100,
    annotate: ANNOTATE = False,
    terminal: TERMINAL = False,
    image_format: IMAGE_FORMAT = "png",
    export: EXPORT = None,
) -> None:
    """Run the layer and save its attention weights as a grid: rows are examples, columns heads."""
    from mha_cli.fast_start import import_heavy

    import_heavy(
        "torch", "mha_cli.attention.run", "matplotlib.figure", "mha_cli.render.heatmap.image"
    )
    from mha_cli.attention.plot_data import heatmap_data
    from mha_cli.attention.run import run_attention, tensors_for_export
    from mha_cli.files.tensor_files import check_export_path, save_tensors
    from mha_cli.render.heatmap import image as render

    # Refuse bad paths before the run, which can take a while.
    if export is not None:
        check_export_path(export)
    if not per_head and not (terminal and out is None):
        render.check_format(_grid_path(out))
    trace = run_attention(spec, value_ranges=False)  # the picture shows the weights themselves
    data = heatmap_data(trace)
    for line in trace.summary.notes:
        note(f"note: {line}")
    if annotate and not render.annotate_allowed(data):
        note(
            "note: --annotate skipped: panels are larger than 16 x 16, too small to read numbers in"
        )
    if terminal:
        from mha_cli.render.heatmap.terminal import terminal_grid

        stdout_console().print(terminal_grid(data))
    if export is not None:
        save_tensors(export, tensors_for_export(trace))
        typer.echo(str(export))
    if terminal and out is None:
        return
    with _progress() as progress:
        if per_head:
            written = render.render_per_head(
                data,
                out or Path("attention_heads"),
                fmt=image_format,
                dpi=dpi,
                annotate=annotate,
                progress=progress,
            )
        else:
            written = [
                render.render_grid(
                    data, _grid_path(out), dpi=dpi, annotate=annotate, progress=progress
                )
            ]
    for path in written:
        typer.echo(str(path))


def _grid_path(out: Path | None) -> Path:
    if out is None:
        return Path(DEFAULT_NAME)
    return out / DEFAULT_NAME if out.is_dir() or str(out).endswith(("/", "\\")) else out


class _progress:
    """Shows the renderer's progress messages on stderr (as a spinner in a terminal)."""

    def __enter__(self) -> Callable[[str], None]:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.status = self.console.status("rendering") if sys.stderr.isatty() else None
        if self.status is not None:
            self.status.start()
        return self.update

    def update(self, message: str) -> None:
        if self.status is not None:
            self.status.update(message)
        else:
            note(message)

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()


def register(app: typer.Typer, user_errors: Callable[..., Any]) -> None:
    app.command("heatmap")(user_errors(spec_options(heatmap)))
