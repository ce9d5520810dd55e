"""The layouts an attention layer's checkpoint may have, and how each maps to d2l's names.

Four layouts are understood: d2l's `MultiHeadAttention` and `AdditiveAttention`, and
`torch.nn.MultiheadAttention` with packed or separate input projections. Given the layer's keys
(found in the file by `checkpoints`), this module tells the layouts apart, renames the tensors to
d2l's names ("W_q.weight" is (out_features, in_features), ...) and checks the shapes every layer
of the layout satisfies, so a mixed-up file fails with one line that names the tensor instead of
a shape error inside the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.messages import listing, shape_text

if TYPE_CHECKING:
    import torch

D2L_MHA = "d2l MultiHeadAttention"
D2L_ADDITIVE = "d2l AdditiveAttention"
TORCH_PACKED = "torch.nn.MultiheadAttention (packed in_proj)"
TORCH_SEPARATE = "torch.nn.MultiheadAttention (separate q/k/v projections)"

FIX = "a state_dict: torch.save(layer.state_dict(), path)"


@dataclass(frozen=True)
class Layout:
    name: str
    marker: str  # the query projection: every checkpoint of this layout has it
    required: tuple[str, ...]
    biases: tuple[str, ...]  # all present or all absent


_LAYOUTS = (
    Layout(
        TORCH_PACKED,
        "in_proj_weight",
        ("in_proj_weight", "out_proj.weight"),
        ("in_proj_bias", "out_proj.bias"),
    ),
    Layout(
        TORCH_SEPARATE,
        "q_proj_weight",
        ("q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"),
        ("in_proj_bias", "out_proj.bias"),
    ),
    Layout(
        D2L_ADDITIVE,
        "w_v.weight",  # checked before W_q.weight, which additive attention has too
        ("W_q.weight", "W_k.weight", "w_v.weight"),
        ("W_q.bias", "W_k.bias", "w_v.bias"),
    ),
    Layout(
        D2L_MHA,
        "W_q.weight",
        ("W_q.weight", "W_k.weight", "W_v.weight", "W_o.weight"),
        ("W_q.bias", "W_k.bias", "W_v.bias", "W_o.bias"),
    ),
)
_ADD_BIAS_KV = ("bias_k", "bias_v")
MEMBERS = frozenset(
    name for layout in _LAYOUTS for name in layout.required + layout.biases
) | frozenset(_ADD_BIAS_KV)


# ---------------------------------------------------------------------------------------------
# Recognising the layout


def detect_layout(path: Path, state: dict[Any, Any], keys: dict[str, str]) -> Layout:
    found = list(keys.values())
    if any(name in keys for name in _ADD_BIAS_KV):
        raise MhaError(
            f"{path} holds bias_k/bias_v: torch.nn.MultiheadAttention with add_bias_kv=True is "
            "not supported; use a layer built without add_bias_kv"
        )
    layout = next((lay for lay in _LAYOUTS if lay.marker in keys), None)
    if layout is None:
        raise MhaError(unknown_layout(path, state))
    missing = [name for name in layout.required if name not in keys]
    if missing:
        raise MhaError(
            f"{path} looks like a {layout.name} checkpoint but lacks {', '.join(missing)} "
            f"(found {listing(found)}); save the whole layer's state_dict()"
        )
    extra = [keys[name] for name in keys if name not in layout.required + layout.biases]
    if extra:
        raise MhaError(
            f"{path} mixes layouts: {', '.join(extra)} do not belong in a {layout.name} "
            f"checkpoint (found {listing(found)}); save one layer's state_dict()"
        )
    return layout


def unknown_layout(path: Path, state: dict[Any, Any]) -> str:
    expected = " | ".join(f"{lay.name}: {', '.join(lay.required)}" for lay in reversed(_LAYOUTS))
    return (
        f"{path}: unknown checkpoint layout; found keys {listing(state)}; expected "
        f"{expected} (biases optional); save an attention layer's state_dict()"
    )


# ---------------------------------------------------------------------------------------------
# Renaming to d2l


def to_d2l(
    path: Path, layout: Layout, tensors: dict[str, torch.Tensor], keys: dict[str, str]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """d2l-named tensors, and for each the file's key it came from (for messages)."""
    if layout.name in (D2L_MHA, D2L_ADDITIVE):
        return dict(tensors), dict(keys)
    if layout.name == TORCH_PACKED:
        state, origin = _split_packed(path, tensors, keys)
    else:
        state, origin = _separate(path, tensors, keys)
    state["W_o.weight"], origin["W_o.weight"] = tensors["out_proj.weight"], keys["out_proj.weight"]
    if "out_proj.bias" in tensors:
        state["W_o.bias"], origin["W_o.bias"] = tensors["out_proj.bias"], keys["out_proj.bias"]
    return state, origin


