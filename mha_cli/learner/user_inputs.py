"""A function target: the user builds the module and its inputs; mha reads what they are.

`def make(): return module, args` (or `module, args, kwargs`). The sizes of the run (batch,
queries, kv pairs, feature sizes, valid_lens) then come from those inputs, the heads and
num_hiddens from the module's attributes where it has them, so the axes are named and the
reference of `--check` runs with the very same numbers.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from mha_cli.errors import MhaError
from mha_cli.learner.user_code import Target, call_user
from mha_cli.learner.user_module import Inputs, Prepared, lens_axes, seeded
from mha_cli.spec import axes as ax
from mha_cli.spec.axis_guess import Axis, AxisSizes, name_shape
from mha_cli.spec.spec import AttentionSpec

HEADS_ATTRIBUTES = ("num_heads", "n_head", "n_heads", "heads", "nhead", "num_attention_heads", "h")
HIDDENS_ATTRIBUTES = ("num_hiddens", "embed_dim", "hidden_size", "n_embd", "d_model", "dim")
RETURNS = "a function target must return (module, args) or (module, args, kwargs)"


def from_function(target: Target, spec: AttentionSpec, device: torch.device) -> Prepared:
    with seeded(spec.seed), torch.device(device):
        result = call_user(target, target.obj)
    module, args, kwargs = _unpack(target, result)
    bound = _bind(target, module, args, kwargs)
    roles = _roles(module, bound)
    run = _sizes(spec, module, roles)
    sizes = AxisSizes.of(run)
    inputs: Inputs = []
    for name, value in bound.items():
        if isinstance(value, torch.Tensor):
            inputs.append((name, value, _axes(name, value, roles, sizes)))
    sequence_first = isinstance(module, nn.MultiheadAttention) and not module.batch_first
    return Prepared(module, tuple(args), dict(kwargs), inputs, roles, run, [], sequence_first)


def _unpack(target: Target, result: Any) -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise MhaError(f"{target.text} returned {type(result).__name__}; {RETURNS}")
    module, args, kwargs = result[0], result[1], result[2] if len(result) == 3 else {}
    if not isinstance(module, nn.Module):
        raise MhaError(f"{target.text} returned a {type(module).__name__} first; {RETURNS}")
    if isinstance(args, torch.Tensor):
        args = (args,)  # `return layer, x` means one input
    if not isinstance(args, tuple | list) or not isinstance(kwargs, dict):
        raise MhaError(f"{target.text}: args must be a tuple and kwargs a dict; {RETURNS}")
    return module, tuple(args), kwargs


def _bind(target: Target, module: nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The inputs by the names forward gives them."""
    try:
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
    except TypeError as error:
        raise MhaError(
            f"{target.text}: {type(module).__name__}.forward does not take the args returned: "
            f"{error}"
        ) from None
    return dict(bound.arguments)


def _roles(module: nn.Module, bound: dict[str, Any]) -> dict[str, torch.Tensor | None]:
    """Which inputs are the queries, keys, values and valid lengths (empty when unclear)."""
    tensors = [(n, v) for n, v in bound.items() if isinstance(v, torch.Tensor)]
    if isinstance(module, nn.MultiheadAttention):
        q, k, v = (bound.get(n) for n in ("query", "key", "value"))
        if not module.batch_first and all(isinstance(t, torch.Tensor) for t in (q, k, v)):
            # (L, N, E) -> (N, L, E): sequence first, as torch's default is
            q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # type: ignore[union-attr]
        return {
            "queries": q,
            "keys": k,
            "values": v,
            "valid_lens": _lens(bound.get("key_padding_mask")),
        }
    floats = [v for _, v in tensors if v.is_floating_point()]
    if len(floats) == 1 and len(bound) == 1:
        return {"queries": floats[0], "keys": floats[0], "values": floats[0], "valid_lens": None}
    values = list(bound.values())
    if len(values) >= 3 and all(isinstance(v, torch.Tensor) for v in values[:3]):
        lens = values[3] if len(values) >= 4 else None
        if isinstance(lens, torch.Tensor) and lens.is_floating_point():
            lens = None
        return {"queries": values[0], "keys": values[1], "values": values[2], "valid_lens": lens}
    return {}


def _lens(padding: Any) -> torch.Tensor | None:
    """valid_lens from a key_padding_mask that pads on the right, as d2l's does."""
    if not isinstance(padding, torch.Tensor) or padding.dtype != torch.bool or padding.dim() != 2:
        return None
    lens = (~padding).sum(dim=1)  # (b,)
    expected = torch.arange(padding.shape[1], device=padding.device)[None, :] >= lens[:, None]
    return lens if bool((expected == padding).all()) else None


def _sizes(spec: AttentionSpec, module: nn.Module, roles: dict[str, Any]) -> AttentionSpec:
    heads = _attribute(module, HEADS_ATTRIBUTES) or spec.heads
    queries, keys, values = roles.get("queries"), roles.get("keys"), roles.get("values")
    if not isinstance(queries, torch.Tensor) or queries.dim() != 3:
        return replace(spec, heads=heads)
    hiddens = _attribute(module, HIDDENS_ATTRIBUTES) or queries.shape[-1]
    lens = roles.get("valid_lens")
    valid = (
        None if lens is None else _as_tuple(lens.tolist()) if lens.device.type != "meta" else None
    )
    return replace(
        spec,
        batch=queries.shape[0],
        queries=queries.shape[1],
        kv=keys.shape[1] if isinstance(keys, torch.Tensor) else queries.shape[1],
        query_size=queries.shape[2],
        key_size=keys.shape[2] if isinstance(keys, torch.Tensor) else None,
        value_size=values.shape[2] if isinstance(values, torch.Tensor) else None,
        hiddens=hiddens,
        heads=heads,
        kv_heads=None,
        head_dim=None,
        valid_lens=valid,
    )


def _attribute(module: nn.Module, names: tuple[str, ...]) -> int | None:
    for holder in (module, getattr(module, "config", None)):
        for name in names:
            value = getattr(holder, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else int(value)


def _axes(name: str, value: torch.Tensor, roles: dict[str, Any], sizes: AxisSizes) -> list[Axis]:
    known = {
        "queries": [ax.BATCH, ax.QUERIES, ax.QUERY_SIZE],
        "keys": [ax.BATCH, ax.KV_PAIRS, ax.KEY_SIZE],
        "values": [ax.BATCH, ax.KV_PAIRS, ax.VALUE_SIZE],
    }
    for role, names in known.items():
        if roles.get(role) is value and value.dim() == 3:
            return [Axis(n) for n in names]
    if roles.get("valid_lens") is value:
        return lens_axes(value)
    return name_shape(tuple(value.shape), sizes)
