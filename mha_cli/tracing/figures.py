"""The figures of one recorded step: its FLOPs and the range of its values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from mha_cli.tracing.axes import MATMULS


def tensors_in(values: Sequence[Any]) -> Iterator[torch.Tensor]:
    """Every tensor among a call's arguments, lists (torch.cat's) included."""
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, list | tuple):
            yield from tensors_in(value)


def flops_of(name: str, call: Sequence[Any], out: torch.Tensor) -> int:
    """Matmuls only, a multiply-add counted as 2 (torch.utils.flop_counter's convention)."""
    if name == "einsum":
        return _einsum_flops(call)
    if name not in MATMULS:
        return 0
    tensors = [t for t in call if isinstance(t, torch.Tensor)]
    operand = tensors[1] if name == "baddbmm" and len(tensors) > 1 else tensors[0]
    inner = operand.shape[-1] if operand.dim() else 1
    return 2 * out.numel() * int(inner)


def _einsum_flops(call: Sequence[Any]) -> int:
    """Two operands: 2 x the product of every index's size (each output element sums over the
    contracted ones). Other forms are not counted."""
    equation = next((a for a in call if isinstance(a, str)), None)
    operands = list(tensors_in(call))
    if equation is None or len(operands) != 2:
        return 0
    inputs = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for letters, operand in zip(inputs, operands, strict=False):
        if "." in letters or len(letters) != operand.dim():
            return 0
        sizes.update(zip(letters, (int(s) for s in operand.shape), strict=True))
    total = 2
    for size in sizes.values():
        total *= size
    return total


def value_range(tensor: torch.Tensor) -> tuple[float, float] | None:
    if tensor.numel() == 0 or tensor.is_complex():
        return None
    values = tensor.detach()
    if values.dtype == torch.bool:
        values = values.to(torch.uint8)
    low, high = torch.aminmax(values)
    return float(low), float(high)
