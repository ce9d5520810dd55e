"""One attention layer out of a whole Hugging Face model, in d2l's names, reading only that layer.

The one entry point for `--weights PATH --layer N`: PATH is a model folder (with config.json), a
whole-model `.safetensors`/`.pt`/`.bin` file, or a sharded `*.index.json`. The config.json beside
the weights (or the one given) decides the family, sizes, rotary embedding and window; without
one, the family is recognised from the key names and the sizes from the tensors. Every tensor is
then checked against the attention described, so a config that contradicts the weights fails
with one line naming the tensor, its shape and the config's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.files.lazy_tensors import open_weights, read_tensors
from mha_cli.files.tensor_files import check_values, shape_text
from mha_cli.hf.config import (
    HFAttention,
    attention_from_weights,
    read_hf_config,
)
from mha_cli.hf.families import FAMILY
from mha_cli.hf.layouts import Located, locate, to_d2l

if TYPE_CHECKING:
    import torch

# Every layer has these weights (GPT-2 and GPT-NeoX: "qkv.weight" instead of W_q, W_k, W_v),
# and T5's relative position bias table where its layout has one.
_REQUIRED = (
    "W_q.weight",
    "W_k.weight",
    "W_v.weight",
    "W_o.weight",
    "qkv.weight",
    "relative_bias.weight",
)


@dataclass(frozen=True)
class HFLayer:
    attention: HFAttention  # sizes, biases, rope, window, qk-norm of this layer
    state: dict[str, torch.Tensor]  # d2l names: "W_q.weight" (out, in), ..., "q_norm.weight"
    origin: dict[str, str]  # d2l name -> the file's key (and part) it came from
    files: dict[str, Path]  # the file's keys read -> the file (shard) each was read from
    layout: str  # what was recognised, e.g. "llama: model.layers.N.self_attn.q_proj.weight, ..."
    config: Path | None  # the config.json used, or None (family and sizes from the weights)
    assumed: tuple[str, ...] = ()  # without a config.json: what the run takes on trust


def load_hf_layer(
    path: Path,
    layer: int = 0,
    *,
    config: Path | None = None,
    heads: int | None = None,
    given: Mapping[str, Any] | None = None,
    finite: bool = True,
    attention: str | None = None,
    fallback_config: Path | None = None,
) -> HFLayer:
    """Layer `layer`'s attention from the weights at `path`, with `config` or the one beside them.

    Without a config.json, key names tell the sizes but not the behaviour (rope base, window,
    ...): the layer is read only when `given` (the spec fields the user set) holds every value
    the keys leave unknown, and `HFLayer.assumed` lists what is still taken on trust. `heads`
    is then needed too. `finite=False` lets NaN and infinite values through (`mha weights`).
    `attention` picks the encoder's, the decoder's or the cross-attention of an
    encoder-decoder model (Whisper, BART, T5), which is read with its config.json only.
    `fallback_config` (the `--config config.json` given) serves weights without one beside them.
    """
    path = Path(path)
    weights = open_weights(path)
    config = Path(config) if config is not None else weights.config or fallback_config
    described = read_hf_config(config, layer, attention) if config is not None else None
    if described is None and attention is not None:
        raise MhaError(
            f"--attention {attention} picks an attention of an encoder-decoder model, which mha "
            f"reads with its config.json, and {path} has none beside it: give --config "
            "config.json (the model's own) or the model's folder"
        )
    family = described.family if described else None
    located = locate(weights.keys, family, str(path), described.attention if described else None)
    if described is not None and described.num_layers != located.num_layers:
        stack = f"{located.layout.name} " if described.attention else ""
        raise MhaError(
            f"{config} gives {described.num_layers} {stack}layers but {path} holds "
            f"{located.num_layers}; use the config.json saved with these weights"
        )
    if not 0 <= layer < located.num_layers:
        raise MhaError(
            f"--layer {layer} is beyond the model: {path} has {located.num_layers} layers; "
            f"pick a layer from 0 to {located.num_layers - 1}"
        )
    keys = _present_keys(located, weights.keys, layer, path)
    per_head = _head_norm_keys(located, weights.keys, layer)
    if described is None:
        _refuse_layer_norms(path, keys, per_head)
    read = read_tensors(weights, [*keys.values(), *(k for ks in per_head.values() for k in ks)])
    stored = {name: read.tensors[key] for name, key in keys.items()}
    for name, tensor in stored.items():
        dims = 1 if name.endswith(("bias", "norm.weight")) else 2
        if name.endswith("norm.weight") and tensor.dim() == 2:  # (heads, d): Cohere's
            if described is None:
                raise MhaError(_cohere_norm(path, keys[name], tensor))
            dims = 2  # check_against says whether the config has such a norm
        _check_tensor(path, keys[name], tensor, dims, finite)
    for name, head_keys in per_head.items():  # StableLM: one (d,) weight per head, stacked
        for key in head_keys:
            _check_tensor(path, key, read.tensors[key], 1, finite)
        _stack_heads(path, name, head_keys, read.tensors, stored, keys)
    assumed: tuple[str, ...] = ()
    if described is None:
        given = dict(given or {})
        heads = given.get("heads", heads)
        family, reason = identify(path, located, stored, keys, layer, heads)
        _refuse_unknown(path, located, family, reason, stored, given | {"heads": heads})
        state, origin = to_d2l(located.layout, stored, keys, heads)
        _check_norms(path, state, origin, heads)
        shapes = {name: tuple(tensor.shape) for name, tensor in state.items()}
        described = attention_from_weights(family, shapes, heads, layer, located.num_layers)
        assumed = _assumptions(family, reason, described, given)
    else:
        state, origin = to_d2l(
            located.layout, stored, keys, described.heads, described.head_dim,
            described.packing, described.kv_heads,
        )  # fmt: skip
        if FAMILY[described.family].norm_plus_one:  # Gemma 3's norm multiplies by 1 + w
            for name in ("q_norm.weight", "k_norm.weight"):
                if name in state:
                    state[name] = 1.0 + state[name].float()
                    origin[name] = f"1 + {origin[name]}"
    check_against(described, state, origin, str(config or path))
    return HFLayer(described, state, origin, read.files, located.describe(), config, assumed)


def _head_norm_keys(located: Located, keys: tuple[str, ...], layer: int) -> dict[str, list[str]]:
    """d2l norm name -> the keys of its per-head weights (heads 0, 1, ... while present)."""
    present = set(keys)
    found: dict[str, list[str]] = {}
    names = ("q_norm.weight", "k_norm.weight")
    for name, template in zip(names, located.head_norm_keys(layer), strict=False):
        head_keys: list[str] = []
        while template.format(i=len(head_keys)) in present:
            head_keys.append(template.format(i=len(head_keys)))
        if head_keys:
            found[name] = head_keys
    return found


def _stack_heads(
    path: Path,
    name: str,
    head_keys: list[str],
    tensors: Mapping[str, torch.Tensor],
    stored: dict[str, torch.Tensor],
    keys: dict[str, str],
) -> None:
    """One (heads, d) weight out of the per-head (d,) ones, as `stored[name]`."""
    import torch

    sizes = {tuple(tensors[key].shape) for key in head_keys}
    if len(sizes) > 1:
        raise MhaError(
            f"{path}: the per-head weights {head_keys[0]}, ... have different shapes "
            f"({', '.join(str(s) for s in sorted(sizes))}); the file is damaged"
        )
    stored[name] = torch.stack([tensors[key] for key in head_keys])  # (heads, d)
    keys[name] = head_keys[0].replace(".0.weight", f".{{0..{len(head_keys) - 1}}}.weight")


def _refuse_layer_norms(
    path: Path, keys: Mapping[str, str], per_head: Mapping[str, list[str]]
) -> None:
    """Without a config.json, a LayerNorm of queries and keys (StableLM, Cohere) is refused: the
    keys do not say its eps, and Llama's layout would drop it."""
    if per_head:
        key = next(iter(per_head.values()))[0]
        family, kind = "stablelm", "one LayerNorm per head of queries and keys (qk_layernorm)"
        raise MhaError(
            f"{path}: {key} is {kind}, as StableLM has; without config.json its eps, heads, "
            "rope base and rotary dims are unknown: give --config config.json (the model's own, "
            f"model_type {family})"
        )


