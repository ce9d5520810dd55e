"""`mha heatmap --layer all --text TEXT`: the model view. Every layer's attention on one text,
a layers x heads grid of small maps with one colour scale. The model is loaded and run once;
each layer's captured input then runs through mha's rebuilt layer."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.spec.entry import load_heavy, specification
from mha_cli.spec.layer_kind import asks_every_layer

if TYPE_CHECKING:
    from mha_cli.heatmaps.data import HeatmapData
    from mha_cli.layer.report import Report


def is_every_layer(options: dict[str, Any]) -> bool:
    return asks_every_layer(options.get("layer"))


def model_view(config: Any, options: dict[str, Any]) -> tuple[Report, HeatmapData]:
    """(the first layer's report, its notes covering every layer; the layers x heads data)."""
    from mha_cli.text.inputs import pop_text

    options = dict(options)
    text = pop_text(options)
    if text is None:
        raise MhaError(
            "--layer all draws every layer's attention on a text (the model view); give "
            "--text and --weights MODEL_FOLDER"
        )
    if len(text.texts) > 1:
        raise MhaError(
            f"--layer all draws one text, and {len(text.texts)} were given; give one --text "
            "(or one line in --text-file)"
        )
    options["layer"] = 0
    spec = specification(config, options)
    load_heavy("mha_cli.layer.run", "mha_cli.heatmaps.plot_data")
    import numpy as np

    from mha_cli.files.model_layer import model_layer_count
    from mha_cli.files.sources import resolve
    from mha_cli.heatmaps.plot_data import heatmap_data
    from mha_cli.layer.role_records import short_role
    from mha_cli.layer.run import run_attention
    from mha_cli.render.head_roles import role_words
    from mha_cli.spec.layer_kind import layer_kinds
    from mha_cli.text.inputs import (
        attention_module,
        capture_layers,
        check_line,
        check_model_folder,
        max_difference,
        sized,
        spec_for_report,
        with_text,
    )

    if spec.device == "meta":
        raise MhaError("--text runs the model on the text; use --device cpu (or cuda)")
    folder = check_model_folder(str(spec.weights))
    layers = list(range(model_layer_count(spec)))
    paths = [attention_module(replace(spec, layer=layer)) for layer in layers]
    captured = capture_layers(folder, layers, text, paths)
    reports, worst = [], 0.0
    for layer, one in zip(layers, captured, strict=True):
        layer_spec, inputs = sized(replace(spec, layer=layer), one)
        resolved = replace(resolve(layer_spec), inputs=inputs)
        report = run_attention(
            resolved, value_ranges=False, needs_values=True, memory_for="heatmap"
        )
        difference = max_difference(report.attention_weights, one.reference)
        worst = max(worst, difference if difference is not None else 0.0)
        reports.append(report)
    heads = {r.spec.heads for r in reports}
    if len(heads) > 1:
        raise MhaError(
            f"--layer all: the layers have different numbers of heads ({sorted(heads)}); "
            "draw them one --layer at a time"
        )
    first = with_text(reports[0], replace(spec, layer=0), captured[0])
    roles = [
        replace(role, layer=layer)
        for layer, report in enumerate(reports)
        for role in report.summary.head_roles
    ]
    notes = [
        n
        for n in first.summary.notes
        if not n.startswith("checked against")  # layer 0's: replaced by every layer's
    ]
    kinds = layer_kinds([report.spec for report in reports])  # Gemma 2/3: local and global
    for layer, report in enumerate(reports):  # what each layer's heads do, one line a layer
        words = "; ".join(
            line.strip().removeprefix("roles: ") for line in role_words(report.summary.head_roles)
        )
        kind = f", {kinds[layer]}" if kinds[layer] else ""
        notes.append(f"layer {layer}{kind}: {words}")
    notes.append(check_line(worst) + f" (every layer of {len(layers)})")
    assert first.text is not None
    record = replace(first.text, heads=roles, max_difference=worst)
    # Every layer's roles are in the notes and the text record: the summary's were layer 0's.
    summary = replace(first.summary, notes=notes, head_roles=[], head_roles_note=None)
    first = replace(first, summary=summary, text=record)
    grids = [heatmap_data(r) for r in reports]
    weights = np.concatenate([g.weights for g in grids])  # (layers, h, n, n)
    masked = np.concatenate([np.broadcast_to(g.masked, g.weights.shape) for g in grids])
    shown = spec_for_report(reports[0].spec)
    title = (
        f"attention of every layer of {shown.weights} on one text, "
        f"{shown.heads} heads per layer, one colour scale"
    )
    tokens = tuple(captured[0].tokens[0])
    data = replace(
        grids[0],
        weights=weights,
        masked=masked,
        title=title,
        tokens=(tokens,) * len(layers),
        row_name="layer",
        head_words=tuple(
            tuple(short_role(r.role) for r in report.summary.head_roles) for report in reports
        ),
    )
    return first, data
