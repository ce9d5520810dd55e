"""`mha_cli.heatmap(...)`: the same forward pass as `inspect`; its attention weights as heatmaps."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.files.atomic import make_folder
from mha_cli.heatmaps.page import is_page
from mha_cli.layer.api import run
from mha_cli.render.images import check_format_name, format_of_path
from mha_cli.spec.entry import load_heavy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mha_cli.heatmaps.data import HeatmapData
    from mha_cli.layer.report import Report
    from mha_cli.layer.streamed import StreamedRun
    from mha_cli.tracing.report import TraceReport

DEFAULT_STEM = "attention"
DEFAULT_PER_HEAD_FOLDER = "attention_heads"
# --per-head writes one file per (example, head); past this many it asks for `force`: 100
# examples of 100 heads would be 10,000 files and a quarter of an hour.
MAX_PER_HEAD_FILES = 256
Progress = Callable[[str], None]


def heatmap(
    *,
    config: Any = None,
    dpi: int = 100,
    annotate: bool = False,
    scale: str = "auto",
    module: Any = None,
    queries_range: str | None = None,
    keys_range: str | None = None,
    reduce: str = "max",
    out: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Figure | Path:
    """The attention weights of the layer the options describe, as a matplotlib Figure: rows
    are batch examples, columns are heads, each panel queries by keys; masked keys hatched.

    `scale` is the colour scale: linear, log, or auto (log when most weights are tiny).
    `module` ("FILE.py:NAME", or the class or function itself) draws that module's own
    weights instead, traced as `mha_cli.trace` does (this runs its code).
    `queries_range`, `keys_range` ("A:B") draw a window; long contexts are computed one head
    at a time, each pixel the `reduce` (max or mean) of the weights it covers.
    `out` names a file to write instead (an image, or `view.html`: the interactive page);
    then the path written is returned."""
    check_scale(scale)
    window = {"queries_range": queries_range, "keys_range": keys_range, "reduction": reduce}
    if out is not None:
        files = save_heatmaps(
            out=out,
            dpi=dpi,
            annotate=annotate,
            scale=scale,
            config=config,
            module=module,
            queries_range=queries_range,
            keys_range=keys_range,
            reduce=reduce,
            **options,
        )
        return files.written[0]
    _, data = weights_to_draw(config, options, module=module, window=window)
    from mha_cli.heatmaps.image import grid_figure

    return grid_figure(data, dpi=dpi, annotate=annotate, scale=scale)


def weights_to_draw(
    config: Any,
    options: dict[str, Any],
    *,
    module: Any = None,
    export: str | os.PathLike[str] | None = None,
    window: dict[str, Any] | None = None,
    steps: Callable[[int, int], None] | None = None,
) -> tuple[Report | TraceReport | StreamedRun, HeatmapData]:
    """The run (mha's layer, or the user's module traced) and the numbers to draw. `window`
    holds queries_range, keys_range and reduction (`mha_cli.heatmaps.long_context`)."""
    window = window or {}
    if module is not None and (window.get("queries_range") or window.get("keys_range")):
        raise MhaError(
            "--queries-range and --keys-range draw mha's own layer; drop them with --module"
        )
    from mha_cli.heatmaps.model_view import is_every_layer, model_view

    if module is None and is_every_layer(options):  # --layer all --text: the model view
        if export is not None:
            raise MhaError("--export saves one layer's tensors; drop it with --layer all")
        return model_view(config, options)
    if module is None:
        from mha_cli.heatmaps.long_context import streamed_weights

        streamed = streamed_weights(config, options, export=export, steps=steps, **window)
        if streamed is not None:
            return streamed
    if module is None:
        report: Report | TraceReport = run(
            config, options, export=export, value_ranges=False, needs_values="heatmaps"
        )
    else:
        from mha_cli.tracing.api import trace_report

        if any(options.get(name) for name in ("text", "text_file")):
            raise MhaError(
                "--text runs a Hugging Face model's layer, --module your own module; "
                "drop one of them"
            )

        if export is not None:
            from mha_cli.files.tensor_files import check_export_path

            check_export_path(Path(export))
        report = trace_report(module, config, options, keep_values=True)
    load_heavy("matplotlib.figure", "mha_cli.heatmaps.image")
    from mha_cli.heatmaps import plot_data

    if module is None:
        return report, plot_data.heatmap_data(report)  # type: ignore[arg-type]
    data = plot_data.traced_heatmap_data(report)  # type: ignore[arg-type]
    if export is not None:
        from mha_cli.files.tensor_files import save_tensors

        weights, output = report.attention_weights, report.output_tensor  # type: ignore[union-attr]
        save_tensors(Path(export), {"attention_weights": weights, "output": output})
    return report, data


@dataclass
class HeatmapFiles:
    """What `save_heatmaps` did: the run, the numbers drawn, and the files written."""

    report: Report | TraceReport | StreamedRun  # mha's layer, or the user's module (--module)
    data: HeatmapData
    written: list[Path] = field(default_factory=list)


def save_heatmaps(
    *,
    out: str | os.PathLike[str] | None = None,
    per_head: bool = False,
    image_format: str | None = None,
    dpi: int = 100,
    annotate: bool = False,
    scale: str = "auto",
    export: str | os.PathLike[str] | None = None,
    draw: bool = True,
    progress: Progress | None = None,
    config: Any = None,
    module: Any = None,
    force: bool = False,
    queries_range: str | None = None,
    keys_range: str | None = None,
    reduce: str = "max",
    steps: Callable[[int, int], None] | None = None,
    **options: Any,
) -> HeatmapFiles:
    """Run the layer and write its heatmaps: one grid image, or one file per (example, head).

    `out` is a file (its extension names the format) or a folder (an existing one, or a path
    ending in '/', created when missing). `draw=False` runs without
    writing images (for a terminal-only look). `module` draws a traced module's own weights.
    `force` lets `per_head` write more than MAX_PER_HEAD_FILES files.
    `queries_range`, `keys_range` and `reduce` as for `heatmap`; `steps(done, total)` hears
    of each block of a streamed run.
    """
    check_scale(scale)
    target = _target(out, per_head, image_format) if draw else None
    window = {"queries_range": queries_range, "keys_range": keys_range, "reduction": reduce}
    report, data = weights_to_draw(
        config, options, module=module, export=export, window=window, steps=steps
    )
    from mha_cli.heatmaps import image

    files = HeatmapFiles(report, data)
    if target is None:
        return files
    path, fmt = target
    if fmt == "html":
        from mha_cli.heatmaps.page import write_page

        files.written = [write_page(path, data, report=report, scale=scale)]
    elif per_head:
        check_per_head_count(data, force)
        files.written = image.render_per_head(
            data, path, fmt=fmt, dpi=dpi, annotate=annotate, scale=scale, progress=progress
        )
    else:
        make_folder(path.parent, "the heatmap")  # a folder --out is created here
        files.written = [
            image.render_grid(
                data, path, dpi=dpi, annotate=annotate, scale=scale, progress=progress
            )
        ]
    return files


def _target(
    out: str | os.PathLike[str] | None, per_head: bool, image_format: str | None
) -> tuple[Path, str]:
    """(where to write, the format): checked before the run, which can take a while."""
    fmt = check_format_name(image_format) if image_format is not None else None
    text = "" if out is None else os.fspath(out)
    path = Path(text) if text else None
    is_folder = path is not None and (text.endswith(("/", os.sep)) or path.is_dir())
    if path is not None and not is_folder and is_page(text):
        return _page_target(path, per_head, image_format)
    if per_head:
        if path is not None and not is_folder and path.suffix:
            raise MhaError(
                f"--out {text}: --per-head writes one file per (example, head) into a folder; "
                f"give a folder (e.g. --out heads/) and the format with --image-format"
            )
        return (path or Path(DEFAULT_PER_HEAD_FOLDER)), fmt or "png"
    if path is None or is_folder:
        folder = path or Path(".")
        return folder / f"{DEFAULT_STEM}.{fmt or 'png'}", fmt or "png"
    named = format_of_path(path, "heatmap")
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise MhaError(
            f"cannot write heatmap {path}: folder {path.parent} does not exist; create it first, "
            f"or give a folder --out ({path.parent}/) to have it created"
        )
    if fmt is not None and fmt != named:
        raise MhaError(
            f"--out {text} names a .{named} file but --image-format is {fmt}; "
            "drop one of them or make them agree"
        )
    return path, named


def _page_target(path: Path, per_head: bool, image_format: str | None) -> tuple[Path, str]:
    """`--out view.html`: the interactive page, every head in one file."""
    if per_head:
        raise MhaError(
            f"--out {path}: the page holds every head already; drop --per-head (or give a "
            "folder for one image per head)"
        )
    if image_format is not None:
        raise MhaError(
            f"--out {path} is the interactive page, not an image; drop --image-format "
            f"{image_format}, or name an image file (.png, .svg, .pdf)"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MhaError(f"cannot write page {path}: folder {folder} does not exist; create it first")
    return path, "html"


def check_per_head_count(data: HeatmapData, force: bool) -> None:
    """Refuse a number of per-head files nobody wants by accident, before writing any."""
    examples, heads = data.weights.shape[:2]
    if examples * heads > MAX_PER_HEAD_FILES and not force:
        raise MhaError(
            f"--per-head would write {examples * heads} files ({examples} examples x {heads} "
            f"heads), more than {MAX_PER_HEAD_FILES}; add --force to write them all, or use "
            "fewer examples or heads (--batch, --heads), or the one grid image (drop --per-head)"
        )


def check_scale(scale: str) -> str:
    """`auto`, `linear` or `log`, checked before the run."""
    from mha_cli.heatmaps.data import SCALES

    if scale not in SCALES:
        raise MhaError(f"--scale {scale!r} is not one of {', '.join(SCALES)}")
    return scale
