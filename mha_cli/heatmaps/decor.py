"""What is drawn by hand around and on the one heatmap image: integer ticks per panel, the
"head h" / "example b" labels, the frame and hatched box of each panel, the colorbar, the
masked-cell legend and the note under the image. Positions come from `layout`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from mha_cli.heatmaps.data import (
    MASK_FACE,
    MASK_HATCH,
    MASK_LABEL,
    ColourScale,
    HeatmapData,
)
from mha_cli.heatmaps.layout import (
    LABEL_PT,
    LEGEND_IN,
    LEGEND_PT,
    NOTE_LINE_IN,
    NOTE_PT,
    SUBTITLE_PT,
    TICK_PT,
    TITLE_LINE_IN,
    TITLE_PT,
    Layout,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _tick_step(cell_in: float, count: int, label_in: float) -> int:
    """Smallest 1-2-5 step whose tick labels do not collide (spacing >= 1.8 labels)."""
    step, decade = 1, 1
    while step < count and step * cell_in < 1.8 * label_in:
        step = {1: 2, 2: 5, 5: 10}[step // decade] * decade
        decade = step if step // decade == 10 else decade
    return step


def _ticks(
    count: int, starts: list[int], step: int, origin: int = 0, stride: int = 1
) -> tuple[list[int], list[str]]:
    """Tick positions and labels: 0, step, 2*step... inside each panel starting at `starts`,
    labelled with the position each cell starts at (origin + i * stride: a streamed picture's
    cell covers `stride` positions from `origin` on)."""
    inner = range(0, count, step)
    labels = [str(origin + i * stride) for i in inner]
    return [start + i for start in starts for i in inner], labels * len(starts)


def _head_label(words: str, head: int, width_in: float, points: float) -> str:
    """ "head 3: previous 0.91" when the panel is wide enough for it, else "head 3"."""
    label = f"head {head}"
    with_role = label + words
    return with_role if len(with_role) * points * 0.6 / 72 <= width_in else label


def _rows_differ(data: HeatmapData) -> bool:
    """Whether a head's words differ from one row of panels to the next (the model view: each
    layer's head does its own thing), so each panel needs its own."""
    b, h = data.weights.shape[:2]
    return any(
        data.words(row, head) != data.words(0, head) for row in range(b) for head in range(h)
    )