# ---------------------------------------------------------------------------------------------
# Without a config.json: what the keys tell, and what they do not

# The families whose checkpoints share each layout's key names.
_LOOKALIKES = {
    "llama": "Llama, Mistral, Mixtral, Qwen2, Qwen3, Gemma, Granite, Cohere, StableLM, "
    "Starcoder2, OLMo, ...",
    "gpt2": "GPT-2 and its variants",
    "gpt_neox": "GPT-NeoX, Pythia, ...",
    "gptj": "GPT-J, ...",
    "phi3": "Phi-3, Phi-4, ...",
    "opt": "OPT, ...",
    "bert": "BERT, RoBERTa, ELECTRA, ...",
    "vit": "ViT, DeiT, ...",
}
_ROTARY_LAYOUTS = ("llama", "gpt_neox", "gptj", "phi3")
# spec field -> (the option that sets it, what it is)
_OPTIONS = {
    "heads": ("--heads", "the number of heads"),
    "causal": ("--causal/--no-causal", "the causal mask"),
    "rope": ("--rope", "the rotary embedding (none, half, interleaved)"),
    "rope_theta": ("--rope-theta", "the rope base"),
    "rotary_dim": ("--rotary-dim", "the rotary dims"),
    "window": ("--window", "the sliding window (or none)"),
    "norm_eps": ("--norm-eps", "the q/k norm's eps"),
}


