"""Read an attention layer's weights from a checkpoint and name them as d2l does.

Four layouts are understood: d2l's `MultiHeadAttention` and `AdditiveAttention`, and
`torch.nn.MultiheadAttention` with packed or separate input projections. Whatever the file
holds, the result uses d2l's names ("W_q.weight" is (out_features, in_features), ...), keeps
each tensor's dtype and values, and has passed the shape checks every such layer satisfies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.tensor_files import dtype_text, read_tensor_file, shape_text

if TYPE_CHECKING:
    import torch

D2L_MHA = "d2l MultiHeadAttention"
D2L_ADDITIVE = "d2l AdditiveAttention"
TORCH_PACKED = "torch.nn.MultiheadAttention (packed in_proj)"
TORCH_SEPARATE = "torch.nn.MultiheadAttention (separate q/k/v projections)"

_FIX = "a state_dict: torch.save(layer.state_dict(), path)"
_SHOWN_KEYS = 8  # a whole model's state dict has hundreds of keys; messages show a few


@dataclass(frozen=True)
class Checkpoint:
    state: dict[str, torch.Tensor]  # d2l naming: "W_q.weight" (out, in), ..., "W_q.bias" if any
    layout: str  # one of the layout names above, for people
    keys_found: tuple[str, ...]  # the file's own key names for this layer, for messages


@dataclass(frozen=True)
class _Layout:
    name: str
    marker: str  # the query projection: every checkpoint of this layout has it
    required: tuple[str, ...]
    biases: tuple[str, ...]  # all present or all absent


_LAYOUTS = (
    _Layout(
        TORCH_PACKED,
        "in_proj_weight",
        ("in_proj_weight", "out_proj.weight"),
        ("in_proj_bias", "out_proj.bias"),
    ),
    _Layout(
        TORCH_SEPARATE,
        "q_proj_weight",
        ("q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"),
        ("in_proj_bias", "out_proj.bias"),
    ),
    _Layout(
        D2L_ADDITIVE,
        "w_v.weight",  # checked before W_q.weight, which additive attention has too
        ("W_q.weight", "W_k.weight", "w_v.weight"),
        ("W_q.bias", "W_k.bias", "w_v.bias"),
    ),
    _Layout(
        D2L_MHA,
        "W_q.weight",
        ("W_q.weight", "W_k.weight", "W_v.weight", "W_o.weight"),
        ("W_q.bias", "W_k.bias", "W_v.bias", "W_o.bias"),
    ),
)
_ADD_BIAS_KV = ("bias_k", "bias_v")
_MEMBERS = frozenset(
    name for layout in _LAYOUTS for name in layout.required + layout.biases
) | frozenset(_ADD_BIAS_KV)


def load_checkpoint(path: Path) -> Checkpoint:
    """The attention layer in `path`, in d2l naming; one-line `MhaError` for any problem."""
    path = Path(path)
    state = _unwrap(path, read_tensor_file(path, _FIX))
    prefix = _single_prefix(path, state)
    # member name ("W_q.weight") -> the file's key ("encoder.attention.W_q.weight")
    keys = {key[len(prefix) :]: key for key in state if _member(key, prefix)}
    layout = _detect(path, state, keys)
    tensors = {member: _tensor(path, key, state[key]) for member, key in keys.items()}
    _check_biases(path, layout, keys)
    _check_dims(path, tensors, keys)
    d2l, origin = _to_d2l(path, layout, tensors, keys)
    if layout.name == D2L_ADDITIVE:
        _check_additive(path, d2l, origin)
    else:
        _check_dot(path, d2l, origin)
    _check_bias_lengths(path, d2l, origin)
    return Checkpoint(d2l, layout.name, tuple(keys.values()))


# ---------------------------------------------------------------------------------------------
# Finding the layer


def _unwrap(path: Path, stored: Any) -> dict[Any, Any]:
    """The state dict itself: training scripts often wrap it under "state_dict" or "model"."""
    if not isinstance(stored, dict):
        raise MhaError(f"{path} holds a {type(stored).__name__}, not a state dict; save {_FIX}")
    for wrapper in ("state_dict", "model"):
        if isinstance(stored.get(wrapper), dict):
            return stored[wrapper]
    return stored


def _single_prefix(path: Path, state: dict[Any, Any]) -> str:
    """The one module path in front of the attention keys ("" for a bare layer)."""
    prefixes = sorted(
        {
            key[: len(key) - len(member)]
            for key in state
            if isinstance(key, str)
            for member in _MEMBERS
            if key == member or key.endswith("." + member)
        }
    )
    if not prefixes:
        raise MhaError(_unknown_layout(path, state))
    if len(prefixes) > 1:
        shown = _listing(repr(p) for p in prefixes)
        raise MhaError(
            f"{path} holds more than one attention layer (key prefixes {shown}); reading one "
            "layer out of a larger model is not supported yet; save that layer's state_dict() alone"
        )
    return prefixes[0]


def _member(key: Any, prefix: str) -> bool:
    return isinstance(key, str) and key.startswith(prefix) and key[len(prefix) :] in _MEMBERS


def _detect(path: Path, state: dict[Any, Any], keys: dict[str, str]) -> _Layout:
    found = list(keys.values())
    if any(name in keys for name in _ADD_BIAS_KV):
        raise MhaError(
            f"{path} holds bias_k/bias_v: torch.nn.MultiheadAttention with add_bias_kv=True is "
            "not supported; use a layer built without add_bias_kv"
        )
    layout = next((lay for lay in _LAYOUTS if lay.marker in keys), None)
    if layout is None:
        raise MhaError(_unknown_layout(path, state))
    missing = [name for name in layout.required if name not in keys]
    if missing:
        raise MhaError(
            f"{path} looks like a {layout.name} checkpoint but lacks {', '.join(missing)} "
            f"(found {_listing(found)}); save the whole layer's state_dict()"
        )
    extra = [keys[name] for name in keys if name not in layout.required + layout.biases]
    if extra:
        raise MhaError(
            f"{path} mixes layouts: {', '.join(extra)} do not belong in a {layout.name} "
            f"checkpoint (found {_listing(found)}); save one layer's state_dict()"
        )
    return layout


def _unknown_layout(path: Path, state: dict[Any, Any]) -> str:
    expected = " | ".join(f"{lay.name}: {', '.join(lay.required)}" for lay in reversed(_LAYOUTS))
    return (
        f"{path}: unknown checkpoint layout; found keys {_listing(state)}; expected "
        f"{expected} (biases optional); save an attention layer's state_dict()"
    )


def _tensor(path: Path, key: str, value: Any) -> torch.Tensor:
    import torch

    if not isinstance(value, torch.Tensor):
        raise MhaError(f"{path}: '{key}' holds a {type(value).__name__}, not a tensor; save {_FIX}")
    return value


# ---------------------------------------------------------------------------------------------
# Checks on the file's own tensors


def _check_biases(path: Path, layout: _Layout, keys: dict[str, str]) -> None:
    # One `bias` flag builds every projection of the layer, so a partial set cannot be loaded.
    present = [keys[name] for name in layout.biases if name in keys]
    absent = [name for name in layout.biases if name not in keys]
    if present and absent:
        raise MhaError(
            f"{path} has {', '.join(present)} but no {', '.join(absent)}; the layer has a bias "
            "on every projection or on none; save a layer built with one bias setting"
        )


def _check_dims(path: Path, tensors: dict[str, torch.Tensor], keys: dict[str, str]) -> None:
    for name, tensor in tensors.items():
        is_bias = name.endswith("bias")
        wanted = 1 if is_bias else 2
        if tensor.dim() != wanted:
            form = "1-D (out_features,)" if is_bias else "2-D (out_features, in_features)"
            raise MhaError(
                f"{path}: '{keys[name]}' has shape {shape_text(tensor)}, expected {form}; "
                f"save {_FIX}"
            )
        if not tensor.is_floating_point():
            raise MhaError(
                f"{path}: '{keys[name]}' holds {dtype_text(tensor)} values, expected floating "
                "point weights; save the trained layer's state_dict()"
            )
        if 0 in tensor.shape:
            raise MhaError(
                f"{path}: '{keys[name]}' has shape {shape_text(tensor)}, with an empty axis; "
                "save a trained layer's state_dict()"
            )


# ---------------------------------------------------------------------------------------------
# Renaming to d2l


def _to_d2l(
    path: Path, layout: _Layout, tensors: dict[str, torch.Tensor], keys: dict[str, str]
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
            f"({3 * embed}, {embed}), the q, k and v projections stacked; save {_FIX}"
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
                f"{embed} outputs (embed_dim, as q_proj_weight); save {_FIX}"
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
            f"({3 * embed},), the q, k and v biases stacked; save {_FIX}"
        )
    for i, (p, part) in enumerate(zip("qkv", bias.split(embed), strict=True)):
        state[f"W_{p}.bias"] = part
        origin[f"W_{p}.bias"] = f"{keys['in_proj_bias']}[{i * embed}:{(i + 1) * embed}]"


# ---------------------------------------------------------------------------------------------
# Checks every layer of the layout satisfies


def _check_dot(path: Path, state: dict[str, torch.Tensor], origin: dict[str, str]) -> None:
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


def _check_additive(path: Path, state: dict[str, torch.Tensor], origin: dict[str, str]) -> None:
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


def _check_bias_lengths(path: Path, state: dict[str, torch.Tensor], origin: dict[str, str]) -> None:
    for name, bias in state.items():
        if not name.endswith(".bias"):
            continue
        weight_name = name.removesuffix(".bias") + ".weight"
        outputs = state[weight_name].shape[0]
        if bias.shape[0] != outputs:
            raise MhaError(
                f"{path}: {origin[name]} has {bias.shape[0]} entries, expected {outputs} "
                f"(the outputs of {origin[weight_name]}); save {_FIX}"
            )


# ---------------------------------------------------------------------------------------------
# Messages


def _listing(keys: Any) -> str:
    """At most a few names, then how many more: "a, b, c, ... 120 more"."""
    names = [str(key) for key in keys]
    if not names:
        return "(none)"
    shown = ", ".join(names[:_SHOWN_KEYS])
    rest = len(names) - _SHOWN_KEYS
    return f"{shown}, ... {rest} more" if rest > 0 else shown
