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
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.files.atomic import make_folder
from mha_cli.heatmaps.data import (
    ColourScale,
    HeatmapData,
    annotate_allowed,
    colour_scale,
    compose_grid,
)
from mha_cli.heatmaps.decor import (
    draw_colorbar,
    draw_footer,
    draw_panel_boxes,
    draw_titles,
    label_panels,
)
from mha_cli.heatmaps.layout import colorbar_rect, compute_layout, image_rect
from mha_cli.render.images import check_format_name, format_of_path, save_figure

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

Progress = Callable[[str], None]

CMAP = "viridis"  # dark for small weights, so neither white separators nor grey masks look alike
LARGE_CELLS = 2_000_000  # above this a render takes long enough to report its stages
PER_HEAD_QUIET = 12  # up to this many per-head files are written without progress messages


def _colour_index(grid: np.ma.MaskedArray, scale: ColourScale) -> tuple[Any, np.ndarray, Any]:
    """The colormap, each cell's index in its table, and which cells have no colour (masked
    cells and separators, NaN weights). The colormap's own table indexed as it indexes it is
    much cheaper than calling the colormap on millions of cells (its float64 lookup)."""
    import matplotlib
    import numpy as np

    cmap = matplotlib.colormaps[CMAP]
    fraction = scale.fraction(np.ma.getdata(grid))  # (rows, cols) in [0, 1], NaN if undefined
    undefined = ~np.isfinite(fraction)
    index = np.nan_to_num(fraction, nan=0.0, posinf=1.0, neginf=0.0) * cmap.N
    # As Colormap.__call__: floor of fraction x N, and 1.0 on the last colour.
    index = np.clip(index.astype(np.intp), 0, cmap.N - 1)  # (rows, cols)
    return cmap, index, np.ma.getmaskarray(grid) | undefined


def _table(cmap: Any) -> np.ndarray:
    import numpy as np

    return cmap(np.arange(cmap.N)).astype(np.float32)  # (N, 4): integers index the table


def _rgba(grid: np.ma.MaskedArray, scale: ColourScale) -> np.ndarray:
    """Colours, masked cells transparent. Colouring once here, as float32 RGBA, is several
    times cheaper than letting imshow colour (or convert from bytes) a large image."""
    cmap, index, clear = _colour_index(grid, scale)
    rgba = _table(cmap)[index]  # (rows, cols, 4)
    # Transparent where masked: the hatched grey box behind each panel shows through, and the
    # separators show the white background; a NaN weight has no colour either.
    rgba[clear, 3] = 0.0
    return rgba


def _rgba_bytes(grid: np.ma.MaskedArray, scale: ColourScale) -> np.ndarray:
    """`_rgba` as the bytes matplotlib turns it into when it draws it at whole pixels per
    cell: each channel times 255, truncated, as float32; a transparent cell all 0 (its
    colour is premultiplied by its alpha)."""
    import numpy as np

    cmap, index, clear = _colour_index(grid, scale)
    rgba = (_table(cmap) * 255).astype(np.uint8)[index]  # (rows, cols, 4)
    rgba[clear] = 0
    return rgba


def _whole_pixels(image: AxesImage, colours: np.ndarray, floats: Callable[[], np.ndarray]) -> None:
    """Draw `image` (imshow of `colours`, uint8, nearest) by repeating each cell k x k times
    where matplotlib would resample it to exactly k x k whole pixels per cell on pixel
    boundaries: the same pixels as its float32 resampling (premultiply, resample, divide,
    x 255), a few times faster. Anywhere else (a fraction of a pixel, clipped, magnified),
    matplotlib resamples the float32 colours `floats()` as before."""
    import math

    import numpy as np
    from matplotlib.transforms import Bbox, TransformedBbox

    def make_image(renderer: Any, magnification: float = 1.0, unsampled: bool = False) -> Any:
        x1, x2, y1, y2 = image.get_extent()
        bbox = Bbox(np.array([[x1, y1], [x2, y2]]))
        placed = TransformedBbox(bbox, image.get_transform())
        clip = (
            (image.get_clip_box() or image.axes.bbox)
            if image.get_clip_on()
            else image.get_figure(root=True).bbox  # type: ignore[union-attr]
        )
        inside = Bbox.intersection(placed, clip)  # as `_make_image` clips it (ordered)
        if (
            not unsampled
            and magnification == 1.0
            and image.origin == "upper"
            and inside is not None
            and abs(inside.width - abs(placed.width)) < 1e-6  # not clipped
            and abs(inside.height - abs(placed.height)) < 1e-6
        ):
            left, bottom, right, top = inside.extents
            # matplotlib's rounding to output pixels (`_make_image`, round_to_pixel_border)
            x0, y0 = math.floor(left + 0.5), math.ceil(bottom - 0.5 - 1e-8)
            x1_, y1_ = math.floor(right + 0.5 + 1e-8), math.ceil(top - 0.5)
            rows, cols = colours.shape[:2]
            k = (x1_ - x0) // cols
            aligned = all(
                abs(a - b) < 1e-6 for a, b in zip(inside.extents, (x0, y0, x1_, y1_), strict=True)
            )
            if k >= 1 and (x1_ - x0, y1_ - y0) == (k * cols, k * rows) and aligned:
                pixels = np.repeat(np.repeat(colours, k, axis=0), k, axis=1) if k > 1 else colours
                # rows bottom first, as `_make_image` hands them to the renderer
                return np.ascontiguousarray(pixels[::-1]), float(x0), float(y0), None
        return image._make_image(  # type: ignore[attr-defined]
            floats(), bbox, placed, clip, magnification, unsampled=unsampled
        )

    image.make_image = make_image  # type: ignore[method-assign]


