"""Draw the same attention weights in several reshape layouts, as d2l's show_heatmaps would.

Each layout gets its own sub-figure: grid rows x grid columns of panels, one shared colour
scale (show_heatmaps scales every panel on its own, which would hide that the numbers are the
same), and honest labels: a panel whose rows are examples says so instead of "queries".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.messages import shape_text
from mha_cli.render.heatmap.data import MASK_FACE, MASK_HATCH
from mha_cli.render.images import format_of_path, save_figure
from mha_cli.reshape.explain import ReshapeExplanation, Verdict, index_map
from mha_cli.reshape.parse import axis_word
from mha_cli.spec.axes import KV_PAIRS, QUERIES

if TYPE_CHECKING:
    import numpy as np

_MAX_TICKS = 12  # beyond this many rows, per-row tick labels become unreadable


def render_layouts(
    weights: np.ndarray,
    expls: Sequence[ReshapeExplanation],
    path: Path,
    *,
    masked: np.ndarray | None = None,
    dpi: int = 100,
) -> Path:
    """Write one image with every explained layout of `weights` side by side; returns `path`.

    `weights` has the explanations' source shape; `masked` (the same shape) marks masked keys,
    drawn hatched so they do not look like small weights.
    """
    import numpy as np
    from matplotlib.figure import Figure

    path = Path(path)
    format_of_path(path, "--render")
    if not expls:
        raise MhaError("no layout to draw; give at least one target shape such as 2,1,1,10")
    values = np.asarray(weights, dtype=float)
    hidden = np.zeros(values.shape, dtype=bool) if masked is None else np.asarray(masked, bool)
    for expl in expls:
        if len(expl.target_shape) != 4:
            raise MhaError(
                f"cannot draw {shape_text(expl.target_shape)}: show_heatmaps layouts have 4 "
                "axes (grid rows, grid columns, panel rows, panel columns)"
            )
    # widths and heights follow the grids so that a cell is the same size in every layout
    widths = [e.target_shape[1] * e.target_shape[3] + 6 for e in expls]
    tallest = max(_height_units(e) for e in expls)
    fig = Figure(
        figsize=(min(0.35 * sum(widths) + 1.5, 30), min(0.3 * tallest + 1.9, 30)),
        layout="constrained",
    )
    fig.suptitle(
        f"the same weights {shape_text(values.shape)}, axes {expls[0].source_pattern}, in "
        f"{len(expls)} layouts as show_heatmaps draws them (shared colour scale)"
    )
    subfigs = fig.subfigures(1, len(expls), width_ratios=widths, wspace=0.06, squeeze=False)[0]
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    image: Any = None
    for sub, expl in zip(subfigs, expls, strict=True):
        grid = np.ma.MaskedArray(values, mask=hidden).reshape(expl.target_shape)
        image = _draw_layout(sub, grid, expl, (lo, hi), tallest)
    fig.colorbar(image, ax=subfigs[-1].axes, shrink=0.8, label="attention weight")
    return save_figure(fig, path, dpi=dpi)


def _height_units(expl: ReshapeExplanation) -> int:
    return expl.target_shape[0] * (expl.target_shape[2] + 2)  # a panel's rows plus its title


def _draw_layout(
    sub: Any, grid: np.ndarray, expl: ReshapeExplanation, limits: tuple[float, float], tallest: int
) -> Any:
    import numpy as np

    g0, g1, n_rows, _ = expl.target_shape
    colour = "darkgreen" if expl.verdict is Verdict.OK else "firebrick"
    sub.suptitle(
        f"reshape{shape_text(expl.target_shape)}\n{_caption(expl)}", color=colour, fontsize="medium"
    )
    if expl.suggestion:
        sub.supxlabel(f"fix: {expl.suggestion}", fontsize="small", color=colour)
    # a spacer row below a short grid keeps it from being stretched to the tallest layout
    spare = tallest - _height_units(expl)
    ratios = [n_rows + 2] * g0 + ([spare] if spare else [])
    ax_grid = sub.subplots(len(ratios), g1, squeeze=False, height_ratios=ratios)
    for ax in ax_grid[g0:].flat:
        ax.remove()
    image = None
    first_rows: Sequence[str] = ()
    for panel in index_map(expl, max_panels=g0 * g1, max_rows=n_rows):
        r, c = panel.grid
        ax = ax_grid[r, c]
        if np.ma.getmaskarray(grid[r, c]).any():  # masked keys: hatched, as in the heatmaps
            _hatch_background(ax, grid[r, c].shape)
        image = ax.imshow(grid[r, c], cmap="Reds", vmin=limits[0], vmax=limits[1], zorder=1)
        ax.set_title(panel.title or f"panel [{r}, {c}]", fontsize="small")
        if (r, c) == (0, 0):
            # one label for the whole grid: long honest labels would overlap panel by panel
            sub.supylabel(_row_label(expl, panel.rows), fontsize="small")
        if c == 0:
            first_rows = panel.rows
        if n_rows <= _MAX_TICKS:
            # label the rows on the left; repeat only where a panel's rows differ (folded)
            shown = panel.rows if c == 0 or panel.rows != first_rows else [""] * n_rows
            ax.set_yticks(range(n_rows), shown, fontsize="small")
        ax.tick_params(labelbottom=r == g0 - 1)
        if r == g0 - 1:
            keys = expl.made_of[3] == KV_PAIRS
            ax.set_xlabel("keys (kv pairs)" if keys else f"columns: {expl.made_of[3]}")
    return image


def _hatch_background(ax: Any, shape: tuple[int, ...]) -> None:
    """A hatched grey box behind the panel: masked cells are transparent and show it."""
    import matplotlib
    from matplotlib.patches import Rectangle

    rows, cols = shape
    with matplotlib.rc_context({"hatch.color": MASK_HATCH}):
        box = Rectangle((-0.5, -0.5), cols, rows, facecolor=MASK_FACE, hatch="////", lw=0, zorder=0)
    ax.add_patch(box)


def _caption(expl: ReshapeExplanation) -> str:
    verdict = expl.verdict.value
    if expl.verdict is Verdict.OK:
        held = [axis_word(n) for k in (0, 1) for p in expl.pieces[k] for n in p.axes]
        return f"{verdict}: one panel per {' and '.join(held) or 'tensor'}"
    if expl.verdict is Verdict.FOLDED:
        k = 2 if any(p.axes[0] != "queries" for p in expl.pieces[2]) else 3
        extra = [p for p in expl.pieces[k] if p.axes[0] not in (QUERIES, KV_PAIRS)]
        what = " x ".join(f"{p.size} {axis_word(p.axes[0], p.size)}" for p in extra)
        where, label = ("rows", "Queries") if k == 2 else ("columns", "Keys")
        return (
            f'{verdict}: {what} share one panel\'s {where}\n(show_heatmaps labels them "{label}")'
        )
    if expl.verdict is Verdict.MIXED:
        return f"{verdict}: panels mix {' and '.join(expl.pieces[0][0].axes)}"
    return f"{verdict}: see mha reshape"


def _row_label(expl: ReshapeExplanation, rows: Sequence[str]) -> str:
    # "example 1, query 0" -> "example x query": the axes the panel rows really run over
    kinds = " x ".join(part.rsplit(" ", 1)[0] for part in rows[0].split(", ")) if rows else ""
    if kinds in ("query", ""):
        return "queries"
    return f"rows: {kinds} ({expl.verdict.value})"
