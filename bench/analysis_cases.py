"""Issue 10's whole-process cases for bench/bench.py: `mha weights` and `mha heads`, each
beside the `mha inspect` of the same layer that its target is a ratio to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LLAMA_LAYER = ["--hiddens", "4096", "--heads", "32"]  # Llama-7B-class attention, random weights
BERT_128 = ["--config", "bert-base", "--queries", "128", "--kv", "128"]

# (case key, the reference case it is a ratio to, the most it may take)
RATIOS = (("weights-4096", "inspect-4096", 1.5), ("heads-bert", "inspect-bert", 1.3))


def analysis_cases(mha: str, cli: Callable[..., Any]) -> list[Any]:
    return [
        cli(
            "inspect-4096",
            "mha inspect, 4096 hiddens 32 heads",
            mha,
            ["inspect", *LLAMA_LAYER],
            "reference",
        ),
        cli(
            "weights-4096",
            "mha weights, 4096 hiddens 32 heads",
            mha,
            ["weights", *LLAMA_LAYER],
            "<= 1.5x inspect-4096",
        ),
        cli(
            "inspect-bert",
            "mha inspect -c bert-base, 128 tokens",
            mha,
            ["inspect", *BERT_128],
            "reference",
        ),
        cli(
            "heads-bert",
            "mha heads -c bert-base, 128 tokens",
            mha,
            ["heads", *BERT_128],
            "<= 1.3x inspect-bert",
        ),
    ]


def has_analysis(mha_help: str) -> bool:
    return "weights" in mha_help and "heads" in mha_help


def analysis_checks(results: dict[str, Any]) -> dict[str, Callable[[Any], bool]]:
    checks = {}
    for key, reference, most in RATIOS:
        if key in results and results[reference].seconds:
            checks[key] = lambda r, ref=results[reference], most=most: r.median <= most * ref.median
    return checks


def analysis_notes(results: dict[str, Any]) -> list[str]:
    lines = []
    for key, reference, most in RATIOS:
        if key in results and results[key].seconds and results[reference].seconds:
            ratio = results[key].median / results[reference].median
            lines.append(f"{key} / {reference} (whole processes): {ratio:.2f}x (target <= {most}x)")
    return lines
