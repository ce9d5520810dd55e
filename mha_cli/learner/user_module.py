"""Build the user's module with the specification's sizes and give it the specification's inputs.

A class is built by the signature it declares: d2l's Chinese edition
(`key_size, query_size, value_size, num_hiddens, num_heads, dropout`), the English edition
(`num_hiddens, num_heads, dropout`, `bias`), `torch.nn.MultiheadAttention`
(`embed_dim, num_heads`, ...), nanoGPT's `config`, and the other usual names. Its weights are
drawn by its own initialisation, seeded from `--seed`. Its inputs are those `mha inspect` makes
(`run.make_inputs`), passed as its `forward` asks: `(queries, keys, values, valid_lens)`, one
`x` for self-attention, or `nn.MultiheadAttention`'s keywords. A function target builds both
itself (`user_inputs.py`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from mha_cli.errors import MhaError
from mha_cli.layer.masking import positional_mask
from mha_cli.layer.run import make_inputs, stream_seed
from mha_cli.learner.user_code import Target, call_user
from mha_cli.spec import axes as ax
from mha_cli.spec.axis_guess import Axis
from mha_cli.spec.spec import AttentionSpec

Inputs = list[tuple[str, torch.Tensor, list[Axis]]]


@dataclass
class Prepared:
    """The module ready to run, its call, and what the reference needs to run alike."""

    module: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    inputs: Inputs  # the input rows of the table: name, tensor, axes
    roles: dict[str, torch.Tensor | None]  # queries, keys, values, valid_lens for the reference
    spec: AttentionSpec  # the sizes as the module really ran
    notes: list[str] = field(default_factory=list)
    sequence_first: bool = False  # nn.MultiheadAttention(batch_first=False): output (q, b, H)


def constructor_values(spec: AttentionSpec) -> dict[str, Any]:
    """Every constructor parameter mha can fill, by the names attention code gives them."""
    final = spec.final()  # every size written out
    hiddens, heads, kv_heads = spec.hiddens, spec.heads, final.kv_heads
    values: dict[str, Any] = {
        "key_size": final.key_size,
        "query_size": final.query_size,
        "value_size": final.value_size,
        "dropout": spec.dropout,
        "bias": spec.bias,
        "kdim": final.key_size,
        "vdim": final.value_size,
        "batch_first": True,  # mha's inputs are (batch, sequence, features)
        "causal": spec.causal,
        "is_causal": spec.causal,
        "block_size": max(spec.queries, spec.kv),
        "head_dim": final.head_dim,
        "dim_head": final.head_dim,
    }
    values |= dict.fromkeys(
        ("num_hiddens", "embed_dim", "hidden_size", "d_model", "n_embd", "dim"), hiddens
    )
    values |= dict.fromkeys(
        ("num_heads", "n_head", "n_heads", "nhead", "heads", "num_attention_heads"), heads
    )
    values |= dict.fromkeys(("num_kv_heads", "n_kv_heads", "num_key_value_heads"), kv_heads)
    # nanoGPT's CausalSelfAttention(config) reads these fields of its GPTConfig.
    values["config"] = SimpleNamespace(
        n_embd=hiddens,
        n_head=heads,
        bias=spec.bias,
        dropout=spec.dropout,
        block_size=values["block_size"],
        hidden_size=hiddens,
        num_attention_heads=heads,
    )
    return values


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The user's initialisation draws from torch's global generator: seed it from --seed for
    this build only, and leave the caller's random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "weights"))
        yield


def build_module(target: Target, cls: type[nn.Module], spec: AttentionSpec) -> nn.Module:
    """`cls(...)` with each parameter it declares filled from the specification."""
    values = constructor_values(spec)
    positional, keywords, missing = [], {}, []
    for p in inspect.signature(cls).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name not in values:
            if p.default is p.empty:
                missing.append(p.name)
            continue
        if p.kind is p.POSITIONAL_ONLY:
            positional.append(values[p.name])
        else:
            keywords[p.name] = values[p.name]
    if missing:
        raise MhaError(
            f"{target.text}: mha cannot fill {cls.__name__}'s parameter(s) {', '.join(missing)} "
            "from the specification (it fills num_hiddens, num_heads, dropout, key_size, ... "
            "embed_dim, config); name a function that returns (module, args) instead"
        )
    return call_user(target, cls, *positional, **keywords)


def with_spec_inputs(
    module: nn.Module, spec: AttentionSpec, device: torch.device, dtype: torch.dtype, given: Any
) -> Prepared:
    """The call `forward` asks for, with the inputs `mha inspect` makes."""
    queries, keys, values = make_inputs(spec.final(), device, dtype, given)
    lens = None
    if spec.valid_lens is not None:
        lens = torch.tensor(spec.valid_lens, dtype=torch.long, device=device)  # (b,) or (b, q)
    if isinstance(module, nn.MultiheadAttention):
        return _torch_call(module, spec, queries, keys, values, lens)
    names = forward_parameters(module)
    if len(names) >= 3:
        args: list[Any] = [queries, keys, values]
        if len(names) >= 4:
            args.append(lens)
        inputs = [
            (names[0], queries, [Axis(ax.BATCH), Axis(ax.QUERIES), Axis(ax.QUERY_SIZE)]),
            (names[1], keys, [Axis(ax.BATCH), Axis(ax.KV_PAIRS), Axis(ax.KEY_SIZE)]),
            (names[2], values, [Axis(ax.BATCH), Axis(ax.KV_PAIRS), Axis(ax.VALUE_SIZE)]),
        ]
        if lens is not None and len(names) >= 4:
            inputs.append((names[3], lens, lens_axes(lens)))
        roles: dict[str, torch.Tensor | None] = {"queries": queries, "keys": keys}
        roles |= {"values": values, "valid_lens": lens if len(names) >= 4 else None}
        run = spec if len(names) >= 4 else replace(spec, valid_lens=None)
        return Prepared(module, tuple(args), {}, inputs, roles, run)
    if len(names) >= 1:
        return _self_attention(module, spec, names[0], queries)
    raise MhaError(
        f"{type(module).__name__}.forward takes no input mha can give; mha passes "
        "(queries, keys, values, valid_lens), or one x for self-attention; "
        "name a function that returns (module, args) instead"
    )


def forward_parameters(module: nn.Module) -> list[str]:
    """The names of forward's positional parameters (self excluded)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    signature = inspect.signature(module.forward)
    return [p.name for p in signature.parameters.values() if p.kind in kinds]