def _annotate_cells(
    ax: Axes, grid: np.ma.MaskedArray, scale: ColourScale, cell: float, text: float
) -> None:
    """The weight, two decimals, in each unmasked cell; dark text on light colours."""
    import numpy as np

    size = min(9.0 * text, cell * 72 * 0.32)
    rows, cols = np.nonzero(~np.ma.getmaskarray(grid))
    light = scale.fraction(grid.data[rows, cols]) > 0.55
    for row, col, on_light in zip(rows, cols, light, strict=True):
        ax.text(
            int(col),
            int(row),
            f"{float(grid.data[row, col]):.2f}",
            ha="center",
            va="center",
            fontsize=size,
            color="black" if on_light else "white",
            zorder=2,
        )


def _figure(
    data: HeatmapData,
    ids: tuple[list[int], list[int]],
    scale: ColourScale,
    *,
    fmt: str,
    dpi: int,
    annotate: bool,
) -> Figure:
    """One Figure, one image Axes, one colorbar; nothing registered with pyplot."""
    from matplotlib.figure import Figure

    # A file of one panel shares its scale with the other files, a grid among its panels.
    lay = compute_layout(data, dpi, annotate, scale.note("files" if data.panel_title else "panels"))
    grid = compose_grid(data, lay.plan)
    fig = Figure(figsize=(lay.fig_w, lay.fig_h), dpi=dpi)
    ax = fig.add_axes(image_rect(lay))
    whole_pixels = lay.cell * dpi >= 1
    interpolation = "none" if fmt != "png" else ("nearest" if whole_pixels else "antialiased")
    if interpolation == "nearest":  # a png at whole pixels per cell: drawn as bytes
        colours = _rgba_bytes(grid, scale)
        image = ax.imshow(colours, interpolation=interpolation, aspect="equal", zorder=1)
        _whole_pixels(image, colours, lambda: _rgba(grid, scale))
    else:
        ax.imshow(_rgba(grid, scale), interpolation=interpolation, aspect="equal", zorder=1)
    for spine in ax.spines.values():
        spine.set_visible(False)
    draw_panel_boxes(ax, data, lay)
    label_panels(ax, data, ids, lay)
    if annotate and annotate_allowed(data):
        _annotate_cells(ax, grid, scale, lay.cell, lay.text)
    draw_colorbar(fig, fig.add_axes(colorbar_rect(lay)), scale, CMAP, lay)
    draw_titles(fig, lay)
    draw_footer(fig, data, lay)
    return fig


def grid_figure(
    data: HeatmapData,
    *,
    dpi: int = 100,
    annotate: bool = False,
    fmt: str = "png",
    scale: str = "auto",
) -> Figure:
    """The whole grid, examples down and heads across (wrapped onto more rows when there are
    many), as one matplotlib Figure; `scale` is auto, linear or log."""
    _check_data(data)
    b, h, _, _ = data.weights.shape
    ids = (list(range(b)), list(range(h)))
    colours = colour_scale(data, scale)
    return _figure(data, ids, colours, fmt=fmt, dpi=dpi, annotate=annotate)


def _check_data(data: HeatmapData) -> None:
    if data.weights.size == 0:
        raise MhaError(f"nothing to draw: attention weights have shape {data.weights.shape}")


def render_grid(
    data: HeatmapData,
    path: Path,
    *,
    dpi: int = 100,
    annotate: bool = False,
    scale: str = "auto",
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
    fig = grid_figure(data, dpi=dpi, annotate=annotate, fmt=fmt, scale=scale)
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
    scale: str = "auto",
    progress: Progress | None = None,
) -> list[Path]:
    """One file per (example, head), `example{b}_head{h}.{fmt}`, all on the same colour scale."""
    folder = Path(folder)
    fmt = check_format_name(fmt)
    _check_data(data)
    make_folder(folder, "per-head heatmaps")
    b, h, _, _ = data.weights.shape
    colours = colour_scale(data, scale)  # the whole batch's: files compare with each other
    written: list[Path] = []
    for example in range(b):
        for head in range(h):
            if progress is not None and (b * h > PER_HEAD_QUIET or data.weights.size > LARGE_CELLS):
                progress(f"writing heatmap {len(written) + 1} of {b * h}")
            one = data.panel(example, head)
            ids = ([example], [head])
            fig = _figure(one, ids, colours, fmt=fmt, dpi=dpi, annotate=annotate)
            path = folder / f"{data.row_name}{example}_head{head}.{fmt}"
            save_figure(fig, path, dpi=dpi)
            written.append(path)
    return written
