"""Heatmap images of attention weights: one shared colour scale, masked cells hatched grey.

The whole grid is ONE image in ONE Axes: the panels are composed into a big masked array with
masked separators, and the labels and ticks are placed on that Axes by hand. d2l's
`show_heatmaps` makes one Axes and one `imshow` per panel; Axes are what cost time (about
50 ms each), so 12 examples x 12 heads take seconds there and a fraction of a second here.
Only matplotlib's object API is used (`Figure` + `savefig`): no pyplot, no global state.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mha_cli.atomic import atomic_path
from mha_cli.errors import MhaError

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Progress = Callable[[str], None]

FORMATS = ("png", "svg", "pdf")
CMAP = "viridis"  # dark for small weights, so neither white separators nor grey masks look alike
MASK_FACE = "#d4d4d4"
MASK_HATCH = "#8a8a8a"
MASK_LABEL = "masked (padding / causal)"
LARGE_CELLS = 2_000_000  # above this a render takes long enough to report its stages
PER_HEAD_QUIET = 12  # up to this many per-head files are written without progress messages
ANNOTATE_MAX_SIDE = 16  # a panel's queries and keys, each at most this, to print its numbers
ANNOTATE_MAX_CELLS = 4096  # all panels together: beyond this the texts cost seconds

# Sizes in inches. Margins are fixed so the image size is known before drawing (no
# `bbox_inches="tight"`, which draws twice).
PANEL_IN = 1.6  # preferred size of a panel's longer side
MAX_CELL_IN = 0.3
ANNOTATE_CELL_IN = 0.36  # room for "0.33" in each cell
MAX_IMAGE_IN = 22.0  # soft limit of the image's width and height
HARD_MAX_IMAGE_IN = 40.0  # limit even when that leaves a cell less than one pixel
MIN_FIG_W = 6.0
LEFT_IN, ROW_LABELS_IN, CBAR_GAP_IN, CBAR_W_IN, CBAR_LABELS_IN = 0.8, 0.95, 0.15, 0.15, 0.85
TITLE_LINE_IN, HEAD_LABELS_IN = 0.24, 0.3
TICKS_IN, XLABEL_IN, LEGEND_IN, NOTE_LINE_IN = 0.28, 0.22, 0.26, 0.16
MIN_CBAR_IN, MAX_CBAR_IN = 1.6, 4.0  # tall enough for its label, short enough to read


@dataclass(frozen=True)
class HeatmapData:
    """Attention weights to draw, and which key positions are masked."""

    weights: np.ndarray  # (b, h, q, k) float: the exact numbers the layer computed
    masked: np.ndarray  # (b, h, q, k) bool, or broadcastable to it: True where masked
    title: str  # e.g. "attention weights, dot-product, 5 heads, valid_lens [3, 2]"
    query_label: str = "queries"
    key_label: str = "keys"

    def __post_init__(self) -> None:
        import numpy as np

        weights = np.asarray(self.weights)
        if weights.ndim != 4:
            raise ValueError(f"weights must be (batch, heads, queries, keys), got {weights.shape}")
        # A causal mask often arrives as (1, 1, q, k): broadcast it once, read-only, no copy.
        masked = np.broadcast_to(np.asarray(self.masked, dtype=bool), weights.shape)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "masked", masked)


def check_format(path: Path) -> str:
    """The image format named by `path`'s extension, or MhaError naming the accepted ones."""
    return _format(Path(path).suffix, f"heatmap {path}")


def _format(extension: str, target: str) -> str:
    fmt = extension.lower().lstrip(".")
    if fmt not in FORMATS:
        shown = f"'.{fmt}'" if fmt else "no extension"
        raise MhaError(
            f"cannot write {target}: {shown} is not an image format; use .png, .svg or .pdf"
        )
    return fmt


def annotate_allowed(data: HeatmapData) -> bool:
    """True when `--annotate` can print every weight: small panels, not too many cells."""
    b, h, q, k = data.weights.shape
    return max(q, k) <= ANNOTATE_MAX_SIDE and b * h * q * k <= ANNOTATE_MAX_CELLS


