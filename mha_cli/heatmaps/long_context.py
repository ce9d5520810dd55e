"""`mha heatmap` at long context: the weights streamed per (example, head) and block of queries,
reduced to the picture's pixels; or a window of them (`--queries-range`, `--keys-range`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.spec.entry import load_heavy, specification

if TYPE_CHECKING:
    from mha_cli.heatmaps.data import HeatmapData
    from mha_cli.layer.report import Report
    from mha_cli.layer.streamed import StreamedRun

Steps = Callable[[int, int], None]


def streamed_weights(
    config: Any,
    options: dict[str, Any],
    *,
    export: str | os.PathLike[str] | None = None,
    queries_range: str | None = None,
    keys_range: str | None = None,
    reduction: str = "max",
    steps: Steps | None = None,
) -> tuple[StreamedRun | Report, HeatmapData] | None:
    """The run and the picture's numbers when the heatmap streams; None when the full pass
    draws it (small sizes, no window asked for)."""
    from mha_cli.spec.streaming import REDUCTIONS, parse_range, wants_streaming

    if reduction not in REDUCTIONS:
        raise MhaError(f"--reduce {reduction!r} is not one of {', '.join(REDUCTIONS)}")
    windowed = queries_range is not None or keys_range is not None
    from mha_cli.text.inputs import pop_text

    bare = dict(options)
    text = pop_text(bare)
    if text is not None:  # a model's positions fit one full pass; a window is streamed
        if not windowed:
            return None
        if export is not None:
            raise MhaError(
                "--export with --text writes the full weights of the text; drop --queries-range "
                "and --keys-range to export them, or --export to draw the window"
            )
        return _text_window(config, bare, text, queries_range, keys_range, reduction, steps)
    spec = specification(config, options)
    if not wants_streaming(spec, windowed):
        if windowed:  # only the additive layer gets here
            raise MhaError(
                "--queries-range and --keys-range need the dot-product layer; use --score dot"
            )
        return None
    if spec.device == "meta":
        _refuse_meta(spec, reduction)
    if spec.inputs_file is None:  # sizes known now: a bad range fails before the run
        parse_range(queries_range, spec.queries, "--queries-range", "queries")
        parse_range(keys_range, spec.kv, "--keys-range", "keys")
    if export is not None:
        return _exported(config, options, spec, export, queries_range, keys_range, reduction)
    load_heavy("mha_cli.layer.streamed")
    from mha_cli.layer.streamed import picture_data, stream_heatmap

    run, picture = stream_heatmap(spec, queries_range, keys_range, reduction, steps)
    return run, picture_data(run, picture)


def _text_window(
    config: Any,
    options: dict[str, Any],
    text: Any,
    queries_range: str | None,
    keys_range: str | None,
    reduction: str,
    steps: Steps | None,
) -> tuple[StreamedRun, HeatmapData]:
    """A window of a text's attention (`--text` with `--queries-range` / `--keys-range`): the
    model runs on the text once, mha's layer streams the window from the captured inputs, and
    a window drawn cell for cell is labelled with its tokens and checked against the model's
    own weights there."""
    spec = specification(config, options)
    load_heavy("mha_cli.layer.streamed")
    from mha_cli.heatmaps.plot_data import on_texts
    from mha_cli.layer.streamed import picture_data, stream_heatmap
    from mha_cli.text.inputs import check_line, prepare, token_lines

    spec, inputs, captured = prepare(spec, text)
    run, picture = stream_heatmap(spec, queries_range, keys_range, reduction, steps, inputs)
    plan = run.plan
    for example, length in enumerate(captured.valid_lens):  # padding's rows are no token's
        first = -(-max(0, length - plan.queries.start) // plan.query_factor)  # pixel row
        picture.masked[example, :, first:, :] = True
        picture.values[example, :, first:, :] = 0.0
    about = on_texts(spec.layer, str(spec.weights), len(captured.texts))
    data = picture_data(run, picture, about)
    notes = [*captured.notes, *run.summary.notes, *token_lines(captured)]
    if not plan.reduced:  # cell for cell: the tokens name the rows and columns
        rows, cols = plan.queries, plan.keys
        queries = tuple(tuple(t[rows.start : rows.stop]) for t in captured.tokens)
        keys = tuple(tuple(t[cols.start : cols.stop]) for t in captured.tokens)
        data = replace(data, tokens=queries, key_tokens=None if keys == queries else keys)
        difference = _window_difference(picture, captured, plan)
        if difference is not None:
            notes.append(check_line(difference) + " (the window)")
    run.summary.notes[:] = notes
    return run, data


def _window_difference(picture: Any, captured: Any, plan: Any) -> float | None:
    """The largest |mha - model| over the window's cells that are neither masked nor padding."""
    reference = captured.reference
    if reference is None:
        return None
    rows, cols = plan.queries, plan.keys
    window = reference[:, :, rows.start : rows.stop, cols.start : cols.stop]
    seen = ~picture.masked  # (b, h, rows, cols): padding rows are masked too
    if not bool(seen.any()):
        return None
    return float((picture.values.double() - window.double()).abs()[seen].max())


