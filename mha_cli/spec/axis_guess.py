"""Name the axes of a tensor mha did not make, from the sizes of the specification.

Pure Python. `mha trace` records anyone's attention code; the shapes it sees are plain numbers,
and this module turns them into the one vocabulary of `spec/axes.py` (batch, queries, kv pairs,
heads, head dim, hiddens, the folded `(batch heads)`). Two ways, best first:

- by following the data: a reshape regroups its input's axes, so `(batch, queries, hiddens)`
  reshaped to `(2, 4, 5, 20)` is `(batch, queries, heads, head dim)` whatever the sizes are;
- by size alone, where nothing is known of the input. Where two axes share a size (queries and
  kv pairs both 4, say) the name is a guess, and `Axis.guessed` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

from mha_cli.spec.axes import (
    BATCH,
    HEAD_DIM,
    HEADS,
    HIDDENS,
    KV_HEADS,
    KV_PAIRS,
    QUERIES,
    folded,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mha_cli.spec.spec import AttentionSpec

ONE = "1"  # an axis of size 1 (unsqueeze, keepdim, a broadcast mask)
# The atoms folded axes are made of, in the order products of them are named.
_PRODUCT_ORDER = (BATCH, HEADS, QUERIES, KV_PAIRS, HEAD_DIM)


@dataclass(frozen=True)
class Axis:
    name: str
    guessed: bool = False  # named by size alone, and another axis has that size too

    def label(self) -> str:
        """The name as the table shows it: a guess ends in '?'."""
        return f"{self.name}?" if self.guessed else self.name


@dataclass(frozen=True)
class AxisSizes:
    """The sizes each name of the vocabulary stands for, in one run."""

    batch: int
    queries: int
    kv: int
    heads: int
    head_dim: int
    hiddens: int
    kv_heads: int

    @classmethod
    def of(cls, spec: AttentionSpec) -> AxisSizes:
        return cls(
            spec.batch,
            spec.queries,
            spec.kv,
            spec.heads,
            spec.final().head_dim,
            spec.hiddens,
            spec.final().kv_heads,
        )

    def names(self) -> list[tuple[str, int]]:
        """Every name with its size, in the order a tie is broken."""
        named = [
            (BATCH, self.batch),
            (QUERIES, self.queries),
            (KV_PAIRS, self.kv),
            (HEADS, self.heads),
        ]
        if self.kv_heads != self.heads:
            named.append((KV_HEADS, self.kv_heads))
        named += [(HEAD_DIM, self.head_dim), (HIDDENS, self.hiddens)]
        named.append((folded(BATCH, HEADS), self.batch * self.heads))
        return named

    def size_of(self, name: str) -> int | None:
        return dict(self.names()).get(name)

    def atoms(self, axis: Axis, size: int) -> list[tuple[str, int, bool]]:
        """The smallest named parts of one axis: `(batch heads)` is batch and heads; hiddens
        is heads and head dim when num_hiddens = heads x head dim (d2l's split)."""
        if size == 1:
            return []
        parts = _unfold(axis.name)
        if parts is None:
            parts = [axis.name]
        sizes = [self.size_of(p) if not p.isdigit() else int(p) for p in parts]
        if None in sizes or math.prod(s for s in sizes if s) != size:
            return [(axis.name, size, axis.guessed)]
        found: list[tuple[str, int, bool]] = []
        for part, part_size in zip(parts, sizes, strict=True):
            if part == HIDDENS and self.heads * self.head_dim == self.hiddens:
                found += [
                    (HEADS, self.heads, axis.guessed),
                    (HEAD_DIM, self.head_dim, axis.guessed),
                ]
            else:
                found.append((part, part_size or 1, axis.guessed))
        return found

    def combine(self, parts: Sequence[str]) -> str:
        """One name for atoms merged into one axis: heads and head dim are hiddens."""
        names = list(parts)
        for i in range(len(names) - 1):
            if names[i : i + 2] == [HEADS, HEAD_DIM] and self.heads * self.head_dim == self.hiddens:
                names[i : i + 2] = [HIDDENS]
                break
        return names[0] if len(names) == 1 else folded(*names)


def _unfold(name: str) -> list[str] | None:
    """`(batch heads)` -> [batch, heads]; names that hold spaces themselves stay whole."""
    if not (name.startswith("(") and name.endswith(")")):
        return None
    inner, parts = name[1:-1], []
    for known in (KV_PAIRS, HEAD_DIM, KV_HEADS):  # two-word names of the vocabulary
        inner = inner.replace(known, known.replace(" ", "_"))
    for part in inner.split():
        parts.append(part.replace("_", " "))
    return parts


def by_size(size: int, sizes: AxisSizes, taken: Sequence[str] = ()) -> Axis:
    """The name of an axis known only by its size. Names already used in the same tensor
    are passed over first: a (4, 4) score matrix is queries by kv pairs."""
    if size == 1:
        return Axis(ONE)
    exact = [name for name, s in sizes.names() if s == size]
    if not exact:
        exact = _products(size, sizes)
    if not exact:
        multiple = size // sizes.hiddens if size % sizes.hiddens == 0 else 0
        if 1 < multiple <= 4:  # q, k and v (or k and v) projected at once: (3 hiddens)
            return Axis(folded(str(multiple), HIDDENS))
        return Axis(str(size))
    free = [name for name in exact if name not in taken] or exact
    return Axis(free[0], guessed=len(exact) > 1)


def _products(size: int, sizes: AxisSizes) -> list[str]:
    """Names of folds of two or three atoms with this size: `(batch heads queries)`."""
    atoms = [(name, sizes.size_of(name) or 0) for name in _PRODUCT_ORDER]
    found = []
    for count in (2, 3):
        for group in combinations(atoms, count):
            if [n for n, _ in group] == [HEADS, HEAD_DIM]:
                continue  # that is hiddens, named exactly above
            if math.prod(s for _, s in group) == size and all(s > 1 for _, s in group):
                found.append(folded(*(n for n, _ in group)))
    return found


def name_shape(shape: Sequence[int], sizes: AxisSizes) -> list[Axis]:
    """Every axis of a shape named by size, each name used once where possible."""
    named: list[Axis] = []
    for size in shape:
        named.append(by_size(size, sizes, [a.name for a in named]))
    return named


def reshaped(
    in_shape: Sequence[int], in_axes: Sequence[Axis], out_shape: Sequence[int], sizes: AxisSizes
) -> list[Axis]:
    """The axes after a reshape (view, flatten, rearrange...), following the data.

    The input's axes are taken apart into atoms and the output's axes are matched to runs of
    atoms with the same product. Where an output axis cuts through an atom (or regroups
    atoms in another order, as splitting the heads from the wrong end does), it is named by size.
    """
    atoms = [
        a for axis, size in zip(in_axes, in_shape, strict=True) for a in sizes.atoms(axis, size)
    ]
    dims = [(i, size) for i, size in enumerate(out_shape) if size != 1]
    out: list[Axis | None] = [Axis(ONE) if size == 1 else None for size in out_shape]
    a = d = 0
    while a < len(atoms) and d < len(dims):
        a_end, d_end = a + 1, d + 1
        atom_product, dim_product = atoms[a][1], dims[d][1]
        while atom_product != dim_product:
            if atom_product < dim_product and a_end < len(atoms):
                atom_product *= atoms[a_end][1]
                a_end += 1
            elif dim_product < atom_product and d_end < len(dims):
                dim_product *= dims[d_end][1]
                d_end += 1
            else:
                return name_shape(out_shape, sizes)  # sizes do not divide: start afresh
        group = atoms[a:a_end]
        if d_end - d == 1:  # one output axis holds the whole run
            guessed = any(g for _, _, g in group)
            out[dims[d][0]] = Axis(sizes.combine([n for n, _, _ in group]), guessed)
        else:  # one atom split in several axes: only sizes are left to go by
            taken = [x.name for x in out if x is not None]
            for index, size in dims[d:d_end]:
                axis = by_size(size, sizes, taken)
                out[index] = axis
                taken.append(axis.name)
        a, d = a_end, d_end
    if any(axis is None for axis in out):
        return name_shape(out_shape, sizes)
    return [axis for axis in out if axis is not None]
