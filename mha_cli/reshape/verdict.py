"""What d2l's `show_heatmaps` makes of a target layout: the verdict, its message and the fix.

`show_heatmaps` reads a 4-D tensor as (grid rows, grid columns, panel rows, panel columns) and
labels the panel axes "Queries" and "Keys". Given where each source axis landed (the pieces from
`reshape_refine`), this module says whether those labels hold and, when they do not, what each
panel shows instead and which layout would make them true.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from mha_cli.messages import shape_text
from mha_cli.reshape.parse import Axis, axis_word
from mha_cli.reshape.refine import Piece, made_of_text

ROLES = ("grid rows", "grid columns", "panel rows", "panel columns")  # show_heatmaps' 4 axes


class Verdict(str, Enum):
    """What `show_heatmaps` makes of the target layout."""

    OK = "ok"
    FOLDED = "folded"  # another axis folded into the panel rows/columns, e.g. (1, 1, 2, 10)
    MIXED = "mixed"  # a target axis takes its index from parts of several source axes
    SPLIT = "split"  # a source axis is cut across target axes
    MISPLACED = "misplaced"  # queries/keys not on the panel rows/columns
    NOT_4D = "not 4-D"


def suggest_target(
    verdict: Verdict, src: Sequence[Axis], shape: tuple[int, ...] | None, qname: str, kname: str
) -> str:
    if verdict is Verdict.OK:
        return ""
    if shape is None and not qname:
        return "name at least two axes (queries, keys) to get a show_heatmaps layout"
    if shape is None:
        return (
            f"permute the weights so that {qname} and {kname} are the last two axes, "
            "then reshape; a reshape alone cannot move them"
        )
    lead = [a.name for a in src[:-2]]
    grid = f"grid rows = {' x '.join(lead[:-1] or lead)}" if lead else "one panel"
    grid += f", grid columns = {lead[-1]}" if len(lead) > 1 else ""
    return f"use {shape_text(shape)}: {grid}, each panel {qname} x {kname}"


def judge(
    src: Sequence[Axis],
    target: tuple[int, ...],
    pieces: tuple[tuple[Piece, ...], ...],
    qname: str,
    kname: str,
) -> tuple[Verdict, str]:
    sizes = {a.name: a.size for a in src}
    # mixed: an index made of several source axes where one is cut, e.g. (batch=2 heads=8)
    # read as (8, 2) gives grid rows = batch x half of heads (the boundaries divide, no "mixed"
    # piece, yet a row that claims to be a head is not one)
    mixed = [
        k
        for k, ps in enumerate(pieces)
        if any(p.kind == "mixed" for p in ps) or (len(ps) > 1 and any(p.kind == "part" for p in ps))
    ]
    if mixed:
        return Verdict.MIXED, _mixed_message(src, target, pieces, mixed)
    if len(target) != 4:
        return Verdict.NOT_4D, (
            f"show_heatmaps takes 4 axes (grid rows, grid columns, panel "
            f"rows, panel columns); {shape_text(target)} has {len(target)}"
        )
    for k, want, other, label in ((2, qname, kname, "Queries"), (3, kname, qname, "Keys")):
        extra = [p.axes[0] for p in pieces[k] if p.axes[0] != want]
        if not extra:
            continue
        if other in extra and any(p.kind == "part" for p in pieces[k]):
            break  # keys cut into panel rows and columns: a split, reported below
        if other in extra:
            return Verdict.MISPLACED, (
                f"the {ROLES[k]} hold {made_of_text(pieces[k], 1, sizes)}, "
                f'not {want}: the "{label}" label is wrong'
            )
        held = [(p.axes[0], p.size) for p in pieces[k]]
        held += [(want, 1)] if sizes.get(want) == 1 and want not in extra else []
        stack = " x ".join(f"{n} {axis_word(name, n)}" for name, n in held)
        folded = " and ".join(f"{n} ({sizes[n]})" for n in extra)
        return Verdict.FOLDED, (
            f"{folded} {'is' if len(extra) == 1 else 'are'} folded into the {ROLES[k]}: each "
            f"panel stacks {stack} = {target[k]} {ROLES[k].split()[1]}, so "
            f'{axis_word(extra[0], 2)} share a panel and its "{label}" label is wrong; the '
            "numbers are the same, only the layout differs"
        )
    for ps in pieces:
        for p in ps:
            if p.kind == "part":
                where = [
                    ROLES[k] for k, qs in enumerate(pieces) if any(q.axes == p.axes for q in qs)
                ]
                return Verdict.SPLIT, (
                    f"{p.axes[0]} ({sizes[p.axes[0]]}) is split across the "
                    f"{' and '.join(where)}: each holds only part of it"
                )
    for k in (0, 1):
        on_grid = [p.axes[0] for p in pieces[k] if p.axes[0] in (qname, kname) and p.size > 1]
        if on_grid:
            name = on_grid[0]
            return Verdict.MISPLACED, (
                f"{name} ({sizes[name]}) sit on the {ROLES[k]}, so "
                f"each panel shows a single {axis_word(name)}"
            )
    grid = [made_of_text(pieces[k], target[k], sizes) for k in (0, 1)]
    each = " and ".join(axis_word(a.name) for a in src if a.name not in (qname, kname))
    return Verdict.OK, (
        f"panel rows are {qname} and panel columns are {kname}; grid rows hold "
        f"{grid[0]} and grid columns hold {grid[1]}, so each panel shows "
        f"{'one ' + each + chr(39) + 's' if each else 'the'} {qname} x {kname}"
    )


def _mixed_message(
    src: Sequence[Axis],
    target: tuple[int, ...],
    pieces: tuple[tuple[Piece, ...], ...],
    mixed: list[int],
) -> str:
    used = {n for k in mixed for p in pieces[k] for n in p.axes}
    names = [a.name for a in src if a.name in used]
    sizes = {a.name: a.size for a in src}
    mixed = [k for k, ps in enumerate(pieces) if any(set(p.axes) & used for p in ps)]
    roles = [ROLES[k] if len(target) == 4 else f"axis {k}" for k in mixed]
    text = (
        f"({' '.join(names)}) is {names[0]}-major, so it unfolds as "
        f"{shape_text([sizes[n] for n in names])}; "
        f"with {shape_text([target[k] for k in mixed])} the "
        f"{' and '.join(roles)} take their indices from parts of {' and '.join(names)}"
    )
    if len(target) == 4 and set(mixed) & {0, 1}:
        shown = [(r, c) for r, c in ((0, 1), (1, 0)) if r < target[0] and c < target[1]]
        text += (
            " ("
            + "; ".join(
                f"panel [{r}, {c}] shows "
                + describe(src, (r * target[1] + c) * target[2] * target[3], set(names))
                for r, c in shown
            )
            + ")"
        )
    return text + "; no error is raised: every element still lands somewhere"


def describe(src: Sequence[Axis], flat: int, keep: set[str]) -> str:
    """'example 1, head 0': the source indices of element `flat` on the axes in `keep`."""
    index = []
    for a in reversed(src):
        flat, i = divmod(flat, a.size)
        index.append(f"{axis_word(a.name)} {i}" if a.name in keep else "")
    return ", ".join(w for w in reversed(index) if w)
