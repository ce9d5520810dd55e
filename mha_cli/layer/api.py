"""`mha_cli.inspect(...)`: build the layer, run one forward pass, return every stage."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mha_cli.layer.expectations import Expectation, check, parse_expectation, raise_if_failed
from mha_cli.layer.report import Report
from mha_cli.spec.entry import load_heavy, specification


def inspect(
    *,
    config: str | os.PathLike[str] | None = None,
    expect: Sequence[str] | None = None,
    export: str | os.PathLike[str] | None = None,
    value_ranges: bool = True,
    **options: Any,
) -> Report:
    """Run the layer the options describe (the command line's names: `heads=5, queries=4,
    kv=6, valid_lens="3,2"`, ...) and return its `Report`: the stage table when printed, the
    stages, summary and tensors as attributes.

    `expect` holds `--expect` assertions (`"output=2,4,100"`): one that fails raises
    `ExpectationFailed`. `export` saves every stage's tensor to a .pt or .safetensors file.
    """
    expectations = parse_expectations(expect)
    report = run(config, options, export=export, value_ranges=value_ranges)
    raise_if_failed(check(expectations, report))
    return report


def parse_expectations(expect: Sequence[str] | None) -> list[Expectation]:
    """Bad expectations fail before the run, which can take a while."""
    return [parse_expectation(text) for text in expect or []]


def run(
    config: Any,
    options: dict[str, Any],
    *,
    export: str | os.PathLike[str] | None = None,
    value_ranges: bool = True,
    needs_values: str | None = None,
) -> Report:
    """The specification, the run, and the export: what `inspect` and its command share.

    `needs_values` names what needs computed values ("heatmaps"), for the message that refuses
    the meta device."""
    from mha_cli.text.inputs import pop_text

    text = pop_text(options)  # --text: the model's own inputs of the layer
    spec = specification(config, options)
    command = "heatmap" if needs_values == "heatmaps" else "inspect"  # whose peak to estimate
    if needs_values is not None:
        from mha_cli.spec.memory import refuse_meta_for_values

        refuse_meta_for_values(spec, needs_values, command)
    if export is not None:
        from mha_cli.files.tensor_files import check_export_path

        check_export_path(Path(export))
    load_heavy("mha_cli.layer.run")
    from mha_cli.files.sources import resolve
    from mha_cli.layer.run import run_attention, tensors_for_export

    inputs = captured = None
    if text is not None:
        from mha_cli.text.inputs import prepare

        spec, inputs, captured = prepare(spec, text)
    resolved = resolve(spec)
    if inputs is not None:  # the captured hidden states are the layer's inputs
        from dataclasses import replace

        resolved = replace(resolved, inputs=inputs)
    report = run_attention(
        resolved,
        value_ranges=value_ranges,
        needs_values=needs_values is not None,
        memory_for=command,
    )
    if captured is not None:
        from mha_cli.text.inputs import with_text

        report = with_text(report, spec, captured)
    if export is not None:
        from mha_cli.files.tensor_files import save_tensors

        save_tensors(Path(export), tensors_for_export(report))
    return report
