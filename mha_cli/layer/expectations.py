"""`--expect NAME=VALUE` assertions for CI: shapes of stages, and a few whole-layer figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mha_cli.errors import ExpectationFailed, MhaError
from mha_cli.layer.records import RunRecord
from mha_cli.messages import suggest
from mha_cli.reshape.parse import parse_shape

# Figures that are one number rather than a shape.
SCALARS = ("params", "flops", "head_dim")
ALIASES = ("output", "attention_weights")


@dataclass(frozen=True)
class Expectation:
    target: str
    expected: tuple[int, ...] | int

    def describe(self) -> str:
        what = "shape" if isinstance(self.expected, tuple) else "value"
        return f"{self.target} {what}"


def parse_expectation(text: str) -> Expectation:
    target, sep, value = text.partition("=")
    target = target.strip()
    if not sep or not target or not value.strip():
        raise MhaError(
            f"--expect {text!r} should be NAME=VALUE, e.g. output=2,4,100 or params=40000"
        )
    if target in SCALARS:
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0 or (number == 0 and target == "head_dim"):
            raise MhaError(
                f"--expect {text!r}: {target} is a whole number of 0 or more"
                f"{'' if target != 'head_dim' else ' (1 or more)'}, e.g. {target}=40000"
            )
        return Expectation(target, number)
    return Expectation(target, parse_shape(value, option=f"--expect {target}"))


def actual_value(expectation: Expectation, report: RunRecord) -> tuple[int, ...] | int:
    target, spec, summary = expectation.target, report.spec, report.summary
    scalars = {
        "params": summary.total_params,
        "flops": summary.total_flops,
        "head_dim": summary.head_dim,
    }
    if target in scalars:
        return scalars[target]
    if target == "output":
        return report.stages[-1].shape
    if target == "attention_weights":
        return (spec.batch, spec.heads, spec.queries, spec.kv)
    names = [s.name for s in report.stages]
    if target not in names:
        known = [*names, *ALIASES, *SCALARS]
        raise MhaError(
            f"--expect {target}: no stage or figure of that name{suggest(target, known)} "
            f"(known: {', '.join(known)})"
        )
    return report.stage(target).shape


def check(expectations: list[Expectation], report: RunRecord) -> list[dict[str, Any]]:
    """Each expectation with its actual value and whether it held (JSON-ready)."""
    results = []
    for expectation in expectations:
        actual = actual_value(expectation, report)
        results.append(
            {
                "target": expectation.target,
                "expected": _plain(expectation.expected),
                "actual": _plain(actual),
                "ok": actual == expectation.expected,
            }
        )
    return results


def raise_if_failed(results: list[dict[str, Any]]) -> None:
    failed = [r for r in results if not r["ok"]]
    if failed:
        parts = [
            f"{r['target']} expected {_show(r['expected'])}, got {_show(r['actual'])}"
            for r in failed
        ]
        raise ExpectationFailed("expectation failed: " + "; ".join(parts))


def _plain(value: tuple[int, ...] | int) -> list[int] | int:
    return list(value) if isinstance(value, tuple) else value


def _show(value: list[int] | int) -> str:
    return repr(tuple(value)) if isinstance(value, list) else str(value)
