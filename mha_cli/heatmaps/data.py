"""The numbers a heatmap draws, and the grid arithmetic every heatmap renderer shares.

Numpy only (imported inside the functions, so importing this module costs nothing): the image,
its layout and the terminal grid all read a `HeatmapData`, colour it with one `ColourScale` and
place panels the same way (`GridPlan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ANNOTATE_MAX_SIDE = 16  # a panel's queries and keys, each at most this, to print its numbers
ANNOTATE_MAX_CELLS = 4096  # all panels together: beyond this the texts cost seconds
# How masked cells look in every picture: hatched grey, so they never pass for small weights.
MASK_LABEL = "masked (padding / causal)"
MASK_FACE = "#d4d4d4"
MASK_HATCH = "#8a8a8a"
SCALES = ("auto", "linear", "log")
# `auto` picks a log scale when 90 % of the weights sit in the lowest quarter of a linear one
# (attention over 512 keys is about 1/512 everywhere): linear would paint them one colour.
CROWDED_QUANTILE, CROWDED_FRACTION = 0.9, 0.25
LOG_DECADES = 4  # a log scale spans at most this many powers of ten below the largest weight


@dataclass(frozen=True)
class HeatmapData:
    """Attention weights to draw, and which key positions are masked."""

    weights: np.ndarray  # (b, h, q, k) float: the exact numbers the layer computed
    masked: np.ndarray  # (b, h, q, k) bool, or broadcastable to it: True where masked
    title: str  # e.g. "attention weights, dot-product, 5 heads, valid_lens [3, 2]"
    query_label: str = "queries"
    key_label: str = "keys"
    panel_title: str = ""  # set by `panel`: "example 0, head 3" for a file of one panel
    # A streamed long-context picture: cell i covers positions start + i*step .. (see
    # mha_cli.layer.streamed); key_count is every key the softmax ran over (0: the columns).
    query_start: int = 0
    query_step: int = 1
    key_start: int = 0
    key_step: int = 1
    key_count: int = 0
    # each example's tokens (`--text`), padding left out: the axes are labelled with them
    tokens: tuple[tuple[str, ...], ...] | None = None
    # each example's key tokens where they are not its query tokens (a window of a text whose
    # keys start elsewhere than its queries); None: the keys are the same tokens
    key_tokens: tuple[tuple[str, ...], ...] | None = None
    row_name: str = "example"  # what a row of panels is: an example, or a layer (model view)
    # what each head does in words ("prev 0.91"), per row of panels (an example: the batch's
    # roles; a layer in the model view) and head, or None
    head_words: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        import numpy as np

        weights = np.asarray(self.weights)
        if weights.ndim != 4:
            raise ValueError(f"weights must be (batch, heads, queries, keys), got {weights.shape}")
        # A causal mask often arrives as (1, 1, q, k): broadcast it once, read-only, no copy.
        masked = np.broadcast_to(np.asarray(self.masked, dtype=bool), weights.shape)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "masked", masked)

    def words(self, row: int, head: int) -> str:
        """ ": prev 0.91" for the head of that row of panels, "" when it has no words."""
        rows = self.head_words or ()
        words = rows[row][head] if row < len(rows) and head < len(rows[row]) else ""
        return f": {words}" if words else ""

    def panel(self, example: int, head: int) -> HeatmapData:
        """One (example, head) panel as data of its own, named by `panel_title`."""
        one = (slice(example, example + 1), slice(head, head + 1))
        return HeatmapData(
            self.weights[one],
            self.masked[one],
            self.title,
            self.query_label,
            self.key_label,
            panel_title=f"{self.row_name} {example}, head {head}{self.words(example, head)}",
            query_start=self.query_start,
            query_step=self.query_step,
            key_start=self.key_start,
            key_step=self.key_step,
            key_count=self.key_count,
            tokens=None if self.tokens is None else (self.tokens[example],),
            key_tokens=None if self.key_tokens is None else (self.key_tokens[example],),
            row_name=self.row_name,
        )

    def role_text(self, head: int) -> str:
        """ ": prev 0.91" when every row of panels gives the head the same words (the grid's
        label above its column of panels), "" otherwise."""
        if self.head_words is None:
            return ""
        seen = {row[head] for row in self.head_words if head < len(row)}
        return self.words(0, head) if len(seen) == 1 else ""


def annotate_allowed(data: HeatmapData) -> bool:
    """True when `--annotate` can print every weight: small panels, not too many cells."""
    b, h, q, k = data.weights.shape
    return max(q, k) <= ANNOTATE_MAX_SIDE and b * h * q * k <= ANNOTATE_MAX_CELLS


# --- the colour scale -------------------------------------------------------------------------


@dataclass(frozen=True)
class ColourScale:
    """How a weight becomes a position 0..1 on the colormap, the same in every picture of a run.

    Linear from 0 to the largest weight, or logarithmic from `vmin` to it; weights below a log
    scale's `vmin` take its lowest colour (`clipped` says whether there are any)."""

    kind: str  # "linear" or "log"
    vmin: float  # 0 for linear
    vmax: float
    crowded_at: float  # 90 % of the weights are at most this: why auto chose what it chose
    clipped: bool = False
    keys: int = 0  # with no key masked, 1 / keys is attention spread evenly: marked on legends

    def fraction(self, values: np.ndarray) -> np.ndarray:
        """Position on the colormap, 0..1, of each value."""
        import numpy as np

        values = np.asarray(values, dtype=np.float64)
        if self.kind == "linear":
            return np.clip(values / self.vmax, 0.0, 1.0)
        low, high = math.log(self.vmin), math.log(self.vmax)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.maximum(values, self.vmin))
        return np.clip((logs - low) / (high - low), 0.0, 1.0)

    def value_at(self, fraction: float) -> float:
        """The weight at `fraction` of the scale (the inverse of `fraction`), for legends."""
        if self.kind == "linear":
            return fraction * self.vmax
        return math.exp(math.log(self.vmin) + fraction * math.log(self.vmax / self.vmin))

    @property
    def even(self) -> float | None:
        """The weight of attention spread evenly over the keys, where every key is seen."""
        return 1 / self.keys if self.keys > 1 and self.vmin <= 1 / self.keys <= self.vmax else None

    def label(self) -> str:
        """What the colorbar says it shows."""
        return "attention weight" + (", log scale" if self.kind == "log" else "")

    def note(self, scope: str) -> str:
        """Sentences for under a picture: the range, why a log scale where it is one, and what
        evenly spread attention would be."""
        even = (
            f" 1/{self.keys} = {self.even:.3g} is attention spread evenly over the keys."
            if self.even is not None
            else ""
        )
        if self.kind == "linear":
            return (
                f"One colour scale, 0 to {self.vmax:.3g}, is shared by all {scope}, so colours "
                f"compare across heads; d2l's show_heatmaps scales each panel separately.{even}"
            )
        below = " (smaller weights take its lowest colour)" if self.clipped else ""
        return (
            f"One log colour scale, {self.vmin:.3g} to {self.vmax:.3g}{below}, is shared by all "
            f"{scope}: 90 % of the weights are at most {self.crowded_at:.3g}, and a linear scale "
            f"would paint them nearly all one colour (--scale linear draws it anyway).{even}"
        )


