"""Text renderings of a reshape explanation: a rich table for terminals, Markdown for files.

Every string from the explanation goes in as `Text`, never as markup: messages contain
brackets such as "panel [1, 0]" that rich would otherwise read as tags and drop.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mha_cli.messages import shape_text
from mha_cli.reshape.explain import ReshapeExplanation, Verdict, index_map

_STYLE = {Verdict.OK: "bold green"}  # every other verdict is a warning


def reshape_renderable(expl: ReshapeExplanation) -> RenderableType:
    """The table of target axes, then the verdict, the fix and where the elements go."""
    table = Table(
        title=Text(f"{shape_text(expl.source_shape)} -> {shape_text(expl.target_shape)}"),
        caption=Text(f"source axes: {expl.source_pattern}"),
    )
    for header, justify in (
        ("axis", "right"),
        ("size", "right"),
        ("show_heatmaps role", "left"),
        ("made of", "left"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for k, (size, role, words) in enumerate(
        zip(expl.target_shape, expl.target_roles, expl.made_of, strict=True)
    ):
        style = "yellow" if "mixed" in words or "part of" in words else ""
        table.add_row(str(k), str(size), Text(role), Text(words, style=style))
    verdict = Text.assemble(
        (f"{expl.verdict.value}: ", _STYLE.get(expl.verdict, "bold yellow")), expl.message
    )
    parts: list[RenderableType] = [table, verdict]
    if expl.dropped:
        parts.append(
            Text(f"size-1 axes with no place of their own: {', '.join(expl.dropped)}", style="dim")
        )
    if expl.suggestion:
        parts.append(Text.assemble(("fix: ", "bold"), expl.suggestion))
    parts += [Text(line) for line in _panel_lines(expl)]
    return Group(*parts)


def _panel_lines(expl: ReshapeExplanation) -> list[str]:
    """A few panels spelled out, so the verdict is concrete (4-D targets only)."""
    panels = index_map(expl)
    if not panels:
        return []
    lines = ["what the first panels show:"]
    for m in panels:
        more = f" | ... ({m.more_rows} more)" if m.more_rows else ""
        title = f" ({m.title})" if m.title else ""
        lines.append(f"  panel {list(m.grid)}{title}: rows " + " | ".join(m.rows) + more)
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reshape_markdown(expl: ReshapeExplanation) -> str:
    """The same content as Markdown (a table, the verdict, the fix, the panels)."""
    lines = [
        f"**{shape_text(expl.source_shape)} -> {shape_text(expl.target_shape)}** "
        f"(source axes: `{expl.source_pattern}`)",
        "",
        "| axis | size | show_heatmaps role | made of |",
        "| ---: | ---: | --- | --- |",
    ]
    lines += [
        f"| {k} | {n} | {_cell(role)} | {_cell(words)} |"
        for k, (n, role, words) in enumerate(
            zip(expl.target_shape, expl.target_roles, expl.made_of, strict=True)
        )
    ]
    lines += ["", f"**{expl.verdict.value}**: {expl.message}"]
    if expl.dropped:
        lines += ["", f"size-1 axes with no place of their own: {', '.join(expl.dropped)}"]
    if expl.suggestion:
        lines += ["", f"fix: {expl.suggestion}"]
    panel_lines = _panel_lines(expl)
    if panel_lines:
        lines += ["", panel_lines[0], ""] + [f"- {line.strip()}" for line in panel_lines[1:]]
    return "\n".join(lines) + "\n"