def lens_axes(lens: torch.Tensor) -> list[Axis]:
    return [Axis(ax.BATCH)] + ([Axis(ax.QUERIES)] if lens.dim() == 2 else [])


def _self_attention(module: nn.Module, spec: AttentionSpec, name: str, x: torch.Tensor) -> Prepared:
    """forward(x): keys and values are x, so there are as many kv pairs as queries."""
    final = spec.final()  # every size written out
    notes = []
    if "kv" in spec.explicit and spec.kv != spec.queries:
        notes.append(
            f"{name} is the only input (self-attention): kv pairs = queries = {spec.queries}, "
            f"not --kv {spec.kv}"
        )
    if "valid_lens" in spec.explicit and spec.valid_lens is not None:
        notes.append(f"forward({name}) takes no valid_lens: --valid-lens is not applied")
    run = replace(
        spec,
        kv=spec.queries,
        key_size=final.query_size,
        value_size=final.query_size,
        valid_lens=None,
    )
    feature = ax.HIDDENS if final.query_size == spec.hiddens else ax.QUERY_SIZE
    inputs = [(name, x, [Axis(ax.BATCH), Axis(ax.QUERIES), Axis(feature)])]
    roles: dict[str, torch.Tensor | None] = {
        "queries": x,
        "keys": x,
        "values": x,
        "valid_lens": None,
    }
    return Prepared(module, (x,), {}, inputs, roles, run, notes)


def _torch_call(
    module: nn.MultiheadAttention,
    spec: AttentionSpec,
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    lens: torch.Tensor | None,
) -> Prepared:
    """What `nn.MultiheadAttention.forward` takes: padding as `key_padding_mask` (True: do not
    attend), per-query lengths and the causal mask as a boolean `attn_mask`, and every head's
    weights (`average_attn_weights=False`)."""
    kwargs: dict[str, Any] = {"need_weights": True, "average_attn_weights": False}
    inputs: Inputs = [
        ("query", queries, [Axis(ax.BATCH), Axis(ax.QUERIES), Axis(ax.QUERY_SIZE)]),
        ("key", keys, [Axis(ax.BATCH), Axis(ax.KV_PAIRS), Axis(ax.KEY_SIZE)]),
        ("value", values, [Axis(ax.BATCH), Axis(ax.KV_PAIRS), Axis(ax.VALUE_SIZE)]),
    ]
    q, k, device = queries.shape[1], keys.shape[1], queries.device
    if lens is not None and lens.dim() == 1:
        padding = torch.arange(k, device=device)[None, :] >= lens[:, None]  # (b, k)
        kwargs["key_padding_mask"] = padding
        inputs.append(("key_padding_mask", padding, [Axis(ax.BATCH), Axis(ax.KV_PAIRS)]))
    per_query = lens if lens is not None and lens.dim() == 2 else None
    mask = positional_mask(per_query, q, k, spec.causal, device, spec.window)  # (b|1, q, k)
    if mask is not None and mask.shape[0] == 1:
        mask = mask[0]  # (q, k): the same for every example and head
        axes = [Axis(ax.QUERIES), Axis(ax.KV_PAIRS)]
    elif mask is not None:
        mask = mask.repeat_interleave(module.num_heads, dim=0)  # ((b h), q, k)
        axes = [Axis(ax.BATCH_HEADS), Axis(ax.QUERIES), Axis(ax.KV_PAIRS)]
    if mask is not None:
        kwargs["attn_mask"] = mask
        inputs.append(("attn_mask", mask, axes))
    roles: dict[str, torch.Tensor | None] = {"queries": queries, "keys": keys}
    roles |= {"values": values, "valid_lens": lens}
    return Prepared(module, (queries, keys, values), kwargs, inputs, roles, spec)
