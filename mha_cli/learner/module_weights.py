"""A module's weights as d2l names them (`W_q.weight` ... `W_o.bias`), whatever the module calls
its projections, so `mha trace --check` can run mha's reference with the very same numbers.

Each layout is a converter: a function from the module's `state_dict()` to d2l's names (and
the layout's name), or None when the state dict is not of that layout. `register` adds one;
the first converter that answers wins. Shipped: d2l's own names (and its AdditiveAttention),
`torch.nn.MultiheadAttention` (via `files/layouts.py`), the separate projections most code
writes (`q_proj`, `query`, `to_q`, `wq`, ...) and the packed ones (nanoGPT's `c_attn`, GPT-2's
Conv1D `c_attn`, lucidrains' `to_qkv`, timm's `qkv`). Weights are nn.Linear's (out, in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mha_cli.errors import MhaError
from mha_cli.files.layouts import D2L_ADDITIVE, TORCH_PACKED, TORCH_SEPARATE, detect_layout, to_d2l
from mha_cli.messages import listing

if TYPE_CHECKING:
    import torch

State = Mapping[str, "torch.Tensor"]
Converter = Callable[[State], "tuple[dict[str, torch.Tensor], str] | None"]
CONVERTERS: list[Converter] = []


def register(converter: Converter) -> Converter:
    """Add a layout (usable as a decorator); later layouts are tried after the shipped ones."""
    CONVERTERS.append(converter)
    return converter


def to_d2l_state(state: State, owner: str) -> tuple[dict[str, torch.Tensor], str]:
    """The module's weights in d2l's names and the layout's name, or one line saying why not."""
    for converter in CONVERTERS:
        found = converter(state)
        if found is not None:
            return found
    raise MhaError(
        f"--check cannot read {owner}'s weights as W_q, W_k, W_v, W_o: its state_dict holds "
        f"{listing(state)}; name the projections W_q ... W_o (d2l), q_proj ... o_proj, or use "
        "nn.MultiheadAttention; or drop --check"
    )


# Separate projections: (query, key, value, output) member names, each output name tried in turn.
SEPARATE = {
    "d2l MultiHeadAttention (W_q, W_k, W_v, W_o)": ("W_q", "W_k", "W_v", ("W_o",)),
    "q_proj, k_proj, v_proj, o_proj": ("q_proj", "k_proj", "v_proj", ("o_proj", "out_proj")),
    "query, key, value, out": ("query", "key", "value", ("out", "dense", "output", "proj")),
    "to_q, to_k, to_v, to_out": ("to_q", "to_k", "to_v", ("to_out", "to_out.0")),
    "wq, wk, wv, wo": ("wq", "wk", "wv", ("wo",)),
}
# Packed: (q|k|v projection, output projection) member names.
PACKED = {
    "nanoGPT (c_attn, c_proj)": ("c_attn", ("c_proj",)),
    "packed to_qkv, to_out": ("to_qkv", ("to_out", "to_out.0")),
    "packed qkv, proj": ("qkv", ("proj", "out_proj")),
}


def _prefixes(state: State, member: str) -> list[str]:
    """Module paths in front of `member.weight` ("" for the module itself)."""
    suffix = f"{member}.weight"
    return [key[: -len(suffix)] for key in state if key == suffix or key.endswith("." + suffix)]


def _copy(state: State, source: str, target: str, into: dict[str, torch.Tensor]) -> None:
    into[f"{target}.weight"] = state[f"{source}.weight"]
    if f"{source}.bias" in state:
        into[f"{target}.bias"] = state[f"{source}.bias"]


def _separate(state: State) -> tuple[dict[str, torch.Tensor], str] | None:
    for layout, (q, k, v, outs) in SEPARATE.items():
        for prefix in _prefixes(state, q):
            names = [prefix + m for m in (q, k, v)]
            out = next((prefix + o for o in outs if f"{prefix}{o}.weight" in state), None)
            if out is None or not all(f"{n}.weight" in state for n in names):
                continue
            into: dict[str, torch.Tensor] = {}
            for source, target in zip([*names, out], ("W_q", "W_k", "W_v", "W_o"), strict=True):
                _copy(state, source, target, into)
            return into, layout
    return None


def _packed(state: State) -> tuple[dict[str, torch.Tensor], str] | None:
    for layout, (qkv, outs) in PACKED.items():
        for prefix in _prefixes(state, qkv):
            out = next((prefix + o for o in outs if f"{prefix}{o}.weight" in state), None)
            if out is None:
                continue
            weight = state[f"{prefix}{qkv}.weight"]
            bias = state.get(f"{prefix}{qkv}.bias")
            name = layout
            if weight.dim() == 2 and weight.shape[1] == 3 * weight.shape[0]:
                weight, name = weight.T, layout + ", Conv1D (in, out) as GPT-2 stores it"
            if weight.dim() != 2 or weight.shape[0] % 3:
                continue
            into = dict(
                zip(("W_q.weight", "W_k.weight", "W_v.weight"), weight.chunk(3), strict=True)
            )
            if bias is not None:
                into |= dict(zip(("W_q.bias", "W_k.bias", "W_v.bias"), bias.chunk(3), strict=True))
            out_weight = state[f"{out}.weight"]
            if name != layout:  # Conv1D stores the output projection transposed too
                out_weight = out_weight.T
            into["W_o.weight"] = out_weight
            if f"{out}.bias" in state:
                into["W_o.bias"] = state[f"{out}.bias"]
            return into, name
    return None


def _torch_and_additive(state: State) -> tuple[dict[str, torch.Tensor], str] | None:
    """nn.MultiheadAttention (packed or separate) and d2l's AdditiveAttention, as the
    checkpoint reader knows them."""
    markers = {"in_proj_weight": TORCH_PACKED, "q_proj_weight": TORCH_SEPARATE}
    markers["w_v.weight"] = D2L_ADDITIVE
    if not any(marker in state for marker in markers):
        return None
    keys = {key: key for key in state if not key.startswith("bias_")}
    try:
        layout = detect_layout(Path("the module"), dict(state), keys)
        converted, _ = to_d2l(Path("the module"), layout, dict(state), keys)
    except MhaError:
        return None
    return converted, layout.name


for _converter in (_torch_and_additive, _separate, _packed):
    register(_converter)
