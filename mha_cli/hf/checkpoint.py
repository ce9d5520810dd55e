"""One attention layer out of a whole Hugging Face model, in d2l's names, reading only that layer.

The one entry point for `--weights PATH --layer N`: PATH is a model folder (with config.json), a
whole-model `.safetensors`/`.pt`/`.bin` file, or a sharded `*.index.json`. The config.json beside
the weights (or the one given) decides the family, sizes, rotary embedding and window; without
one, the family is recognised from the key names and the sizes from the tensors. Every tensor is
then checked against the attention described, so a config that contradicts the weights fails
with one line naming the tensor, its shape and the config's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mha_cli.errors import MhaError
from mha_cli.files.lazy_tensors import open_weights, read_tensors
from mha_cli.files.tensor_files import check_values, shape_text
from mha_cli.hf.config import HFAttention, attention_from_weights, read_hf_config
from mha_cli.hf.layouts import Located, locate, to_d2l

if TYPE_CHECKING:
    import torch

# Every layer has these weights (GPT-2 and GPT-NeoX: "qkv.weight" instead of W_q, W_k, W_v).
_REQUIRED = ("W_q.weight", "W_k.weight", "W_v.weight", "W_o.weight", "qkv.weight")


@dataclass(frozen=True)
class HFLayer:
    attention: HFAttention  # sizes, biases, rope, window, qk-norm of this layer
    state: dict[str, torch.Tensor]  # d2l names: "W_q.weight" (out, in), ..., "q_norm.weight"
    origin: dict[str, str]  # d2l name -> the file's key (and part) it came from
    files: dict[str, Path]  # the file's keys read -> the file (shard) each was read from
    layout: str  # what was recognised, e.g. "llama: model.layers.N.self_attn.q_proj.weight, ..."
    config: Path | None  # the config.json used, or None (family and sizes from the weights)


def load_hf_layer(
    path: Path, layer: int = 0, *, config: Path | None = None, heads: int | None = None
) -> HFLayer:
    """Layer `layer`'s attention from the weights at `path`, with `config` or the one beside them.

    `heads` is needed only without a config.json (except for Qwen3, whose norms tell it).
    """
    path = Path(path)
    weights = open_weights(path)
    config = Path(config) if config is not None else weights.config
    described = read_hf_config(config, layer) if config is not None else None
    located = locate(weights.keys, described.family if described else None, str(path))
    if described is not None and described.num_layers != located.num_layers:
        raise MhaError(
            f"{config} gives {described.num_layers} layers but {path} holds "
            f"{located.num_layers}; use the config.json saved with these weights"
        )
    if not 0 <= layer < located.num_layers:
        raise MhaError(
            f"--layer {layer} is beyond the model: {path} has {located.num_layers} layers; "
            f"pick a layer from 0 to {located.num_layers - 1}"
        )
    keys = _present_keys(located, weights.keys, layer, path)
    read = read_tensors(weights, keys.values())
    stored = {name: read.tensors[key] for name, key in keys.items()}
    for name, tensor in stored.items():
        _check_tensor(path, keys[name], tensor, 1 if name.endswith(("bias", "norm.weight")) else 2)
    head_count = described.heads if described is not None else heads
    state, origin = to_d2l(located.layout, stored, keys, head_count)
    if described is None:
        shapes = {name: tuple(tensor.shape) for name, tensor in state.items()}
        family = located.guess_family(weights.keys, layer)
        described = attention_from_weights(family, shapes, heads, layer, located.num_layers)
    check_against(described, state, origin, str(config or path))
    return HFLayer(described, state, origin, read.files, located.describe(), config)


def count_hf_layers(path: Path, *, config: Path | None = None) -> int:
    """How many layers the model at `path` holds, from its key names (and config.json): no
    tensor is read."""
    path = Path(path)
    weights = open_weights(path)
    config = Path(config) if config is not None else weights.config
    family = read_hf_config(config, 0).family if config is not None else None
    return locate(weights.keys, family, str(path)).num_layers


def _present_keys(
    located: Located, keys: tuple[str, ...], layer: int, path: Path
) -> dict[str, str]:
    """d2l name -> key for the members the file has; every weight must be there."""
    present = set(keys)
    wanted = located.layer_keys(layer)
    missing = [key for name, key in wanted.items() if name in _REQUIRED and key not in present]
    if missing:
        raise MhaError(
            f"{path} lacks {missing[0]} of layer {layer} ({located.layout.name} layout); "
            "the file is incomplete: download or save it again"
        )
    return {name: key for name, key in wanted.items() if key in present}


def _check_tensor(path: Path, key: str, tensor: torch.Tensor, dims: int) -> None:
    if tensor.dim() != dims:
        form = "1-D" if dims == 1 else "2-D"
        raise MhaError(
            f"{path}: '{key}' has shape {shape_text(tensor)}, expected {form}; the file is damaged"
        )
    check_values(path, key, tensor, "the file is damaged: download or save it again")


def check_against(
    attention: HFAttention, state: dict[str, torch.Tensor], origin: dict[str, str], where: str
) -> None:
    """Every tensor has the shape `attention` implies, and the biases and norms it says."""
    a = attention
    q_out, kv_out = a.heads * a.head_dim, a.kv_heads * a.head_dim
    because = {
        "q": f"heads {a.heads} x head_dim {a.head_dim}",
        "kv": f"kv_heads {a.kv_heads} x head_dim {a.head_dim}",
    }
    expected: dict[str, tuple[tuple[int, ...], str]] = {
        "W_q.weight": ((q_out, a.hiddens), because["q"]),
        "W_k.weight": ((kv_out, a.hiddens), because["kv"]),
        "W_v.weight": ((kv_out, a.hiddens), because["kv"]),
        "W_o.weight": ((a.hiddens, q_out), because["q"]),
    }
    flags = {"q": a.q_bias, "k": a.k_bias, "v": a.v_bias, "o": a.o_bias}
    for p, flag in flags.items():
        if flag:
            out = expected[f"W_{p}.weight"][0][0]
            expected[f"W_{p}.bias"] = ((out,), f"the outputs of W_{p}")
    if a.qk_norm:
        for name in ("q_norm.weight", "k_norm.weight"):
            expected[name] = ((a.head_dim,), f"head_dim {a.head_dim}")
    for name, (shape, reason) in expected.items():
        if name not in state:
            raise MhaError(
                f"{where} describes a {a.family} layer with {name.replace('.', ' ')}, but the "
                f"weights have none; use the config.json saved with these weights"
            )
        if tuple(state[name].shape) != shape:
            raise MhaError(
                f"{origin[name]} has shape {shape_text(state[name])} but {where} implies {shape} "
                f"({reason}, hidden size {a.hiddens}); use the config.json saved with these weights"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise MhaError(
            f"the weights hold {origin[extra[0]]} but {where} describes a {a.family} layer "
            "without it; use the config.json saved with these weights"
        )