def _split_packed(
    path: Path, tensors: dict[str, torch.Tensor], keys: dict[str, str]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    weight = tensors["in_proj_weight"]  # (3E, E): W_q, W_k, W_v stacked by rows
    embed = weight.shape[1]
    if weight.shape[0] != 3 * embed:
        raise MhaError(
            f"{path}: '{keys['in_proj_weight']}' has shape {shape_text(weight)}, expected "
            f"({3 * embed}, {embed}), the q, k and v projections stacked; save {FIX}"
        )
    state = dict(zip(("W_q.weight", "W_k.weight", "W_v.weight"), weight.split(embed), strict=True))
    origin = {
        f"W_{p}.weight": f"{keys['in_proj_weight']}[{i * embed}:{(i + 1) * embed}]"
        for i, p in enumerate("qkv")
    }
    _split_in_proj_bias(path, tensors, keys, embed, state, origin)
    return state, origin


def _separate(
    path: Path, tensors: dict[str, torch.Tensor], keys: dict[str, str]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    # Used by torch when kdim or vdim differ from embed_dim; every projection has E outputs.
    embed = tensors["q_proj_weight"].shape[0]
    state, origin = {}, {}
    for p in "qkv":
        weight = tensors[f"{p}_proj_weight"]
        if weight.shape[0] != embed:
            raise MhaError(
                f"{path}: '{keys[f'{p}_proj_weight']}' has shape {shape_text(weight)}, expected "
                f"{embed} outputs (embed_dim, as q_proj_weight); save {FIX}"
            )
        state[f"W_{p}.weight"], origin[f"W_{p}.weight"] = weight, keys[f"{p}_proj_weight"]
    _split_in_proj_bias(path, tensors, keys, embed, state, origin)
    return state, origin


def _split_in_proj_bias(
    path: Path,
    tensors: dict[str, torch.Tensor],
    keys: dict[str, str],
    embed: int,
    state: dict[str, torch.Tensor],
    origin: dict[str, str],
) -> None:
    if "in_proj_bias" not in tensors:
        return
    bias = tensors["in_proj_bias"]  # (3E,): the q, k and v biases one after the other
    if bias.shape[0] != 3 * embed:
        raise MhaError(
            f"{path}: '{keys['in_proj_bias']}' has shape {shape_text(bias)}, expected "
            f"({3 * embed},), the q, k and v biases stacked; save {FIX}"
        )
    for i, (p, part) in enumerate(zip("qkv", bias.split(embed), strict=True)):
        state[f"W_{p}.bias"] = part
        origin[f"W_{p}.bias"] = f"{keys['in_proj_bias']}[{i * embed}:{(i + 1) * embed}]"


# ---------------------------------------------------------------------------------------------
# Checks every layer of the layout satisfies


def check_dot(path: Path, state: dict[str, torch.Tensor], origin: dict[str, str]) -> None:
    # Only what holds for every variant: grouped-query layers give W_k and W_v fewer outputs
    # than W_q, and "full values" layers widen W_o's input to heads * W_q's outputs.
    q_out, k_out = state["W_q.weight"].shape[0], state["W_k.weight"].shape[0]
    v_out = state["W_v.weight"].shape[0]
    o_out, o_in = state["W_o.weight"].shape
    q, k, v, o = (origin[f"W_{p}.weight"] for p in "qkvo")
    fix = "the tensors must come from one attention layer; save its state_dict() unchanged"
    if q_out % k_out:
        raise MhaError(
            f"{path}: {q} has {q_out} outputs and {k} {k_out}; the query outputs must equal "
            f"the key outputs or be a multiple of them (grouped-query); {fix}"
        )
    if v_out not in (q_out, k_out):
        raise MhaError(
            f"{path}: {v} has {v_out} outputs, expected {k_out} (as {k}) or {q_out} (as {q}); {fix}"
        )
    if o_out != q_out:
        raise MhaError(f"{path}: {o} has {o_out} outputs, expected {q_out} (as {q}); {fix}")
    if o_in % q_out:
        raise MhaError(
            f"{path}: {o} has {o_in} inputs, expected a multiple of {q_out} (the outputs of "
            f"{q}); {fix}"
        )


def check_additive(path: Path, state: dict[str, torch.Tensor], origin: dict[str, str]) -> None:
    # Projected queries and keys are added, then w_v scores their sum to one number.
    hiddens = state["W_q.weight"].shape[0]
    fix = "the tensors must come from one AdditiveAttention layer; save its state_dict() unchanged"
    if state["W_k.weight"].shape[0] != hiddens:
        raise MhaError(
            f"{path}: {origin['W_k.weight']} has {state['W_k.weight'].shape[0]} outputs, "
            f"expected {hiddens} (as {origin['W_q.weight']}); {fix}"
        )
    if tuple(state["w_v.weight"].shape) != (1, hiddens):
        raise MhaError(
            f"{path}: {origin['w_v.weight']} has shape {shape_text(state['w_v.weight'])}, "
            f"expected (1, {hiddens}); {fix}"
        )


def check_bias_lengths(path: Path, state: dict[str, torch.Tensor], origin: dict[str, str]) -> None:
    for name, bias in state.items():
        if not name.endswith(".bias"):
            continue
        weight_name = name.removesuffix(".bias") + ".weight"
        outputs = state[weight_name].shape[0]
        if bias.shape[0] != outputs:
            raise MhaError(
                f"{path}: {origin[name]} has {bias.shape[0]} entries, expected {outputs} "
                f"(the outputs of {origin[weight_name]}); save {FIX}"
            )
