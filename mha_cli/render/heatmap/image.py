"""Heatmap images of attention weights: one shared colour scale, masked cells hatched grey.

The whole grid is ONE image in ONE Axes: the panels are composed into a big masked array with
masked separators, and the labels and ticks are placed on that Axes by hand. d2l's
`show_heatmaps` makes one Axes and one `imshow` per panel; Axes are what cost time (about
50 ms each), so 12 examples x 12 heads take seconds there and a fraction of a second here.
Only matplotlib's object API is used (`Figure` + `savefig`): no pyplot, no global state.
Where the panels, ticks, labels and colorbar go is decided in `layout`; the numbers and the
grid arithmetic are in `data`, shared with the terminal grid.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mha_cli.errors import MhaError
from mha_cli.render.heatmap.data import (
    HeatmapData,
    annotate_allowed,
    compose_grid,
    shared_vmax,
)
from mha_cli.render.heatmap.layout import (
    colorbar_rect,
    compute_layout,
    draw_footer,
    draw_panel_boxes,
    image_rect,
    label_panels,
)
from mha_cli.render.images import check_format_name, format_of_path, save_figure

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Progress = Callable[[str], None]

CMAP = "viridis"  # dark for small weights, so neither white separators nor grey masks look alike
LARGE_CELLS = 2_000_000  # above this a render takes long enough to report its stages
PER_HEAD_QUIET = 12  # up to this many per-head files are written without progress messages


def _rgba(grid: np.ma.MaskedArray, vmax: float) -> np.ndarray:
    """Colours, masked cells transparent. Colouring once here, as float32 RGBA, is several
    times cheaper than letting imshow colour (or convert from bytes) a large image."""
    import matplotlib
    import numpy as np

    scaled = np.clip(np.ma.getdata(grid) / vmax, 0.0, 1.0)
    rgba = matplotlib.colormaps[CMAP](scaled).astype(np.float32)  # (rows, cols, 4)
    # Transparent where masked: the hatched grey box behind each panel shows through, and the
    # separators show the white background.
    rgba[np.ma.getmaskarray(grid), 3] = 0.0
    return rgba


def _annotate_cells(ax: Axes, grid: np.ma.MaskedArray, vmax: float, cell: float) -> None:
    """The weight, two decimals, in each unmasked cell; dark text on light colours."""
    import numpy as np

    size = min(9.0, cell * 72 * 0.32)
    for row, col in zip(*np.nonzero(~np.ma.getmaskarray(grid)), strict=True):
        value = float(grid.data[row, col])
        ax.text(
            col,
            row,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=size,
            color="black" if value / vmax > 0.55 else "white",
            zorder=2,
        )


def _figure(
    data: HeatmapData,
    ids: tuple[list[int], list[int]],
    vmax: float,
    *,
    fmt: str,
    dpi: int,
    annotate: bool,
    scope: str = "panels",
) -> Figure:
    """One Figure, one image Axes, one colorbar; nothing registered with pyplot."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    grid = compose_grid(data)
    # `scope` is "panels" for the grid, "files" for per-head files (one scale across all files).
    note = (
        f"One colour scale, 0 to {vmax:.3g}, is shared by all {scope}, so colours compare "
        "across heads; d2l's show_heatmaps scales each panel separately under one colorbar."
    )
    lay = compute_layout(data, grid.shape, dpi, annotate, note)
    fig = Figure(figsize=(lay.fig_w, lay.fig_h), dpi=dpi)
    ax = fig.add_axes(image_rect(lay))
    whole_pixels = lay.cell * dpi >= 1
    interpolation = "none" if fmt != "png" else ("nearest" if whole_pixels else "antialiased")
    ax.imshow(_rgba(grid, vmax), interpolation=interpolation, aspect="equal", zorder=1)
    for spine in ax.spines.values():
        spine.set_visible(False)
    draw_panel_boxes(ax, data)
    label_panels(ax, data, ids, lay.cell)
    if annotate and annotate_allowed(data):
        _annotate_cells(ax, grid, vmax, lay.cell)
    cax = fig.add_axes(colorbar_rect(lay))
    scale = ScalarMappable(Normalize(0, vmax), matplotlib.colormaps[CMAP])
    cbar = fig.colorbar(scale, cax=cax)
    cbar.ax.tick_params(labelsize=8)
    cbar.set_label(f"attention weight\n(shared by all {scope})", fontsize=9)
    fig.text(
        0.5, 1 - 0.1 / lay.fig_h, "\n".join(lay.title_lines), ha="center", va="top", fontsize=12
    )
    draw_footer(fig, data, lay)
    return fig


def grid_figure(
    data: HeatmapData, *, dpi: int = 100, annotate: bool = False, fmt: str = "png"
) -> Figure:
    """The whole grid, examples down and heads across, as one matplotlib Figure."""
    _check_data(data)
    b, h, _, _ = data.weights.shape
    ids = (list(range(b)), list(range(h)))
    return _figure(data, ids, shared_vmax(data), fmt=fmt, dpi=dpi, annotate=annotate)


def _make_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise MhaError(f"cannot write per-head heatmaps into {folder}: it is a file; name a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MhaError(
            f"cannot create folder {folder}: {exc.strerror}; choose a writable path"
        ) from None


def _check_data(data: HeatmapData) -> None:
    if data.weights.size == 0:
        raise MhaError(f"nothing to draw: attention weights have shape {data.weights.shape}")


def render_grid(
    data: HeatmapData,
    path: Path,
    *,
    dpi: int = 100,
    annotate: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the grid (examples down, heads across) to `path`; format from its extension."""
    path = Path(path)
    fmt = format_of_path(path, "heatmap")
    _check_data(data)
    b, h, _, _ = data.weights.shape
    # Slow cases: many cells, or a thousand and more printed numbers (texts are costly).
    slow = data.weights.size > LARGE_CELLS or (
        annotate and annotate_allowed(data) and data.weights.size > 1000
    )
    say = progress if progress is not None and slow else None
    if say:
        say(f"drawing {b * h} panels ({data.weights.size:,} cells)")
    fig = grid_figure(data, dpi=dpi, annotate=annotate, fmt=fmt)
    if say:
        say(f"writing {path}")
    save_figure(fig, path, dpi=dpi)
    return path


def render_per_head(
    data: HeatmapData,
    folder: Path,
    *,
    fmt: str = "png",
    dpi: int = 100,
    annotate: bool = False,
    progress: Progress | None = None,
) -> list[Path]:
    """One file per (example, head), `example{b}_head{h}.{fmt}`, all on the same colour scale."""
    folder = Path(folder)
    fmt = check_format_name(fmt)
    _check_data(data)
    _make_folder(folder)
    b, h, _, _ = data.weights.shape
    vmax = shared_vmax(data)  # the whole batch's scale, so files compare with each other
    written: list[Path] = []
    for example in range(b):
        for head in range(h):
            if progress is not None and (b * h > PER_HEAD_QUIET or data.weights.size > LARGE_CELLS):
                progress(f"writing heatmap {len(written) + 1} of {b * h}")
            one = data.panel(example, head)
            fig = _figure(
                one, ([example], [head]), vmax, fmt=fmt, dpi=dpi, annotate=annotate, scope="files"
            )
            path = folder / f"example{example}_head{head}.{fmt}"
            save_figure(fig, path, dpi=dpi)
            written.append(path)
    return written