def colour_scale(data: HeatmapData, kind: str = "auto") -> ColourScale:
    """The one colour scale of `data`'s unmasked weights: linear, log, or `auto` (log when most
    weights are crowded at the bottom of a linear scale)."""
    import numpy as np

    if kind not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {kind!r}")
    visible = data.weights[~data.masked]
    visible = visible[np.isfinite(visible)]  # a float16 overflow must not break the scale
    top = float(visible.max()) if visible.size else 0.0
    vmax = top if top > 0 else 1.0
    crowded_at = float(np.quantile(visible, CROWDED_QUANTILE)) if visible.size else 0.0
    positive = visible[visible > 0]
    smallest = float(positive.min()) if positive.size else vmax
    floor = max(smallest, vmax * 10.0**-LOG_DECADES)
    if kind == "auto":
        kind = "log" if crowded_at < CROWDED_FRACTION * vmax and floor < vmax else "linear"
    keys = 0 if data.masked.any() else (data.key_count or data.weights.shape[-1])
    if kind == "linear" or floor >= vmax:  # all weights equal: nothing for a log scale to show
        return ColourScale("linear", 0.0, vmax, crowded_at, keys=keys)
    clipped = bool((visible < floor).any())
    return ColourScale("log", floor, vmax, crowded_at, clipped=clipped, keys=keys)


