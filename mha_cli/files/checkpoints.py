"""Read an attention layer's weights from a checkpoint and name them as d2l does.

Four layouts are understood: d2l's `MultiHeadAttention` and `AdditiveAttention`, and
`torch.nn.MultiheadAttention` with packed or separate input projections. Whatever the file
holds, the result uses d2l's names ("W_q.weight" is (out_features, in_features), ...), keeps
each tensor's dtype and values, and has passed the shape checks every such layer satisfies.
This module reads the file, finds the layer's keys in it and checks its tensors one by one; the
layouts themselves (telling them apart, renaming, the checks across tensors) are in
`checkpoint_layouts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.files.layouts import (
    D2L_ADDITIVE,
    FIX,
    MEMBERS,
    Layout,
    check_additive,
    check_bias_lengths,
    check_dot,
    detect_layout,
    to_d2l,
    unknown_layout,
)
from mha_cli.files.tensor_files import check_values
from mha_cli.files.tensor_io import read_tensor_file
from mha_cli.messages import listing, shape_text

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Checkpoint:
    state: dict[str, torch.Tensor]  # d2l naming: "W_q.weight" (out, in), ..., "W_q.bias" if any
    layout: str  # one of the layout names in checkpoint_layouts, for people
    keys_found: tuple[str, ...]  # the file's own key names for this layer, for messages


def load_checkpoint(path: Path, *, finite: bool = True) -> Checkpoint:
    """The attention layer in `path`, in d2l naming; one-line `MhaError` for any problem.

    `finite=False` lets NaN and infinite values through, for `mha weights`, which shows in
    which head they are instead of refusing the file."""
    path = Path(path)
    state = unwrap_state_dict(path, read_tensor_file(path, FIX))
    prefix = _single_prefix(path, state)
    # member name ("W_q.weight") -> the file's key ("encoder.attention.W_q.weight")
    keys = {key[len(prefix) :]: key for key in state if _member(key, prefix)}
    layout = detect_layout(path, state, keys)
    tensors = {member: _tensor(path, key, state[key]) for member, key in keys.items()}
    _check_biases(path, layout, keys)
    _check_dims(path, tensors, keys, finite)
    d2l, origin = to_d2l(path, layout, tensors, keys)
    if layout.name == D2L_ADDITIVE:
        check_additive(path, d2l, origin)
    else:
        check_dot(path, d2l, origin)
    check_bias_lengths(path, d2l, origin)
    return Checkpoint(d2l, layout.name, tuple(keys.values()))


# ---------------------------------------------------------------------------------------------
# Finding the layer


def unwrap_state_dict(path: Path, stored: Any) -> dict[Any, Any]:
    """The state dict itself: training scripts often wrap it under "state_dict" or "model"."""
    if not isinstance(stored, dict):
        raise MhaError(f"{path} holds a {type(stored).__name__}, not a state dict; save {FIX}")
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
            for member in MEMBERS
            if key == member or key.endswith("." + member)
        }
    )
    if not prefixes:
        raise MhaError(unknown_layout(path, state))
    if len(prefixes) > 1:
        shown = listing(repr(p) for p in prefixes)
        raise MhaError(
            f"{path} holds more than one attention layer (key prefixes {shown}); mha picks "
            "one layer (--layer) out of Hugging Face models of the families it reads, not out of "
            "this file; save that layer's state_dict() alone"
        )
    return prefixes[0]


def _member(key: Any, prefix: str) -> bool:
    return isinstance(key, str) and key.startswith(prefix) and key[len(prefix) :] in MEMBERS


def _tensor(path: Path, key: str, value: Any) -> torch.Tensor:
    import torch

    if not isinstance(value, torch.Tensor):
        raise MhaError(f"{path}: '{key}' holds a {type(value).__name__}, not a tensor; save {FIX}")
    return value


# ---------------------------------------------------------------------------------------------
# Checks on the file's own tensors


def _check_biases(path: Path, layout: Layout, keys: dict[str, str]) -> None:
    # One `bias` flag builds every projection of the layer, so a partial set cannot be loaded.
    present = [keys[name] for name in layout.biases if name in keys]
    absent = [name for name in layout.biases if name not in keys]
    if present and absent:
        raise MhaError(
            f"{path} has {', '.join(present)} but no {', '.join(absent)}; the layer has a bias "
            "on every projection or on none; save a layer built with one bias setting"
        )


def _check_dims(
    path: Path, tensors: dict[str, torch.Tensor], keys: dict[str, str], finite: bool = True
) -> None:
    for name, tensor in tensors.items():
        is_bias = name.endswith("bias")
        wanted = 1 if is_bias else 2
        if tensor.dim() != wanted:
            form = "1-D (out_features,)" if is_bias else "2-D (out_features, in_features)"
            raise MhaError(
                f"{path}: '{keys[name]}' has shape {shape_text(tensor)}, expected {form}; "
                f"save {FIX}"
            )
        check_values(path, keys[name], tensor, "save the trained layer's state_dict()", finite)
