"""What `mha_cli.heads()` returns: the plain record, and a face for people.

Printed in a terminal or displayed in a notebook, a `HeadsReport` shows as the ranking table;
`to_json()` and `to_markdown()` give the other formats.
"""

from __future__ import annotations

from dataclasses import dataclass

from mha_cli.importance.records import HeadsRecord
from mha_cli.render.display import Displayed


@dataclass(frozen=True, eq=False)
class HeadsReport(HeadsRecord, Displayed):
    """Each head's measures, the pruning curve and the measures' agreement: see `HeadsRecord`."""