def _refuse_meta(spec: Any, reduction: str) -> None:
    """The meta device computes no weights: --device cpu, where the streamed run fits this
    machine's memory; else sizes that do."""
    from mha_cli.messages import size_text
    from mha_cli.spec import memory
    from mha_cli.spec.streaming import Window, plan_stream, smaller_streamed, streamed_bytes

    on_cpu = replace(spec, device="cpu")
    available = memory.available_bytes()
    fix = "use --device cpu (a long context is computed one head at a time)"
    plan = plan_stream(on_cpu, Window(0, spec.queries), Window(0, spec.kv), reduction)
    if available is not None and streamed_bytes(on_cpu, plan) > 0.8 * available:
        smaller = smaller_streamed(on_cpu, plan, available).removeprefix("use ")
        fix += f" and, to fit {size_text(available)} of free memory, {smaller}"
    raise MhaError(f"heatmaps need computed values, and --device meta computes none; {fix}")


def _exported(
    config: Any,
    options: dict[str, Any],
    spec: Any,
    export: str | os.PathLike[str],
    queries_range: str | None,
    keys_range: str | None,
    reduction: str,
) -> tuple[Report, HeatmapData]:
    """`--export` writes every stage and the full (b, h, q, k) weights: the full pass, when it
    fits; its picture reduced as a streamed one is."""
    from mha_cli.files.tensor_files import check_export_path
    from mha_cli.messages import size_text
    from mha_cli.spec import memory
    from mha_cli.spec.streaming import attention_weights_bytes

    check_export_path(Path(export))
    available = memory.available_bytes() if spec.device == "cpu" else None
    total = memory.estimate_bytes(spec, "heatmap")[0]
    if available is not None and total > 0.8 * available:
        shape = f"({spec.batch}, {spec.heads}, {spec.queries}, {spec.kv})"
        smaller = memory.smaller_sizes(spec, available, "heatmap")
        raise MhaError(
            f"--export writes every stage and the full attention_weights {shape}, "
            f"{size_text(attention_weights_bytes(spec))} alone; the run needs about "
            f"{size_text(total)} but {spec.device} has {size_text(available)} free; drop "
            f"--export to draw the picture streamed, or "
            f"{smaller.removeprefix('use ')} to export"
        )
    from mha_cli.layer.api import run

    report = run(config, options, export=export, value_ranges=False, needs_values="heatmaps")
    from mha_cli.layer.streamed import (
        StreamedRun,
        StreamedSummary,
        picture_data,
        reduce_full,
    )
    from mha_cli.spec.streaming import parse_range, plan_stream

    b, h, q, k = report.attention_weights.shape
    sized = replace(spec, batch=b, heads=h, queries=q, kv=k)
    plan = plan_stream(
        sized,
        parse_range(queries_range, q, "--queries-range", "queries"),
        parse_range(keys_range, k, "--keys-range", "keys"),
        reduction,
    )
    picture = reduce_full(report.attention_weights, report.mask, plan)
    described = StreamedRun(report.spec, StreamedSummary([]), plan)
    return report, picture_data(described, picture)
