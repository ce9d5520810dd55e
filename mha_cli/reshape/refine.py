"""Where a row-major reshape puts each source axis: the common refinement of the two shapes.

Every boundary (stride) of either shape cuts the flat index; where both shapes cut at the same
place (the products agree) the axes in between form a group. Inside a group whose boundaries
divide one another each target axis is a product of whole or partial source axes; otherwise
the target axes take their index from several source axes at once ("mixed").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mha_cli.reshape.parse import Axis


@dataclass(frozen=True)
class Piece:
    """One factor of a target axis: its index is `(ravel(source indices of axes) // div) % size`.

    `axes` are source axes in source order; pieces of a target axis are listed most significant
    first, so the target index is the mixed-radix number of the piece values.
    """

    axes: tuple[str, ...]
    size: int
    div: int
    kind: str  # "whole" | "part" | "mixed"


def _strides(sizes: Sequence[int]) -> list[int]:
    return [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]  # row-major (C order)


def refine(src: Sequence[Axis], tgt: Sequence[int]) -> list[list[Piece]]:
    s_str, t_str, total = _strides([a.size for a in src]), _strides(tgt), math.prod(tgt)
    s_cut, t_cut = set(s_str) | {total}, set(t_str) | {total}
    cuts = sorted(s_cut & t_cut)  # where the running products of both shapes agree
    big_s = [j for j, a in enumerate(src) if a.size > 1]
    pieces: list[list[Piece]] = [[] for _ in tgt]
    for c0, c1 in itertools.pairwise(cuts):
        inner = sorted(b for b in s_cut | t_cut if c0 <= b <= c1)
        t_in = [k for k, n in enumerate(tgt) if n > 1 and c0 <= t_str[k] < c1]
        if all(hi % lo == 0 for lo, hi in itertools.pairwise(inner)):
            # boundaries nest: each slice lies inside one source axis and one target axis
            for lo, hi in itertools.pairwise(inner):
                j = next(j for j in big_s if s_str[j] <= lo and hi <= s_str[j] * src[j].size)
                k = next(k for k in t_in if t_str[k] <= lo and hi <= t_str[k] * tgt[k])
                kind = "whole" if hi // lo == src[j].size else "part"
                pieces[k].insert(0, Piece((src[j].name,), hi // lo, lo // s_str[j], kind))
        else:
            # e.g. (batch=2 heads=5) read as (5, 2): no target axis is a function of one source
            names = tuple(src[j].name for j in big_s if c0 <= s_str[j] < c1)
            for k in t_in:
                pieces[k].append(Piece(names, tgt[k], t_str[k] // c0, "mixed"))
    return pieces


def place_units(
    src: Sequence[Axis], tgt: Sequence[int], pieces: list[list[Piece]], expected: Sequence[str]
) -> tuple[str, ...]:
    """Give each size-1 source axis to a size-1 target axis at the same position.

    A reshape cannot tell size-1 axes apart, so prefer the target axis whose role expects that
    name (queries -> panel rows), then align from the right; returns the axes left over.
    """
    s_str, t_str = _strides([a.size for a in src]), _strides(tgt)
    dropped: list[str] = []
    for pos in sorted({s_str[j] for j, a in enumerate(src) if a.size == 1}):
        units = [a.name for j, a in enumerate(src) if a.size == 1 and s_str[j] == pos]
        free = [k for k, n in enumerate(tgt) if n == 1 and t_str[k] == pos]
        for name in list(units):
            k = next((k for k in free if k < len(expected) and expected[k] == name), None)
            if k is not None:
                pieces[k].append(Piece((name,), 1, 1, "whole"))
                units.remove(name)
                free.remove(k)
        for name, k in zip(reversed(units), reversed(free), strict=False):
            pieces[k].append(Piece((name,), 1, 1, "whole"))
        dropped += units[: max(0, len(units) - len(free))]
    return tuple(dropped)


def made_of_text(ps: Sequence[Piece], size: int, src_sizes: Mapping[str, int]) -> str:
    if not ps:
        return "nothing (size 1)" if size == 1 else "?"
    words = []
    for p in ps:
        if p.kind == "mixed":
            words.append(f"parts of {' and '.join(p.axes)} (mixed)")
        elif p.kind == "part":
            words.append(f"part of {p.axes[0]} ({p.size} of {src_sizes[p.axes[0]]})")
        else:
            words.append(p.axes[0])
    return " x ".join(words)