def identify(
    path: Path,
    located: Located,
    stored: Mapping[str, torch.Tensor],
    keys: Mapping[str, str],
    layer: int,
    heads: int | None = None,
) -> tuple[str, str]:
    """(the family mha takes the weights for, and why), from key names and shapes alone."""
    base = located.layout.name.split(" ")[0]
    if located.layout.packing == "gpt2":
        packed = stored["qkv.weight"]
        rows, cols = packed.shape
        if cols != 3 * rows:  # GPT-2's Conv1D stores (H, 3H); nn.Linear stores (out, in)
            raise MhaError(
                f"{path}: {keys['qkv.weight']} has shape ({rows}, {cols}): stored (out, in) as an "
                "nn.Linear, so this is GPTBigCode (StarCoder, SantaCoder), not GPT-2, whose "
                "Conv1D stores (H, 3H); without config.json its heads and its multi_query "
                "packing are unknown: give --config config.json (the model's own, model_type "
                "gpt_bigcode)"
            )
    family = located.guess_family(keys.values(), layer)
    if family == "qwen3":
        norm, q_out = stored["q_norm.weight"].shape[0], stored["W_q.weight"].shape[0]
        if norm == q_out and heads != 1:
            raise MhaError(_whole_norm(path, keys["q_norm.weight"], norm, q_out))
        return family, f"its layers have q_norm and k_norm of {norm} values, as Qwen3's per head"
    if family == "qwen2":
        return family, "W_q, W_k and W_v have biases and W_o none, as Qwen2's"
    return family, f"its keys have the {base} layout ({located.describe()})"


