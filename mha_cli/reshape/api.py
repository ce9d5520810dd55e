"""`mha_cli.explain_reshape(...)`: where a reshape of attention weights puts each axis."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mha_cli.reshape.explain import ReshapeExplanation
from mha_cli.reshape.explain import explain_reshape as explain
from mha_cli.spec.entry import load_heavy


def explain_reshape(
    shape: str | Sequence[int] = "2,1,10",
    to: str | Sequence[int] = "1,1,2,10",
    axes: str | None = None,
    *,
    batch: int | None = None,
    heads: int | None = None,
    render: str | os.PathLike[str] | None = None,
    dpi: int = 100,
) -> ReshapeExplanation:
    """Explain `weights.reshape(to)` for attention weights of `shape` (axes named by `axes`,
    e.g. "(batch heads),queries,keys"; `batch`/`heads` split a folded axis). With `render`,
    also draw the layouts side by side from real weights into that image file."""
    sizes = {name: n for name, n in (("batch", batch), ("heads", heads)) if n is not None}
    explanation = explain(shape, to, axes, sizes=sizes)
    if render is not None:
        render_reshape(explanation, Path(render), axes, sizes, dpi=dpi)
    return explanation


def render_reshape(
    explanation: ReshapeExplanation,
    path: Path,
    axes: str | None,
    sizes: dict[str, int],
    *,
    dpi: int = 100,
) -> Path:
    """The asked layout beside the fix (when there is one), explained with the same axes and
    sizes as the text, drawn from real weights of the source layout."""
    from mha_cli.render.images import format_of_path

    format_of_path(path, "--render")  # before the run
    layouts = [explanation]
    if explanation.suggested_shape is not None:
        source = explanation.source_shape
        layouts.append(explain(source, explanation.suggested_shape, axes, sizes=sizes))
    load_heavy("mha_cli.layer.run", "matplotlib.figure")
    from mha_cli.heatmaps.plot_data import weights_of_shape
    from mha_cli.reshape.image import render_layouts

    weights, masked = weights_of_shape([(a.name, a.size) for a in explanation.source_axes])
    shape = explanation.source_shape
    hidden = None if masked is None else masked.reshape(shape)
    return render_layouts(weights.reshape(shape), layouts, path, masked=hidden, dpi=dpi)
