"""`mha_cli.weights(...)`: what each head of a layer holds, without running the layer."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mha_cli.circuits.records import DEFAULT_STAT, STATS, WeightsReport
from mha_cli.errors import MhaError
from mha_cli.messages import suggest
from mha_cli.render.images import format_of_path
from mha_cli.spec.entry import load_heavy, specification
from mha_cli.spec.layer_kind import asks_every_layer, layer_kinds

Progress = Callable[[str], None]


def weights(
    *,
    config: Any = None,
    layer: int | str | None = None,
    stat: str | None = None,
    similarity: bool | None = None,
    out: str | os.PathLike[str] | None = None,
    dpi: int = 100,
    progress: Progress | None = None,
    **options: Any,
) -> WeightsReport:
    """Per head of the layer the options describe (`--weights` or the seeded random layer):
    slice norms, the W_QK and W_OV circuits, flags, and the heads' similarity.

    `layer="all"` reads every layer of the checkpoint, one at a time, for a layers x heads
    table of `stat` (default `ov_frobenius`). `similarity` None computes it when it is cheap.
    `out` saves an image: the similarity heatmaps of one layer, or the layers x heads `stat`.
    """
    every_layer = asks_every_layer(layer)
    if not every_layer and layer is not None:
        options["layer"] = layer
    stat = _check_stat(stat, every_layer)
    path = Path(out) if out is not None else None
    if path is not None:
        format_of_path(path, "--out")  # before the work, which can take a while
        _check_folder(path)
        if not every_layer and similarity is False:
            raise MhaError(
                "--out draws the similarity between heads, which --no-similarity turns off; "
                "drop one of them"
            )
        similarity = True if not every_layer else similarity
    spec = specification(config, options)
    load_heavy("mha_cli.layer.loading", "mha_cli.circuits.head_weights")
    from mha_cli.circuits.head_weights import layer_weights
    from mha_cli.layer.loading import layer_count, layer_parameters

    if spec.weights is None and spec.device != "meta":  # the weights are drawn: will they fit?
        from mha_cli.layer.run import free_memory, resolve_device
        from mha_cli.spec.memory import check_weights_fit

        check_weights_fit(spec, free_memory(resolve_device(spec.device)))
    indices = list(range(layer_count(spec))) if every_layer else [spec.layer]
    layers, resolved, source, specs = [], spec.final(), None, []
    for count, index in enumerate(indices):
        if progress is not None and len(indices) > 1:
            progress(f"layer {index + 1} of {len(indices)}")
        params = layer_parameters(spec, index)  # one layer in memory at a time
        if count == 0:  # the sizes and source the table's title shows
            resolved, source = params.spec, params.source
        layers.append(layer_weights(params.spec, params.state, index, similarity))
        specs.append(params.spec)
    kinds = layer_kinds(specs)  # Gemma 2/3: which layers are local, which global
    layers = [replace(layer, kind=kind) for layer, kind in zip(layers, kinds, strict=True)]
    report = WeightsReport(
        spec=resolved,
        source=source,
        layers=layers,
        stat=stat if every_layer else None,
        dtype=resolved.dtype,
    )
    if path is not None:
        save_weights_image(report, path, dpi=dpi)
    return report


def save_weights_image(report: WeightsReport, path: Path, *, dpi: int = 100) -> Path:
    """The similarity heatmaps of one layer, or the layers x heads heatmap of `report.stat`."""
    load_heavy("matplotlib.figure")
    from mha_cli.circuits.image import layers_figure, similarity_figure
    from mha_cli.render.images import save_figure

    draw = layers_figure if report.stat is not None else similarity_figure
    return save_figure(draw(report), path, dpi=dpi)


def _check_stat(stat: str | None, every_layer: bool) -> str:
    if stat is None:
        return DEFAULT_STAT
    if stat not in STATS:
        raise MhaError(
            f"--stat {stat!r} is not a figure mha weights computes{suggest(stat, STATS)}; "
            f"choose one of {', '.join(STATS)}"
        )
    if not every_layer:
        raise MhaError(
            f"--stat {stat} chooses the figure of the layers x heads table; add --layer all, "
            "or drop --stat (one layer shows every figure)"
        )
    return stat


def _check_folder(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MhaError(f"cannot write {path}: folder {folder} does not exist; create it first")
