"""The one JSON envelope of every command: a named, versioned schema around the payload.

JSON has no NaN or infinity; Python's `json` writes them anyway, which strict readers refuse.
A non-finite number is written as `null`, as JavaScript's `JSON.stringify` does.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mha_cli.layer.records import RunRecord

# Bumped when a field changes meaning or goes away; new fields keep the version.
SCHEMA_VERSIONS = {
    "mha.inspect": 2,
    "mha.reshape": 1,
    "mha.variants": 1,
    "mha.compare": 1,
    "mha.trace": 1,
    "mha.weights": 2,
    "mha.heads": 2,
    "mha.diagram": 1,
}


def envelope(schema: str, payload: dict[str, Any]) -> str:
    """`{"schema": ..., "version": ..., **payload}` as indented, strictly valid JSON."""
    document = {"schema": schema, "version": SCHEMA_VERSIONS[schema], **payload}
    return json.dumps(_finite(document), indent=2, allow_nan=False)


def report_json(report: RunRecord, expectations: list[dict[str, Any]] | None = None) -> str:
    return envelope("mha.inspect", {**report.to_dict(), "expectations": expectations or []})


def shown_json(shown: Any, expectations: list[dict[str, Any]] | None = None) -> str:
    """`--stages` shows some stages (a `StagesShown`); the JSON always holds the whole report."""
    return report_json(shown.report, expectations)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