def shared_vmax(data: HeatmapData) -> float:
    """Top of the one colour scale: the largest unmasked weight (1.0 if there is none)."""
    import numpy as np

    visible = data.weights[~data.masked]
    top = float(np.nanmax(visible)) if visible.size else 0.0
    return top if top > 0 else 1.0


def separator_cells(data: HeatmapData) -> int:
    """Width of the gap between panels, in cells: a few pixels at any panel size."""
    _, _, q, k = data.weights.shape
    return max(1, round(0.06 * max(q, k)))


def panel_slices(data: HeatmapData, example: int, head: int) -> tuple[slice, slice]:
    """Rows and columns of `compose_grid(data)` that hold panel (example, head)."""
    _, _, q, k = data.weights.shape
    gap = separator_cells(data)
    top, left = example * (q + gap), head * (k + gap)
    return slice(top, top + q), slice(left, left + k)


def compose_grid(data: HeatmapData) -> np.ma.MaskedArray:
    """All panels in one array, examples down and heads across, separators and masks masked."""
    import numpy as np

    b, h, q, k = data.weights.shape
    gap = separator_cells(data)
    pad = ((0, 0), (0, 0), (0, gap), (0, gap))
    values = np.pad(data.weights, pad)  # (b, h, q+gap, k+gap)
    hidden = np.pad(data.masked, pad, constant_values=True)  # separators are masked too
    # (b, h, q', k') -> (b, q', h, k') -> (b q', h k'), then drop the trailing separator.
    values = values.transpose(0, 2, 1, 3).reshape(b * (q + gap), h * (k + gap))
    hidden = hidden.transpose(0, 2, 1, 3).reshape(b * (q + gap), h * (k + gap))
    return np.ma.MaskedArray(values[:-gap, :-gap], mask=hidden[:-gap, :-gap])


@dataclass(frozen=True)
class _Layout:
    """Where everything goes, in inches; computed before any drawing."""

    cell: float
    image_w: float
    image_h: float
    fig_w: float
    fig_h: float
    left: float  # left edge of the image
    bottom: float  # bottom edge of the image
    title_lines: list[str]
    note_lines: list[str]


def _cell_inches(grid_shape: tuple[int, int], side: int, dpi: int, annotate: bool) -> float:
    rows, cols = grid_shape
    cell = min(PANEL_IN / side, MAX_CELL_IN)
    if annotate:
        cell = max(cell, ANNOTATE_CELL_IN)
    cell = min(cell, MAX_IMAGE_IN / cols, MAX_IMAGE_IN / rows)
    # At least one pixel per cell where the figure stays sane, so no weight is averaged away.
    cell = max(cell, min(1 / dpi, HARD_MAX_IMAGE_IN / cols, HARD_MAX_IMAGE_IN / rows))
    # Whole pixels per cell: nearest-neighbour scaling then gives every cell the same size.
    return int(cell * dpi) / dpi if cell * dpi >= 1 else cell


def _wrap(text: str, width_in: float, points: float) -> list[str]:
    chars = max(20, int(width_in * 72 / (points * 0.55)))  # ~0.55 em per character
    return [part for line in text.splitlines() for part in textwrap.wrap(line, chars) or [""]]


def _layout(
    data: HeatmapData, grid_shape: tuple[int, int], dpi: int, annotate: bool, note: str
) -> _Layout:
    _, _, q, k = data.weights.shape
    cell = _cell_inches(grid_shape, max(q, k), dpi, annotate)
    image_w, image_h = grid_shape[1] * cell, grid_shape[0] * cell
    right = ROW_LABELS_IN + CBAR_GAP_IN + CBAR_W_IN + CBAR_LABELS_IN
    fig_w = max(MIN_FIG_W, LEFT_IN + image_w + right)
    title_lines = _wrap(data.title, fig_w - 0.4, 12)
    note_lines = _wrap(note, fig_w - 0.4, 8)
    # A flat image (one query) still gets a colorbar tall enough for its label: room above and
    # below the image for the part of the colorbar that sticks out.
    pad = max(0.0, MIN_CBAR_IN - image_h) / 2
    bottom = TICKS_IN + XLABEL_IN + LEGEND_IN + NOTE_LINE_IN * len(note_lines) + 0.1 + pad
    top = TITLE_LINE_IN * len(title_lines) + HEAD_LABELS_IN + 0.15 + pad
    left = LEFT_IN + (fig_w - (LEFT_IN + image_w + right)) / 2  # centre a narrow image

    def whole(inches: float) -> float:  # the image's edges on pixel boundaries
        return round(inches * dpi) / dpi

    return _Layout(
        cell,
        image_w,
        image_h,
        whole(fig_w),
        whole(bottom + image_h + top),
        whole(left),
        whole(bottom),
        title_lines,
        note_lines,
    )