def label_panels(
    ax: Axes, data: HeatmapData, ids: tuple[list[int], list[int]], lay: Layout
) -> None:
    """Integer ticks per panel; "head h" above each panel and "example b" right of each
    example's rows, unless the file holds one panel (its title names it)."""
    b, h, q, k = data.weights.shape
    plan, tick_pt = lay.plan, lay.points(TICK_PT)
    widest = len(str(data.key_start + (k - 1) * data.key_step))
    x_step = _tick_step(lay.cell, k, (widest + 1) * tick_pt * 0.6 / 72)
    y_step = _tick_step(lay.cell, q, tick_pt * 1.3 / 72)
    # Keys along the bottom, under the panels of the last panel row (it may be short).
    last = [
        plan.slices(b - 1, head)[1].start
        for head in range(h)
        if plan.position(b - 1, head)[0] == plan.panel_rows - 1
    ]
    if data.tokens is not None:  # --text: the tokens name the rows and keys
        from mha_cli.heatmaps.token_axes import token_ticks

        token_ticks(ax, data, lay, last)
    else:
        ax.set_xticks(*_ticks(k, last, x_step, data.key_start, data.key_step))
        tops = [
            plan.slices(e, head)[0].start
            for e in range(b)
            for head in range(0, h, plan.heads_per_row)
        ]
        ax.set_yticks(*_ticks(q, tops, y_step, data.query_start, data.query_step))
    ax.tick_params(labelsize=tick_pt, length=2.5 * lay.text, pad=1.5 * lay.text)
    ax.set_xlabel(data.key_label, fontsize=lay.points(LABEL_PT))
    ax.set_ylabel(data.query_label, fontsize=lay.points(LABEL_PT))
    if lay.single:
        return
    per_panel = _rows_differ(data)
    for example in range(b):
        for head in range(h):
            rows, cols = plan.slices(example, head)
            top = example == 0 or plan.wrapped
            words = data.words(example, head) if per_panel else data.role_text(head)
            if top:
                label = _head_label(words, ids[1][head], k * lay.cell, lay.points(LABEL_PT))
                points = lay.points(LABEL_PT)
            elif per_panel and words:  # below the top row: the panel's own words, smaller
                label, points = words.removeprefix(": "), tick_pt
            else:
                continue  # one row per example: the top row's labels name every column
            ax.annotate(
                label,
                ((cols.start + cols.stop - 1) / 2, rows.start - 0.5),
                xytext=(0, 3 * lay.text),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=points,
            )
        first, last_row = plan.slices(example, 0)[0], plan.slices(example, h - 1)[0]
        ax.annotate(
            f"{data.row_name} {ids[0][example]}",
            (1, (first.start + last_row.stop - 1) / 2),
            xycoords=ax.get_yaxis_transform(),
            xytext=(6 * lay.text, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=lay.points(LABEL_PT),
        )


def draw_panel_boxes(ax: Axes, data: HeatmapData, lay: Layout) -> None:
    """A hatched grey box behind each panel (shows through masked cells) and a thin frame.

    Two collections, not one patch per panel: each `add_patch` recomputes the data limits,
    which for 144 panels costs more than drawing them."""
    import matplotlib
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    b, h, q, k = data.weights.shape
    boxes, frames = [], []
    for example in range(b):
        for head in range(h):
            rows, cols = lay.plan.slices(example, head)
            xy = (cols.start - 0.5, rows.start - 0.5)
            if data.masked[example, head].any():
                boxes.append(Rectangle(xy, k, q))
            frames.append(Rectangle(xy, k, q))
    # The hatch colour from rcParams, read when a collection is made: `hatchcolor=` needs
    # matplotlib 3.11, and this works from 3.8 on (tests/test_matplotlib_floor.py).
    with matplotlib.rc_context({"hatch.color": MASK_HATCH}):
        if boxes:
            shaded = PatchCollection(boxes, facecolor=MASK_FACE, hatch="////", lw=0, zorder=0)
            ax.add_collection(shaded, autolim=False)
    framed = PatchCollection(frames, facecolor="none", edgecolor="#555555", lw=0.6, zorder=3)
    ax.add_collection(framed, autolim=False)


def draw_colorbar(fig: Figure, cax: Axes, scale: ColourScale, cmap: str, lay: Layout) -> None:
    """The colorbar of `scale`, labelled with what it shows and what shares it."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize

    norm = LogNorm(scale.vmin, scale.vmax) if scale.kind == "log" else Normalize(0, scale.vmax)
    extend = "min" if scale.clipped else "neither"
    cbar = fig.colorbar(ScalarMappable(norm, matplotlib.colormaps[cmap]), cax=cax, extend=extend)
    # Plain numbers (at 1-2-5 steps on a log scale, not 10^-3 powers), and the weight of
    # attention spread evenly over the keys, where there is one, marked and named.
    if scale.kind == "log":
        ticks = _log_ticks(scale.vmin, scale.vmax)
    else:  # the locator's ticks can lie beyond the top, which would stretch the bar
        ticks = [t for t in cbar.get_ticks() if 0 <= t <= scale.vmax * (1 + 1e-9)]
    labels = [f"{t:g}" for t in ticks]
    if scale.even is not None:
        kept = [i for i, t in enumerate(ticks) if not _near(t, scale.even, scale)]
        ticks = [ticks[i] for i in kept] + [scale.even]
        labels = [labels[i] for i in kept] + [f"1/{scale.keys}"]
        cax.axhline(scale.even, color="white", lw=1.2 * lay.text)
    cbar.set_ticks(ticks, labels=labels)
    cbar.minorticks_off()
    cbar.ax.tick_params(labelsize=lay.points(TICK_PT))
    scope = "files" if lay.single else "panels"
    cbar.set_label(
        f"{scale.label()}\n(one scale for all {scope})", fontsize=lay.points(LABEL_PT - 1)
    )


def _near(tick: float, mark: float, scale: ColourScale) -> bool:
    """Whether a tick label would collide with the label of `mark`."""
    if scale.kind == "log":
        return abs(math.log(tick / mark)) < 0.1 * math.log(scale.vmax / scale.vmin)
    return abs(tick - mark) < 0.1 * scale.vmax


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = [
        m * 10.0**e
        for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for m in (1, 2, 5)
        if low <= m * 10.0**e * (1 + 1e-9) and m * 10.0**e <= high * (1 + 1e-9)
    ]
    return ticks if len(ticks) <= 9 else [t for t in ticks if f"{t:g}".lstrip("0.")[0] == "1"]


def draw_titles(fig: Figure, lay: Layout) -> None:
    """The title (the run, or for one panel its example and head) and the run under it."""
    y = lay.fig_h - 0.1 * lay.text
    fig.text(
        0.5,
        y / lay.fig_h,
        "\n".join(lay.title_lines),
        ha="center",
        va="top",
        fontsize=lay.points(TITLE_PT),
    )
    if lay.subtitle_lines:
        y -= TITLE_LINE_IN * len(lay.title_lines) * lay.text
        fig.text(
            0.5,
            y / lay.fig_h,
            "\n".join(lay.subtitle_lines),
            ha="center",
            va="top",
            fontsize=lay.points(SUBTITLE_PT),
            color="#333333",
            linespacing=1.15,
        )


def draw_footer(fig: Figure, data: HeatmapData, lay: Layout) -> None:
    """The legend entry for masked cells and the note about the colour scale."""
    import matplotlib
    from matplotlib.patches import Patch

    x = 0.2 * lay.text / lay.fig_w
    note_h = (NOTE_LINE_IN * len(lay.note_lines) + 0.1) * lay.text
    if data.masked.any():
        with matplotlib.rc_context({"hatch.color": MASK_HATCH}):
            patch = Patch(
                facecolor=MASK_FACE, hatch="////", edgecolor="#555555", lw=0.6, label=MASK_LABEL
            )
        fig.legend(
            handles=[patch],
            loc="lower left",
            bbox_to_anchor=(x, (note_h + 0.02 * LEGEND_IN) / lay.fig_h),
            frameon=False,
            fontsize=lay.points(LEGEND_PT),
            borderaxespad=0,
            handlelength=2.2,
        )
    fig.text(
        x,
        0.08 * lay.text / lay.fig_h,
        "\n".join(lay.note_lines),
        fontsize=lay.points(NOTE_PT),
        color="#333333",
        ha="left",
        va="bottom",
    )
