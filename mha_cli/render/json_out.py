"""The JSON report: a stable, versioned schema holding everything the table shows."""

from __future__ import annotations

import json
from typing import Any

from mha_cli.records import Report

SCHEMA = "mha.inspect"
SCHEMA_VERSION = 1


def report_json(report: Report, expectations: list[dict[str, Any]] | None = None) -> str:
    document = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "spec": report.spec,
        "layout": report.layout,
        "stages": [stage.to_dict() for stage in report.stages],
        "summary": report.summary.to_dict(),
        "expectations": expectations or [],
    }
    return json.dumps(document, indent=2)
