"""`mha heads` as text: the heads ranked least important first, the pruning curve, and the
rank agreement of the measures; one set of rows for the rich table and the Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mha_cli.importance.records import HeadsRecord
from mha_cli.render.markdown import markdown_table

MEASURE_LABELS = {
    "ablation": "output change without it",
    "entropy": "entropy (nats)",
    "confidence": "confidence",
    "gradient": "gradient |dL/dξ|",
}


def percent(x: float) -> str:
    return "nan" if math.isnan(x) else f"{100 * x:.3g} %"


def title_parts(report: HeadsRecord) -> tuple[str, str]:
    """(the layer, its inputs), for the table's title and the image's."""
    spec = report.spec
    where = "seeded random weights" if report.source is None else report.source.path
    inputs = spec.inputs if spec.inputs in ("randn", "ones") else f"inputs {spec.inputs}"
    layer = f"{spec.heads} heads, {spec.hiddens} hiddens ({where})"
    run = f"batch {spec.batch}, {spec.queries} queries, {spec.kv} key-value pairs ({inputs})"
    return layer, run


def title(report: HeadsRecord) -> str:
    layer, run = title_parts(report)
    return f"{layer}; {run}; {report.ablation_mode} ablation"


def ranking_rows(report: HeadsRecord) -> tuple[list[str], list[list[str]]]:
    show_kv = any(h.kv_head != h.head for h in report.heads)
    header = ["rank", "head", *(["kv head"] if show_kv else [])]
    header += [MEASURE_LABELS[m] for m in report.measures]
    header += ["greedy step", "change after step"]
    change_at = {step.step: step.change for step in report.pruning}
    rows = []
    for rank, head in enumerate(report.ranking(), start=1):
        cells = [str(rank), str(head.head), *([str(head.kv_head)] if show_kv else [])]
        cells.append(percent(head.ablation))
        cells += [_measure(m, head.value(m)) for m in report.measures[1:]]
        cells += [str(head.pruned_at), percent(change_at[head.pruned_at])]
        rows.append(cells)
    return header, rows


def correlation_rows(report: HeadsRecord) -> tuple[list[str], list[list[str]]]:
    measures = list(report.measures)
    rows = [[m, *(_rho(report.correlations[m][other]) for other in measures)] for m in measures]
    return ["Spearman ρ", *measures], rows


def _measure(name: str, value: float) -> str:
    """Entropy and confidence to 3 decimals; the gradient (any scale) to 3 digits."""
    if math.isnan(value):
        return "nan"
    return f"{value:.3g}" if name == "gradient" else f"{value:.3f}"


def _rho(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"


def verdict_lines(report: HeadsRecord) -> list[str]:
    ranked = report.ranking()
    first = ranked[0]
    lines = [
        f"head {first.head} could go first: without it the output changes by "
        f"{percent(first.ablation)} (||y - y_without||_F / ||y||_F); head {ranked[-1].head} "
        f"matters most ({percent(ranked[-1].ablation)})"
    ]
    curve = " → ".join(f"head {s.head}: {percent(s.change)}" for s in report.pruning)
    lines.append(f"greedy pruning, the output change with each head removed in turn: {curve}")
    half = report.pruning[len(report.pruning) // 2 - 1] if len(report.pruning) > 1 else None
    if half is not None:
        lines.append(
            f"removing {half.step} of {len(report.pruning)} heads greedily changes the output "
            f"by {percent(half.change)}"
        )
    lines.append(
        "entropy runs opposite to the others: a focused head has low entropy and high "
        "confidence (Voita et al. found such heads the last to be pruned)"
    )
    if any(math.isnan(v) for row in report.correlations.values() for v in row.values()):
        lines.append("n/a: a measure that is the same for every head ranks nothing")
    lines += [f"note: {n}" for n in report.notes]
    return lines


def _table(header: Sequence[str], rows: list[list[str]], caption: str) -> Table:
    table = Table(
        title=Text(caption) if caption else None, title_justify="left", header_style="bold"
    )
    for name in header:
        table.add_column(Text(name), justify="right")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def heads_renderable(report: HeadsRecord) -> RenderableType:
    header, rows = ranking_rows(report)
    parts: list[RenderableType] = [
        Text(f"heads, least important first: {title(report)}"),
        _table(header, rows, ""),
    ]
    header, rows = correlation_rows(report)
    parts.append(Text("how far the measures agree (Spearman rank correlation over the heads)"))
    parts.append(_table(header, rows, ""))
    parts += [Text(line) for line in verdict_lines(report)]
    return Group(*parts)


def heads_markdown(report: HeadsRecord) -> str:
    parts = [f"**heads, least important first**: {title(report)}"]
    parts.append(markdown_table(*ranking_rows(report)))
    parts.append("how far the measures agree (Spearman rank correlation):")
    parts.append(markdown_table(*correlation_rows(report)))
    parts.append("\n".join(f"- {line}" for line in verdict_lines(report)))
    return "\n\n".join(parts) + "\n"
