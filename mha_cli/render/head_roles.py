"""What each head does, beneath the stage table: a compact per-head table and the roles in
words, as plain text lines (render/markdown.py makes its Markdown table); no torch."""

from __future__ import annotations

from mha_cli.layer.records import Summary
from mha_cli.layer.role_records import HeadRole

HEADER = ("head", "sink", "prev", "self", "dist", "role")
INTRO = (
    "what each head attends to (shares of its attention: sink = the first key, prev = the "
    "previous position, self = its own; dist = mean |query - key| position; over the valid "
    "query rows of the batch):"
)
SIDE_BY_SIDE = 8  # more heads than this: two columns of heads, so 32 heads take 16 lines
SEPARATOR = " │ "


def _number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits if value < 100 else 0}f}"  # 4 characters up to 9999


def role_cells(role: HeadRole) -> tuple[str, ...]:
    return (
        str(role.head),
        _number(role.sink),
        _number(role.previous),
        _number(role.itself),
        _number(role.distance, 1),
        role.kind,
    )


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    numbers = [cell.rjust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
    return "  ".join([*numbers, cells[-1].ljust(widths[-1])])


def head_role_lines(summary: Summary) -> list[str]:
    """The per-head table (two heads to a line beyond 8 heads: 79 columns), then the roles
    grouped in words, then the note on what does not apply."""
    roles = summary.head_roles
    if not roles:
        return []
    if all(r.previous is None and r.itself is None and r.distance is None for r in roles):
        return cross_attention_lines(summary)
    cells = [role_cells(role) for role in roles]
    widths = [max(len(row[i]) for row in [HEADER, *cells]) for i in range(len(HEADER))]
    columns = 2 if len(roles) > SIDE_BY_SIDE else 1
    per_column = -(-len(roles) // columns)
    lines = [INTRO]
    header = [_row(HEADER, widths)] * columns
    indent = "  " if columns == 1 else ""  # two columns: 79 characters
    lines.append(indent + SEPARATOR.join(header).rstrip())
    for index in range(per_column):
        parts = [
            _row(cells[index + c * per_column], widths)
            for c in range(columns)
            if index + c * per_column < len(cells)
        ]
        lines.append(indent + SEPARATOR.join(parts).rstrip())
    lines.extend(role_words(roles))
    if summary.head_roles_note:
        lines.append(f"note: {summary.head_roles_note}")
    return lines


def cross_attention_lines(summary: Summary) -> list[str]:
    """Cross-attention (or no valid row): only the first key's share applies, so one line of
    shares and the roles, then the note, instead of a table of n/a."""
    roles = summary.head_roles
    shares = ", ".join(f"head {r.head} {_number(r.sink)}" for r in roles)
    lines = [f"share of each head's attention on the first key (sink): {shares}"]
    lines.extend(role_words(roles))
    if summary.head_roles_note:
        lines.append(f"note: {summary.head_roles_note}")
    return lines


def named_role_lines(summary: object) -> list[str]:
    """The roles in words beneath a heatmap, only when some head has one (a run whose every
    head spreads says nothing more than its picture); none for a run without roles."""
    roles: list[HeadRole] = getattr(summary, "head_roles", None) or []
    if all(role.kind in ("spread", "n/a") for role in roles):
        return []
    return [line.strip() for line in role_words(roles)]


def role_words(roles: list[HeadRole]) -> list[str]:
    """Each head whose attention one share dominates, in words ("head 5: previous token
    0.91"); the others counted as spread."""
    named = [f"head {r.head}: {r.role}" for r in roles if r.kind not in ("spread", "n/a")]
    spread = [role for role in roles if role.kind == "spread"]
    lines = []
    if named:
        lines.append("roles: " + "; ".join(named))
    if spread:
        which = "every head" if len(spread) == len(roles) else f"{len(spread)} other heads"
        if len(spread) == 1 and len(roles) > 1:
            which = f"head {spread[0].head}"
        lines.append(f"{'roles: ' if not named else '  '}{which}: spread (no one share dominates)")
    return lines
