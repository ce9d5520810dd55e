"""What `mha_cli.weights()` returns: the plain record, and a face for people.

Printed in a terminal or displayed in a notebook, a `WeightsReport` shows as the per-head table
(rich renders in Jupyter too); `to_json()` and `to_markdown()` give the other formats.
"""

from __future__ import annotations

from dataclasses import dataclass

from mha_cli.circuits.records import WeightsRecord
from mha_cli.render.display import Displayed


@dataclass(frozen=True, eq=False)
class WeightsReport(WeightsRecord, Displayed):
    """Per head of a layer (or `stat` per layer and head): see `WeightsRecord`."""
