"""Which axes a recorded operation's output has, given the axes of its inputs.

`spec/axis_guess.py` knows the vocabulary and how a reshape regroups axes; this module knows
the operations: a permute reorders its input's axes, a matmul keeps the rows of its first
operand and the columns of its second, an elementwise step keeps its input's axes, and
whatever else is named by size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from mha_cli.spec.axis_guess import Axis, AxisSizes, by_size, name_shape, reshaped

Known = Callable[[torch.Tensor], "list[Axis] | None"]  # the axes of a tensor seen before

RESHAPES = frozenset(
    {"reshape", "view", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as"}
)
PERMUTES = frozenset({"permute", "transpose", "swapaxes", "swapdims", "T", "mT", "t", "movedim"})
MATMULS = frozenset({"matmul", "bmm", "baddbmm", "linear", "rmatmul"})
REPEATS = frozenset({"repeat_interleave", "repeat", "tile"})


def output_axes(
    op: str, args: Sequence[Any], out: torch.Tensor, known: Known, sizes: AxisSizes
) -> list[Axis]:
    """Name `out`'s axes: from the data flow where the operation says how, else by size."""
    shape = tuple(out.shape)
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    axes = None
    if first is not None:
        source = known(first)
        if source is not None and len(source) == first.dim():
            if op in PERMUTES:
                axes = _permuted(op, args, source)
            elif op in RESHAPES or _same_sizes(tuple(first.shape), shape):
                axes = reshaped(tuple(first.shape), source, shape, sizes)
            elif op in REPEATS:
                axes = _repeated(op, args, first, source, shape, sizes)
    if axes is None and op in MATMULS:
        axes = _matmul(op, args, shape, known, sizes)
    if axes is None:
        axes = _broadcast(args, shape, known)
    if axes is None and first is not None:
        axes = _same_rank(first, shape, known, sizes)
    if axes is None or len(axes) != len(shape):
        axes = name_shape(shape, sizes)
    return axes


def _permuted(op: str, args: Sequence[Any], source: list[Axis]) -> list[Axis] | None:
    n = len(source)
    order = list(range(n))
    numbers = [a for a in args[1:] if isinstance(a, int)]
    listed = next((a for a in args[1:] if isinstance(a, list | tuple)), None)
    if op == "permute":
        dims = list(listed) if listed is not None else numbers
        if sorted(d % n for d in dims) != order:
            return None
        order = [d % n for d in dims]
    elif op in ("T", "t"):
        order.reverse()
    elif op == "mT" and n >= 2:
        order[-2], order[-1] = order[-1], order[-2]
    elif op in ("transpose", "swapaxes", "swapdims") and len(numbers) == 2:
        i, j = (d % n for d in numbers)
        order[i], order[j] = order[j], order[i]
    else:
        return None  # movedim and odd spellings: named by size
    return [source[i] for i in order]


def _matmul(
    op: str, args: Sequence[Any], shape: tuple[int, ...], known: Known, sizes: AxisSizes
) -> list[Axis] | None:
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if op == "baddbmm":
        tensors = tensors[1:]  # baddbmm(input, batch1, batch2): input is only added
    if len(tensors) < 2 or not shape:
        return None
    left = known(tensors[0])
    if left is None or len(left) != tensors[0].dim() or tensors[0].dim() < 2:
        return None
    if op == "linear":  # (..., in) @ weight.T: the rows stay, the features are new
        return [*left[:-1], name_shape(shape[-1:], sizes)[0]]
    right = known(tensors[1])
    column = right[-1] if right is not None and len(right) == tensors[1].dim() else None
    if column is None:
        column = name_shape(shape[-1:], sizes)[0]
    rows = left[:-1]
    if len(rows) + 1 != len(shape):
        return None
    if column.name in [axis.name for axis in rows]:
        # Self-attention: keys come from the same positions as the queries; the score's
        # columns are the kv pairs all the same (a guess when they count as many).
        column = by_size(shape[-1], sizes, [axis.name for axis in rows])
    return [*rows, column]


def _same_sizes(before: tuple[int, ...], after: tuple[int, ...]) -> bool:
    """Only axes of size 1 added or removed (`x[:, None]`, `squeeze`): the data keeps its axes."""
    return [s for s in before if s != 1] == [s for s in after if s != 1] and before != after


def _repeated(
    op: str,
    args: Sequence[Any],
    first: torch.Tensor,
    source: list[Axis],
    shape: tuple[int, ...],
    sizes: AxisSizes,
) -> list[Axis] | None:
    """1-D repeats as the head fold needs them: `repeat_interleave(x, r)` repeats each element
    r times, `(x r)`; `x.repeat(r)` repeats the whole, `(r x)`. d2l's valid_lens of
    (batch) repeated per head is `(batch heads)` one way and `(heads batch)` the other."""
    counts = [a for a in args[1:] if isinstance(a, int) and not isinstance(a, bool)]
    if first.dim() != 1 or len(shape) != 1 or not counts or counts[0] <= 1:
        return None
    count = counts[0]
    if shape[0] != first.shape[0] * count:
        return None
    parts = [name for name, _, _ in sizes.atoms(source[0], first.shape[0])]
    extra = by_size(count, sizes)
    order = [*parts, extra.name] if op == "repeat_interleave" else [extra.name, *parts]
    return [Axis(sizes.combine(order), extra.guessed or source[0].guessed)]


def _same_rank(
    first: torch.Tensor, shape: tuple[int, ...], known: Known, sizes: AxisSizes
) -> list[Axis] | None:
    """Slicing, split and chunk keep the axes they do not cut; the cut one is named by size."""
    source = known(first)
    if source is None or first.dim() != len(shape) or len(source) != len(shape):
        return None
    pairs = zip(source, shape, first.shape, strict=True)
    kept = [axis if size == before else None for axis, size, before in pairs]
    taken = [a.name for a in kept if a is not None]
    return [
        axis if axis is not None else by_size(size, sizes, taken)
        for axis, size in zip(kept, shape, strict=True)
    ]


def _broadcast(args: Sequence[Any], shape: tuple[int, ...], known: Known) -> list[Axis] | None:
    """Elementwise steps (softmax, masked_fill, division, comparisons, dropout...) keep their
    inputs' axes, broadcast from the right: each axis is named by an input that has it."""
    inputs = []
    for arg in args:
        if isinstance(arg, torch.Tensor) and 0 < arg.dim() <= len(shape):
            axes = known(arg)
            if axes is not None and len(axes) == arg.dim():
                inputs.append((tuple(arg.shape), axes))
    if not inputs:
        return None
    named: list[Axis] = []
    for position in range(-len(shape), 0):
        size = shape[position]
        found = next(
            (
                axes[position]
                for arg_shape, axes in inputs
                if len(arg_shape) >= -position and arg_shape[position] == size and (size != 1)
            ),
            Axis("1") if size == 1 else None,
        )
        if found is None:
            return None
        named.append(found)
    return named
