"""The numbers a heatmap draws, and the grid arithmetic every heatmap renderer shares.

Numpy only (imported inside the functions, so importing this module costs nothing): the image,
its layout and the terminal grid all read a `HeatmapData` and place panels the same way.
"""

from __future__ import annotations

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

    def panel(self, example: int, head: int) -> HeatmapData:
        """One (example, head) panel as data of its own, titled with which it is."""
        one = (slice(example, example + 1), slice(head, head + 1))
        title = f"{self.title}\nexample {example}, head {head}"
        return HeatmapData(
            self.weights[one], self.masked[one], title, self.query_label, self.key_label
        )


def annotate_allowed(data: HeatmapData) -> bool:
    """True when `--annotate` can print every weight: small panels, not too many cells."""
    b, h, q, k = data.weights.shape
    return max(q, k) <= ANNOTATE_MAX_SIDE and b * h * q * k <= ANNOTATE_MAX_CELLS


def shared_vmax(data: HeatmapData) -> float:
    """Top of the one colour scale: the largest unmasked weight (1.0 if there is none)."""
    import numpy as np

    visible = data.weights[~data.masked]
    visible = visible[np.isfinite(visible)]  # a float16 overflow must not break the scale
    top = float(visible.max()) if visible.size else 0.0
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