def _tick_step(cell_in: float, count: int, label_in: float) -> int:
    """Smallest 1-2-5 step whose tick labels do not collide (spacing >= 1.8 labels)."""
    step, decade = 1, 1
    while step < count and step * cell_in < 1.8 * label_in:
        step = {1: 2, 2: 5, 5: 10}[step // decade] * decade
        decade = step if step // decade == 10 else decade
    return step


def _ticks(count: int, panels: int, offset: int, step: int) -> tuple[list[int], list[str]]:
    """Tick positions and labels: 0, step, 2*step... inside each panel along one axis."""
    inner = range(0, count, step)
    positions = [p * offset + i for p in range(panels) for i in inner]
    return positions, [str(i) for i in inner] * panels


def _label_panels(
    ax: Axes, data: HeatmapData, ids: tuple[list[int], list[int]], cell: float
) -> None:
    """Integer ticks per panel, "head h" above each column, "example b" right of each row."""
    _, _, q, k = data.weights.shape
    gap = separator_cells(data)
    x_step = _tick_step(cell, k, (len(str(k - 1)) + 1) * 8 * 0.6 / 72)
    y_step = _tick_step(cell, q, 8 * 1.3 / 72)
    ax.set_xticks(*_ticks(k, len(ids[1]), k + gap, x_step))
    ax.set_yticks(*_ticks(q, len(ids[0]), q + gap, y_step))
    ax.tick_params(labelsize=8, length=2.5, pad=1.5)
    ax.set_xlabel(data.key_label, fontsize=10)
    ax.set_ylabel(data.query_label, fontsize=10)
    for i, head in enumerate(ids[1]):
        ax.annotate(
            f"head {head}",
            (i * (k + gap) + (k - 1) / 2, 1),
            xycoords=ax.get_xaxis_transform(),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=10,
        )
    for i, example in enumerate(ids[0]):
        ax.annotate(
            f"example {example}",
            (1, i * (q + gap) + (q - 1) / 2),
            xycoords=ax.get_yaxis_transform(),
            xytext=(6, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=10,
        )


def _panel_boxes(ax: Axes, data: HeatmapData) -> None:
    """A hatched grey box behind each panel (shows through masked cells) and a thin frame."""
    from matplotlib.patches import Rectangle

    b, h, q, k = data.weights.shape
    for example in range(b):
        for head in range(h):
            rows, cols = panel_slices(data, example, head)
            xy = (cols.start - 0.5, rows.start - 0.5)
            if data.masked[example, head].any():
                ax.add_patch(
                    Rectangle(
                        xy,
                        k,
                        q,
                        facecolor=MASK_FACE,
                        hatch="////",
                        hatchcolor=MASK_HATCH,
                        linewidth=0,
                        zorder=0,
                    )
                )
            ax.add_patch(
                Rectangle(xy, k, q, fill=False, edgecolor="#555555", linewidth=0.6, zorder=3)
            )


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


def _footer(fig: Figure, data: HeatmapData, layout: _Layout) -> None:
    """The legend entry for masked cells and the note about the shared colour scale."""
    from matplotlib.patches import Patch

    x = 0.2 / layout.fig_w
    y = NOTE_LINE_IN * len(layout.note_lines) + 0.1
    if data.masked.any():
        patch = Patch(
            facecolor=MASK_FACE,
            hatch="////",
            hatchcolor=MASK_HATCH,
            edgecolor="#555555",
            linewidth=0.6,
            label=MASK_LABEL,
        )
        fig.legend(
            handles=[patch],
            loc="lower left",
            bbox_to_anchor=(x, y / layout.fig_h),
            frameon=False,
            fontsize=9,
            borderaxespad=0,
            handlelength=2.2,
        )
    fig.text(
        x,
        0.08 / layout.fig_h,
        "\n".join(layout.note_lines),
        fontsize=8,
        color="#333333",
        ha="left",
        va="bottom",
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
    lay = _layout(data, grid.shape, dpi, annotate, note)
    fig = Figure(figsize=(lay.fig_w, lay.fig_h), dpi=dpi)
    ax = fig.add_axes(
        (
            lay.left / lay.fig_w,
            lay.bottom / lay.fig_h,
            lay.image_w / lay.fig_w,
            lay.image_h / lay.fig_h,
        )
    )
    whole_pixels = lay.cell * dpi >= 1
    interpolation = "none" if fmt != "png" else ("nearest" if whole_pixels else "antialiased")
    ax.imshow(_rgba(grid, vmax), interpolation=interpolation, aspect="equal", zorder=1)
    for spine in ax.spines.values():
        spine.set_visible(False)
    _panel_boxes(ax, data)
    _label_panels(ax, data, ids, lay.cell)
    if annotate and annotate_allowed(data):
        _annotate_cells(ax, grid, vmax, lay.cell)
    cbar_h = min(max(lay.image_h, MIN_CBAR_IN), MAX_CBAR_IN)
    cax = fig.add_axes(
        (
            (lay.left + lay.image_w + ROW_LABELS_IN + CBAR_GAP_IN) / lay.fig_w,
            (lay.bottom + (lay.image_h - cbar_h) / 2) / lay.fig_h,
            CBAR_W_IN / lay.fig_w,
            cbar_h / lay.fig_h,
        )
    )
    scale = ScalarMappable(Normalize(0, vmax), matplotlib.colormaps[CMAP])
    cbar = fig.colorbar(scale, cax=cax)
    cbar.ax.tick_params(labelsize=8)
    cbar.set_label(f"attention weight\n(shared by all {scope})", fontsize=9)
    fig.text(
        0.5, 1 - 0.1 / lay.fig_h, "\n".join(lay.title_lines), ha="center", va="top", fontsize=12
    )
    _footer(fig, data, lay)
    return fig


def _save(fig: Figure, path: Path, fmt: str, dpi: int) -> None:
    # The temporary name ends in .tmp, so the format must be named, not guessed.
    with atomic_path(path) as tmp:
        if fmt == "png":  # zlib's fastest level: 4-5x faster on big noisy images, ~10% larger
            fig.savefig(tmp, format=fmt, dpi=dpi, pil_kwargs={"compress_level": 1})
        else:
            fig.savefig(tmp, format=fmt, dpi=dpi)


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
    fmt = check_format(path)
    _check_data(data)
    b, h, _, _ = data.weights.shape
    # Slow cases: many cells, or a thousand and more printed numbers (texts are costly).
    slow = data.weights.size > LARGE_CELLS or (
        annotate and annotate_allowed(data) and data.weights.size > 1000
    )
    say = progress if progress is not None and slow else None
    if say:
        say(f"drawing {b * h} panels ({data.weights.size:,} cells)")
    fig = _figure(
        data,
        (list(range(b)), list(range(h))),
        shared_vmax(data),
        fmt=fmt,
        dpi=dpi,
        annotate=annotate,
    )
    if say:
        say(f"writing {path}")
    _save(fig, path, fmt, dpi)
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
    fmt = _format(fmt, f"per-head heatmaps into {folder}")
    _check_data(data)
    _make_folder(folder)
    b, h, _, _ = data.weights.shape
    vmax = shared_vmax(data)  # the whole batch's scale, so files compare with each other
    written: list[Path] = []
    for example in range(b):
        for head in range(h):
            if progress is not None and (b * h > PER_HEAD_QUIET or data.weights.size > LARGE_CELLS):
                progress(f"writing heatmap {len(written) + 1} of {b * h}")
            one = HeatmapData(
                data.weights[example : example + 1, head : head + 1],
                data.masked[example : example + 1, head : head + 1],
                f"{data.title}\nexample {example}, head {head}",
                data.query_label,
                data.key_label,
            )
            fig = _figure(
                one, ([example], [head]), vmax, fmt=fmt, dpi=dpi, annotate=annotate, scope="files"
            )
            path = folder / f"example{example}_head{head}.{fmt}"
            _save(fig, path, fmt, dpi)
            written.append(path)
    return written