def separator_cells(data: HeatmapData) -> int:
    """Width of the gap between panels, in cells: a few pixels at any panel size."""
    _, _, q, k = data.weights.shape
    return max(1, round(0.06 * max(q, k)))


@dataclass(frozen=True)
class GridPlan:
    """Where each (example, head) panel goes in the composed grid: examples down, each
    example's heads across, wrapped onto several rows of `heads_per_row` when one row would be
    too wide; `row_gap` and `col_gap` cells between panels, and `example_gap` more between
    the rows of different examples (so wrapped examples stay apart)."""

    shape: tuple[int, int, int, int]  # (b, h, q, k)
    heads_per_row: int
    row_gap: int
    col_gap: int
    example_gap: int = 0

    @property
    def rows_per_example(self) -> int:
        return math.ceil(self.shape[1] / self.heads_per_row)

    @property
    def panel_rows(self) -> int:
        return self.shape[0] * self.rows_per_example

    @property
    def wrapped(self) -> bool:
        return self.rows_per_example > 1

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, columns) of cells of the whole grid, separators between panels only."""
        _, _, q, k = self.shape
        cols = self.heads_per_row
        rows = self.panel_rows
        return (
            rows * q + (rows - 1) * self.row_gap + (self.shape[0] - 1) * self.example_gap,
            cols * k + (cols - 1) * self.col_gap,
        )

    def position(self, example: int, head: int) -> tuple[int, int]:
        """(panel row, panel column) of panel (example, head)."""
        return (
            example * self.rows_per_example + head // self.heads_per_row,
            head % self.heads_per_row,
        )

    def slices(self, example: int, head: int) -> tuple[slice, slice]:
        """Rows and columns of the composed grid that hold panel (example, head)."""
        _, _, q, k = self.shape
        row, col = self.position(example, head)
        top = row * (q + self.row_gap) + example * self.example_gap
        left = col * (k + self.col_gap)
        return slice(top, top + q), slice(left, left + k)


def grid_plan(
    data: HeatmapData,
    heads_per_row: int | None = None,
    row_gap: int | None = None,
    col_gap: int | None = None,
    example_gap: int = 0,
) -> GridPlan:
    """The plan for `data`: by default every head of an example in one row, small gaps."""
    b, h, q, k = data.weights.shape
    gap = separator_cells(data)
    per_row = h if heads_per_row is None else max(1, min(h, heads_per_row))
    return GridPlan(
        (b, h, q, k),
        per_row,
        gap if row_gap is None else max(1, row_gap),
        gap if col_gap is None else max(1, col_gap),
        max(0, example_gap),
    )


def panel_slices(
    data: HeatmapData, example: int, head: int, plan: GridPlan | None = None
) -> tuple[slice, slice]:
    """Rows and columns of `compose_grid(data, plan)` that hold panel (example, head)."""
    return (plan or grid_plan(data)).slices(example, head)


def compose_grid(data: HeatmapData, plan: GridPlan | None = None) -> np.ma.MaskedArray:
    """All panels in one array as `plan` places them; separators, empty slots and masked
    cells are masked."""
    import numpy as np

    plan = plan or grid_plan(data)
    b, h, _, _ = data.weights.shape
    values = np.zeros(plan.grid_shape, dtype=data.weights.dtype)
    hidden = np.ones(plan.grid_shape, dtype=bool)  # separators and empty slots stay masked
    for example in range(b):
        for head in range(h):
            rows, cols = plan.slices(example, head)
            values[rows, cols] = data.weights[example, head]  # (q, k)
            hidden[rows, cols] = data.masked[example, head]
    return np.ma.MaskedArray(values, mask=hidden)
