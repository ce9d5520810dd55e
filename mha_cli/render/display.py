"""The faces every result of the Python API shares: text, `str()`, Markdown, JSON, and
Jupyter's display, all through the one dispatch (`render/views.py`).

A result says nothing about how it renders: `registry.VIEWS` names its renderers; printing it,
`str()` and a notebook's display all go through rich from there, so they show the same table.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

# How rich itself shows a renderable in Jupyter: preformatted, scrolling sideways if wide.
_NOTEBOOK_PRE = (
    '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
    "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{code}</pre>"
)


class Displayed:
    """Mixed into every result the API returns; its renderers are found by its class name."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from mha_cli.render.views import renderable

        yield renderable(self, width=options.max_width)

    def to_json(self, **extra: Any) -> str:
        """The result as the command's `--format json` document."""
        from mha_cli.render.views import json_text

        return json_text(self, **extra)

    def to_markdown(self) -> str:
        """The result as the command's `--format markdown`."""
        from mha_cli.render.views import markdown

        return markdown(self)

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
