"""Parse what `mha reshape` is given: shapes ("2,1,10") and axis patterns ("(batch heads) q k").

Pure Python, einops-style: a pattern names one axis per dimension of the shape; a folded group in
parentheses is unfolded into its elementary axes, the sizes of all but one given and the last
inferred. Also the axis vocabulary the messages share: short aliases (b, h, q, k) and the noun
for one index of an axis (batch -> example).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mha_cli.errors import MhaError
from mha_cli.messages import shape_text
from mha_cli.spec.axes import canonical, folded, noun

DEFAULT_AXES = {
    2: "queries, kv pairs",
    3: "batch, queries, kv pairs",
    4: "batch, heads, queries, kv pairs",
}
# The vocabulary's two-word names, joined so that a space can still separate names.
_TWO_WORDS = re.compile(r"\b(kv|head)\s+(pairs|heads|dim)\b")
_TOKEN = re.compile(r"\s*(?:([(),])|([A-Za-z_]\w*)(?:\s*=\s*(\d+))?|(\S))")


@dataclass(frozen=True)
class Axis:
    name: str
    size: int


def axis_word(name: str, count: int = 1) -> str:
    """The noun for one index of an axis: batch -> example(s), kv pairs -> key(s)."""
    return noun(name, count)


def parse_shape(
    text: str | Sequence[int], *, option: str = "--shape", allow_infer: bool = False
) -> tuple[int, ...]:
    """'2,1,10', '(2, 1, 10)', '2 1 10' or a sequence of ints -> (2, 1, 10)."""
    if isinstance(text, str):
        parts = [p for p in re.split(r"[,\s]+", text.strip().strip("()[] ")) if p]
        bad = [p for p in parts if not re.fullmatch(r"-?\d+", p)]
        if bad or not parts:
            raise MhaError(f"{option} {text!r} is not a shape; give sizes such as 2,1,10")
        values = tuple(int(p) for p in parts)
    else:
        values = tuple(int(v) for v in text)
    hint = " (or one -1 to infer a size)" if allow_infer else ""
    for v in values:
        if v < 1 and not (allow_infer and v == -1):
            raise MhaError(
                f"{option} {shape_text(values)} has size {v}; sizes must be positive{hint}"
            )
    return values


def parse_axes(
    text: str, shape: tuple[int, ...], sizes: Mapping[str, int] | None = None
) -> tuple[tuple[Axis, ...], str]:
    """'(batch=2 heads) queries keys' (commas optional) -> elementary axes and the pattern.

    A folded group needs the sizes of all but one member: from `name=size` in the pattern or
    from `sizes` (the lead passes the spec's --batch/--heads); the last one is inferred, as in
    einops. `sizes` never overrides an ungrouped axis: that size is the shape's.
    """
    groups: list[list[tuple[str, int | None]]] = []
    open_group: list[tuple[str, int | None]] | None = None
    for m in _TOKEN.finditer(_TWO_WORDS.sub(r"\1_\2", text)):
        punct, name, size, junk = m.groups()
        if junk or (punct == "(" and open_group is not None) or (punct == ")" and not open_group):
            raise MhaError(
                f"--axes {text!r}: unexpected {junk or punct!r}; write names such as "
                "batch,queries,keys or (batch heads),queries,keys"
            )
        if punct == "(":
            open_group = []
        elif punct == ")":
            groups.append(open_group or [])
            open_group = None
        elif name:
            entry = (canonical(name.replace("_", " ")), int(size) if size else None)
            if open_group is not None:
                open_group.append(entry)
            else:
                groups.append([entry])
    if open_group is not None:
        raise MhaError(f"--axes {text!r}: a '(' is not closed; e.g. (batch heads),queries,keys")
    if len(groups) != len(shape):
        example = DEFAULT_AXES.get(len(shape), "x,y")
        raise MhaError(
            f"--axes {text!r} names {len(groups)} axes but --shape {shape_text(shape)} has "
            f"{len(shape)}; name one per axis, e.g. {example}"
        )
    names = [n for g in groups for n, _ in g]
    if len(set(names)) != len(names):
        raise MhaError(f"--axes {text!r} repeats a name; give each axis its own name")
    axes = [
        a
        for g, dim in zip(groups, shape, strict=True)
        for a in _group_sizes(g, dim, sizes or {}, text)
    ]
    # Written as the stage table writes axes: "(batch heads), queries, kv pairs".
    pattern = ", ".join(folded(*(n for n, _ in g)) if len(g) > 1 else g[0][0] for g in groups)
    return tuple(axes), pattern


def _group_sizes(
    group: list[tuple[str, int | None]], dim: int, sizes: Mapping[str, int], text: str
) -> list[Axis]:
    if len(group) == 1:
        name, given = group[0]
        if given is not None and given != dim:
            raise MhaError(f"--axes {text!r} says {name}={given} but --shape has {dim} there")
        return [Axis(name, dim)]
    known = [g if g is not None else sizes.get(n) for n, g in group]
    label = f"({' '.join(n for n, _ in group)})"
    if known.count(None) > 1:
        first = group[0][0]
        raise MhaError(
            f"--axes {text!r}: {label} of size {dim} needs the sizes of all but one "
            f"of its axes; write e.g. ({first}=2 {' '.join(n for n, _ in group[1:])})"
        )
    product = math.prod(k for k in known if k is not None)
    if None in known:
        if product < 1 or dim % product:
            raise MhaError(
                f"--axes {text!r}: can't divide {label} of size {dim} by {product}; "
                f"give sizes whose product divides {dim}"
            )
        known = [k if k is not None else dim // product for k in known]
    elif product != dim:
        raise MhaError(
            f"--axes {text!r}: {label} multiplies to {product} but --shape has {dim} "
            "there; give sizes whose product is that size"
        )
    return [Axis(n, int(k or 0)) for (n, _), k in zip(group, known, strict=True)]
