"""The stage table as GitHub-flavoured markdown, for READMEs, notes and CI summaries."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from mha_cli.layer.records import RunRecord
from mha_cli.messages import shape_text
from mha_cli.render import numbers
from mha_cli.render.summary_lines import summary_lines

if TYPE_CHECKING:
    from mha_cli.layer.report import StagesShown


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; pipes in cells escaped, line breaks as spaces."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join(
        "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |"
        for row in lines
    )


_HEADER = ("#", "stage", "d2l code", "shape", "axes", "params", "FLOPs", "bytes", "values")


def shown_markdown(shown: StagesShown) -> str:
    """`mha inspect --stages --format markdown`: the table of some stages."""
    return report_markdown(shown.report, only=shown.names)


def report_markdown(report: RunRecord, only: Collection[str] | None = None) -> str:
    """The table (every stage, or those named in `only`), its totals, and the lines below."""
    rows = [_HEADER, tuple("---" for _ in _HEADER)]
    for index, stage in enumerate(report.stages):
        if only is not None and stage.name not in only:
            continue
        rows.append(
            (
                str(index),
                f"`{stage.name}`",
                f"`{stage.code}`",
                shape_text(stage.shape),
                ", ".join(stage.axes),
                numbers.count(stage.params),
                numbers.count(stage.flops) if stage.flops else "",
                "view" if stage.view else numbers.size(stage.bytes),
                numbers.value_range(stage.value_range),
            )
        )
    summary = report.summary
    rows.append(
        (
            "",
            "**total**",
            "",
            "",
            "",
            numbers.count(summary.total_params),
            numbers.count(summary.total_flops),
            numbers.size(summary.activation_bytes),
            "",
        )
    )
    table = markdown_table(rows[0], rows[2:])
    notes = "\n".join(f"- {line.strip()}" for line in summary_lines(report) if line.strip())
    return f"{table}\n\n{notes}\n"
