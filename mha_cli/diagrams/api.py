"""`mha_cli.diagram(...)`: the layer's dataflow, with the shapes of this configuration on every
arrow, drawn from the same recorded run as `mha inspect`'s stage table.

The run is traced on the meta device: every shape, no tensor allocated, any size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.layer.api import run
from mha_cli.render.images import format_of_path
from mha_cli.spec.entry import load_heavy, specification

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mha_cli.diagrams.model import Diagram
    from mha_cli.layer.report import Report

DEFAULT_OUT = "diagram.png"


def diagram_model(*, config: Any = None, **options: Any) -> tuple[Report, Diagram]:
    """The recorded run (shapes only) and the diagram built from its stages."""
    from mha_cli.diagrams.model import build_diagram
    from mha_cli.render.table import layer_title

    if options.get("device") is not None:  # traced on meta whatever is asked: check it all the same
        specification(None, {"device": options["device"]})
    report = run(config, {**options, "device": "meta"}, value_ranges=False)
    return report, build_diagram(report, layer_title(report))


def diagram(*, config: Any = None, dpi: int = 100, **options: Any) -> Figure:
    """The dataflow of the layer the options describe (the command line's names: `heads=8,
    kv_heads=2`, ...) as a matplotlib Figure: boxes for the steps, and on every arrow the shape
    and axes of the tensor it carries, as the stage table records them."""
    _, model = diagram_model(config=config, **options)
    load_heavy("matplotlib.figure")
    from mha_cli.diagrams.image import diagram_figure

    return diagram_figure(model, dpi=dpi)


@dataclass
class DiagramFiles:
    """What `save_diagram` did: the run, the diagram drawn, and the file written."""

    report: Report
    diagram: Diagram
    written: list[Path] = field(default_factory=list)


def save_diagram(
    *,
    out: str | os.PathLike[str] | None = None,
    dpi: int = 100,
    draw: bool = True,
    config: Any = None,
    **options: Any,
) -> DiagramFiles:
    """Run the layer on the meta device and write its diagram to `out` (.png, .svg or .pdf;
    an existing folder gets diagram.png; default ./diagram.png). `draw=False` builds the
    diagram without writing a file (for a terminal-only look)."""
    path = diagram_path(out) if draw else None
    report, model = diagram_model(config=config, **options)
    files = DiagramFiles(report, model)
    if path is None:
        return files
    load_heavy("matplotlib.figure")
    from mha_cli.diagrams.image import diagram_figure
    from mha_cli.render.images import save_figure

    files.written.append(save_figure(diagram_figure(model, dpi=dpi), path, dpi=dpi))
    return files


def diagram_path(out: str | os.PathLike[str] | None) -> Path:
    """Where the diagram goes, checked before the run: a file whose folder exists."""
    path = Path(DEFAULT_OUT) if out is None or os.fspath(out) == "" else Path(out)
    if path.is_dir():
        path = path / DEFAULT_OUT
    format_of_path(path, "diagram")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MhaError(
            f"cannot write diagram {path}: folder {folder} does not exist; create it first"
        )
    return path
