"""The faces every report of the Python API shares: text, `str()`, and Jupyter's display.

A report only says how it renders (`__rich_console__`); printing it, `str()` and a notebook's
display all go through rich from there, so they show the same table.
"""

from __future__ import annotations

import io
from typing import Any

# How rich itself shows a renderable in Jupyter: preformatted, scrolling sideways if wide.
_NOTEBOOK_PRE = (
    '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
    "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{code}</pre>"
)


class Displayed:
    """Mixed into a report that defines `__rich_console__`."""

    def to_text(self, width: int = 160) -> str:
        """The report as plain text, `width` columns wide."""
        from rich.console import Console

        buffer = io.StringIO()
        Console(file=buffer, width=width, color_system=None, highlight=False).print(self)
        return buffer.getvalue()

    def __str__(self) -> str:
        return self.to_text()

    def _repr_mimebundle_(self, **_: Any) -> dict[str, str]:
        """Jupyter: the report as HTML (rich's own export) and as text."""
        from rich.console import Console

        console = Console(record=True, width=160, file=io.StringIO(), highlight=False)
        console.print(self)
        text = console.export_text(clear=False)
        html = console.export_html(inline_styles=True, code_format=_NOTEBOOK_PRE)
        return {"text/plain": text, "text/html": html}
