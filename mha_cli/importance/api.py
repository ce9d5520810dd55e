"""`mha_cli.heads(...)`: how much each head of a layer matters, from one forward pass."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.importance.records import HeadsReport
from mha_cli.render.images import format_of_path
from mha_cli.spec.entry import load_heavy, specification

ABLATIONS = ("zero", "mean")


def heads(
    *,
    config: Any = None,
    ablation: str = "zero",
    targets: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    dpi: int = 100,
    **options: Any,
) -> HeadsReport:
    """Measure each head of the layer the options describe, on its inputs: the output change
    when the head is removed (`ablation` "zero" or "mean"), attention entropy and confidence,
    gradient importance against `targets` (a file with a tensor `output`), a greedy pruning
    curve, and the rank agreement of the measures with its p-value. `report.candidates` holds
    the heads that could go first, only those separated from the rest beyond noise (else []).
    `out` saves them as an image."""
    if ablation not in ABLATIONS:
        raise MhaError(f"--ablation {ablation!r} is not one of {', '.join(ABLATIONS)}")
    path = Path(out) if out is not None else None
    if path is not None:
        format_of_path(path, "--out")  # before the run
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise MhaError(f"cannot write {path}: folder {folder} does not exist; create it first")
    from mha_cli.text.inputs import pop_text

    text = pop_text(options)  # --text: the model's own inputs of the layer
    spec = specification(config, options)
    load_heavy("mha_cli.importance.head_importance")
    from mha_cli.importance.head_importance import measure_heads

    loaded = None
    if targets is not None:
        from mha_cli.files.tensor_files import load_targets

        try:
            loaded = load_targets(Path(targets))
        except MhaError as error:
            raise MhaError(f"--targets {error}") from None
    inputs = reference = lengths = None
    if text is not None:
        from dataclasses import replace

        from mha_cli.text.inputs import prepare, spec_for_report

        spec, inputs, captured = prepare(spec, text)
        reference, lengths = captured.reference, captured.valid_lens
    report = measure_heads(
        spec, ablation, loaded, inputs=inputs, reference=reference, lengths=lengths
    )
    if text is not None:
        report = replace(
            report,
            spec=spec_for_report(report.spec),
            notes=[*captured.notes, *report.notes],
        )
    if path is not None:
        load_heavy("matplotlib.figure")
        from mha_cli.importance.image import heads_figure
        from mha_cli.render.images import save_figure

        save_figure(heads_figure(report), path, dpi=dpi)
    return report
