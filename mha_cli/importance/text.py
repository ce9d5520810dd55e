"""`mha heads` as text: the heads ranked least important first, the pruning curve, and the
rank agreement of the measures; one set of rows for the rich table and the Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mha_cli.importance.records import Z95, HeadMeasure, HeadsRecord
from mha_cli.layer.role_records import short_role
from mha_cli.render.markdown import markdown_table

MEASURE_LABELS = {
    "ablation": "output change without it",
    "entropy": "entropy (nats)",
    "confidence": "confidence",
    "gradient": "gradient |dL/dξ|",
}


def percent(x: float) -> str:
    return "nan" if math.isnan(x) else f"{100 * x:.3g} %"


def percent_pm(x: float, se: float) -> str:
    """`17.6 ± 0.098 %`: the figure and Z95 standard errors (the figure alone without one)."""
    if math.isnan(x) or math.isnan(se) or se == 0:
        return percent(x)
    return f"{100 * x:.3g} ± {100 * Z95 * se:.2g} %"


def value_pm(name: str, x: float, se: float) -> str:
    text = _measure(name, x)
    if math.isnan(x) or math.isnan(se):
        return text
    return f"{text} ± {Z95 * se:.2g}"


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


ROLE_COLUMN_WIDTH = 100  # narrower consoles list the roles under the table instead


def ranking_rows(report: HeadsRecord, roles: bool = True) -> tuple[list[str], list[list[str]]]:
    """The ranking table; `roles=False` leaves out the role column (a narrow console)."""
    show_kv = any(h.kv_head != h.head for h in report.heads)
    show_role = roles and any(h.role for h in report.heads)
    header = ["rank", "head", *(["kv head"] if show_kv else []), *(["role"] if show_role else [])]
    header += [
        MEASURE_LABELS[m] + ("" if m == "gradient" else " ± 1.96 se") for m in report.measures
    ]
    header += ["greedy step", "change after step"]
    change_at = {step.step: step.change for step in report.pruning}
    rows = []
    for rank, head in enumerate(report.ranking(), start=1):
        cells = [str(rank), str(head.head), *([str(head.kv_head)] if show_kv else [])]
        cells += [short_role(head.role)] if show_role else []
        cells.append(percent_pm(head.ablation, head.ablation_se))
        cells += [_cell(m, head) for m in report.measures[1:]]
        cells += [str(head.pruned_at), percent(change_at[head.pruned_at])]
        rows.append(cells)
    return header, rows


def correlation_rows(report: HeadsRecord) -> tuple[list[str], list[list[str]]]:
    measures = list(report.measures)
    rows = [[m, *(_rho(report.correlations[m][other]) for other in measures)] for m in measures]
    return ["Spearman ρ", *measures], rows


def _cell(name: str, head: HeadMeasure) -> str:
    se = getattr(head, f"{name}_se", math.nan)
    return value_pm(name, head.value(name), se)


def _measure(name: str, value: float) -> str:
    """Entropy and confidence to 3 decimals; the gradient (any scale) to 3 digits."""
    if math.isnan(value):
        return "nan"
    return f"{value:.3g}" if name == "gradient" else f"{value:.3f}"


def _rho(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"


def candidate_line(report: HeadsRecord) -> str:
    """Which head could go first, only when it is separated from the others beyond noise;
    otherwise "no head stands out" and the range the heads span."""
    ranked = report.ranking()
    figure = "(||y - y_without||_F / ||y||_F)"
    if report.candidates:
        chosen = [report.heads[i] for i in report.candidates]
        rest = [h for h in ranked if h.head not in report.candidates]
        names = _heads_text([h.head for h in chosen])
        verb = "could go first" if len(chosen) == 1 else "could go first, together"
        changes = ", ".join(percent_pm(h.ablation, h.ablation_se) for h in chosen)
        return (
            f"{names} {verb}: without it the output changes by {changes} {figure}, below "
            f"every other head ({_range(rest)}) beyond their spread and its uncertainty; "
            f"head {ranked[-1].head} matters most ({percent(ranked[-1].ablation)})"
            if len(chosen) == 1
            else f"{names} {verb}: without each the output changes by {changes} {figure}, "
            f"below every other head ({_range(rest)}) beyond their spread and the "
            f"uncertainty; head {ranked[-1].head} matters most ({percent(ranked[-1].ablation)})"
        )
    if len(ranked) < 3:
        which = "one head" if len(ranked) == 1 else f"{len(ranked)} heads"
        return (
            f"no head stands out: with {which} there is no spread of other heads to compare "
            f"with (at least 3 heads are needed); without one head the output changes by "
            f"{_range(ranked)} {figure}"
        )
    first = ranked[0]
    return (
        f"no head stands out: without any one head the output changes by {_range(ranked)} "
        f"{figure}; the smallest, head {first.head} "
        f"({percent_pm(first.ablation, first.ablation_se)}), is within the spread of the "
        "others, so the ranking is not a reason to prune it"
    )


def _range(heads: list[HeadMeasure]) -> str:
    values = [h.ablation for h in heads if not math.isnan(h.ablation)]
    if not values:
        return "nan"
    low, high = min(values), max(values)
    return percent(low) if low == high else f"{percent(low)} to {percent(high)}"


def _heads_text(heads: list[int]) -> str:
    if len(heads) == 1:
        return f"head {heads[0]}"
    return "heads " + ", ".join(map(str, heads[:-1])) + f" and {heads[-1]}"


def agreement_lines(report: HeadsRecord) -> list[str]:
    """One line per pair of measures, from rho AND the number of heads: "agrees with" or
    "runs opposite to" only when the two-sided p-value is below AGREEMENT_ALPHA."""
    from mha_cli.importance.spread import AGREEMENT_ALPHA

    n = len(report.heads)
    measures = list(report.measures)
    lines = []
    for index, a in enumerate(measures):
        for b in measures[index + 1 :]:
            rho = report.correlations.get(a, {}).get(b, math.nan)
            p = report.correlation_p.get(a, {}).get(b, math.nan)
            if math.isnan(rho):
                continue
            figures = f"ρ = {rho:+.2f} over {n} heads, p {_p(p)}"
            if not math.isnan(p) and p < AGREEMENT_ALPHA and rho > 0:
                lines.append(f"{b} agrees with {a} ({figures})")
            elif not math.isnan(p) and p < AGREEMENT_ALPHA and rho < 0:
                lines.append(f"{b} runs opposite to {a} ({figures})")
            else:
                lines.append(f"no clear agreement between {a} and {b} ({figures}{_needed(report)})")
    return lines


def _needed(report: HeadsRecord) -> str:
    n = len(report.heads)
    if math.isnan(report.rho_needed):
        return f"; {n} heads are too few to show any agreement"
    return f"; {n} heads need |ρ| ≥ {report.rho_needed:.2f}"


def _p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return f"= {p:.2g}" if p >= 0.001 else "< 0.001"


def verdict_lines(report: HeadsRecord) -> list[str]:
    lines = [candidate_line(report)]
    curve = " → ".join(f"head {s.head}: {percent(s.change)}" for s in report.pruning)
    lines.append(f"greedy pruning, the output change with each head removed in turn: {curve}")
    half = report.pruning[len(report.pruning) // 2 - 1] if len(report.pruning) > 1 else None
    if half is not None:
        lines.append(
            f"removing {half.step} of {len(report.pruning)} heads greedily changes the output "
            f"by {percent(half.change)}"
        )
    lines += agreement_lines(report)
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


def role_line(report: HeadsRecord) -> str | None:
    """Each head's role in words, for a console too narrow for the role column."""
    if not any(h.role for h in report.heads):
        return None
    named = [
        f"head {h.head}: {h.role}"
        for h in report.heads
        if h.role and not h.role.startswith(("spread", "n/a"))
    ]
    if not named:
        return "roles: every head: spread (no one share dominates)"
    others = len(report.heads) - len(named)
    spread = [f"{others} other head{'s' if others > 1 else ''}: spread"] if others else []
    return "roles: " + "; ".join(named + spread)


def heads_renderable(report: HeadsRecord, width: int | None = None) -> RenderableType:
    narrow = width is not None and width < ROLE_COLUMN_WIDTH
    header, rows = ranking_rows(report, roles=not narrow)
    parts: list[RenderableType] = [
        Text(f"heads, least important first: {title(report)}"),
        _table(header, rows, ""),
    ]
    roles = role_line(report) if narrow else None
    if roles:
        parts.append(Text(roles))
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