def _required(located: Located, stored: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """The spec fields the keys leave unknown, for this layout."""
    fields = ["heads", "causal"]
    base = located.layout.name.split(" ")[0]
    if base in _ROTARY_LAYOUTS:
        fields.append("rope")
        if given.get("rope", "half") != "none":
            fields += ["rope_theta", "rotary_dim"]
    if base in ("llama", "phi3"):
        fields.append("window")
    if "q_norm.weight" in stored:
        fields.append("norm_eps")
    return fields


def _refuse_unknown(
    path: Path,
    located: Located,
    family: str,
    reason: str,
    stored: Mapping[str, Any],
    given: Mapping[str, Any],
) -> None:
    # None is a value for the window and the rotary dims (none, the whole head)
    optional = ("window", "rotary_dim")
    missing = [
        name
        for name in _required(located, stored, given)
        if name not in given or (given[name] is None and name not in optional)
    ]
    if not missing:
        return
    base = located.layout.name.split(" ")[0]
    unknown = ", ".join(_OPTIONS[name][1] for name in missing)
    options = " ".join(_OPTIONS[name][0] for name in missing)
    raise MhaError(
        f"{path} has no config.json beside it: mha takes it for {family} because {reason}, "
        f"a layout shared by {_LOOKALIKES.get(base, base)}; key names tell the sizes, not the "
        f"behaviour, so {unknown} are unknown; give --config config.json (the model's own), "
        f"or set them with {options}"
    )


def _cohere_norm(path: Path, key: str, tensor: torch.Tensor) -> str:
    return (
        f"{path}: {key} has shape {shape_text(tensor)}, (heads, head_dim): a LayerNorm of "
        "queries and keys with one weight per head, as Cohere's use_qk_norm; without "
        "config.json its eps, heads and rope base are unknown: give --config config.json "
        "(the model's own, model_type cohere)"
    )


def _whole_norm(path: Path, key: str, size: int, q_out: int) -> str:
    return (
        f"{path}: {key} has {size} values, as many as W_q's outputs: a q/k norm over the "
        "whole projection (as OLMo 2 has); without config.json the key names do not tell the "
        "number of heads, the rope base or the window: give --config config.json (the "
        "model's own, model_type olmo2)"
    )


def _check_norms(
    path: Path, state: Mapping[str, torch.Tensor], origin: Mapping[str, str], heads: int | None
) -> None:
    """A q/k norm must span one head: its size is the head dim, never a hint at the heads."""
    if heads is None or "q_norm.weight" not in state:
        return
    q_out = state["W_q.weight"].shape[0]
    if heads < 1 or q_out % heads:
        return  # attention_from_weights names the bad --heads
    head_dim = q_out // heads
    for name in ("q_norm.weight", "k_norm.weight"):
        size = state[name].shape[0]
        if size != head_dim:
            raise MhaError(
                f"{path}: {origin[name]} has {size} values but a head has {head_dim} features "
                f"({q_out} outputs of W_q / --heads {heads}): a q/k norm over the whole "
                "projection (as OLMo 2 has); give --config config.json (the model's own, "
                "model_type olmo2), which says so"
            )


def _assumptions(
    family: str, reason: str, attention: HFAttention, given: Mapping[str, Any]
) -> tuple[str, ...]:
    """What the run takes on trust, without a config.json, beyond the options given."""
    assumed = [f"the family: {family} ({reason})"]
    scaled = "" if given.get("score_scale") is not None else "scores scaled by 1/sqrt(head_dim), "
    capped = "" if given.get("softcap") is not None else "no soft-capping, "
    clipped = "" if given.get("clip_qkv") is not None else "no clipping of q, k, v"
    scores = f"{scaled}{capped}{clipped}".rstrip(", ")
    if scores:
        assumed.append(scores)
    if given.get("rope", attention.rope) != "none" and "rope_scaling" not in given:
        assumed.append("no rope scaling")
    if attention.qk_norm:
        assumed.append("q/k norm: RMSNorm times its weight, per head (Qwen3's)")
    return tuple(assumed)


def count_hf_layers(path: Path, *, config: Path | None = None, attention: str | None = None) -> int:
    """How many layers the model at `path` holds (of an encoder-decoder model, its
    `attention`'s stack), from its key names (and config.json): no tensor is read."""
    path = Path(path)
    weights = open_weights(path)
    config = Path(config) if config is not None else weights.config
    described = read_hf_config(config, 0, attention) if config is not None else None
    family = described.family if described is not None else None
    where = str(path)
    stack = described.attention if described is not None else None
    return locate(weights.keys, family, where, stack).num_layers


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


def _check_tensor(
    path: Path, key: str, tensor: torch.Tensor, dims: int, finite: bool = True
) -> None:
    if tensor.dim() != dims:
        form = "1-D" if dims == 1 else "2-D"
        raise MhaError(
            f"{path}: '{key}' has shape {shape_text(tensor)}, expected {form}; the file is damaged"
        )
    check_values(path, key, tensor, "the file is damaged: download or save it again", finite)


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
    if a.qk_norm and a.qk_norm_whole:  # OLMo 2: one weight per output of W_q, W_k
        expected["q_norm.weight"] = ((q_out,), because["q"])
        expected["k_norm.weight"] = ((kv_out,), because["kv"])
    elif a.qk_norm and a.qk_norm_layer:  # StableLM, Cohere: one weight per head and feature
        expected["q_norm.weight"] = ((a.heads, a.head_dim), because["q"])
        expected["k_norm.weight"] = ((a.kv_heads, a.head_dim), because["kv"])
    elif a.qk_norm:
        for name in ("q_norm.weight", "k_norm.weight"):
            expected[name] = ((a.head_dim,), f"head_dim {a.head_dim}")
    if a.relative_buckets is not None:  # T5: (buckets, heads), as its nn.Embedding stores it
        expected["relative_bias.weight"] = (
            (a.relative_buckets, a.heads),
            f"relative_attention_num_buckets {a.relative_buckets} x heads {a.heads}",
        )
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
