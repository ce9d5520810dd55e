"""Read the sizes that `--weights` and `--inputs` files imply, and reconcile them with the spec.

Sizes come from the files; only `--heads` must be given. A size the user set that a file
contradicts is a mistake, reported with both values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mha_cli.errors import MhaError
from mha_cli.files.reconcile import apply_sizes
from mha_cli.layer.records import Source
from mha_cli.spec.spec import AttentionSpec, FinalSpec
from mha_cli.spec.validation import validate

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Sources:
    """A spec with the sizes its files fix, and what they hold (`resolve` makes it final)."""

    spec: AttentionSpec
    state: Mapping[str, torch.Tensor] | None = None  # weights in d2l naming
    inputs: Mapping[str, torch.Tensor] | None = None  # queries, keys, values[, valid_lens]
    source: Source | None = None  # where the weights came from


@dataclass(frozen=True)
class Resolved:
    """The final spec and what its files hold (or other tensors of the caller's)."""

    spec: FinalSpec
    state: Mapping[str, torch.Tensor] | None = None  # weights in d2l naming
    inputs: Mapping[str, torch.Tensor] | None = None  # queries, keys, values[, valid_lens]
    source: Source | None = None  # where the weights came from


def resolve(spec: AttentionSpec, *, finite: bool = True) -> Resolved:
    """The one resolve step before the layer is built: the files read, the sizes they fix
    reconciled with the options, the result validated, and every size written out
    (`AttentionSpec.final`). `run_attention` takes this and never changes the spec."""
    sources = resolve_sources(spec, finite=finite)
    final = validate(sources.spec).final()
    return Resolved(final, sources.state, sources.inputs, sources.source)


def resolve_sources(spec: AttentionSpec, *, finite: bool = True) -> Sources:
    """The spec with the sizes its files fix, and what they hold. `finite=False` accepts NaN
    and infinite weights (`mha weights` reports them per head)."""
    state = inputs = source = None
    if spec.weights is not None and holds_one_layer(Path(spec.weights)):
        from functools import partial

        from mha_cli.files.checkpoints import load_checkpoint

        load = partial(load_checkpoint, finite=finite)
        checkpoint = _named("--weights", load, spec.weights)
        if spec.layer != 0:
            raise MhaError(
                f"--layer {spec.layer}: {spec.weights} holds 1 attention layer (layer 0); "
                "drop --layer, or give a whole model's checkpoint"
            )
        if spec.attention is not None:
            raise MhaError(
                f"{spec.given('attention')}: {spec.weights} holds 1 attention layer, not an "
                "encoder-decoder model; drop --attention, or give the model's folder"
            )
        state = checkpoint.state
        source = Source(spec.weights, checkpoint.layout, checkpoint.keys_found)
        spec = apply_sizes(spec, sizes_from_weights(state, spec.heads, spec.weights), spec.weights)
    elif spec.weights is not None:
        from mha_cli.files.model_layer import read_model_layer

        state, source, spec = read_model_layer(spec, finite=finite)
    if spec.inputs_file is not None:
        from mha_cli.files.tensor_files import load_inputs

        inputs = _named("--inputs", load_inputs, spec.inputs_file)
        spec = apply_sizes(spec, sizes_from_inputs(inputs, spec), spec.inputs_file)
    return Sources(spec, state, inputs, source)


def holds_one_layer(path: Path) -> bool:
    """A file of one d2l or torch.nn.MultiheadAttention layer, rather than a whole model."""
    if path.is_dir() or path.name.lower().endswith(".json") or not path.is_file():
        return False
    from mha_cli.files.layouts import MEMBERS
    from mha_cli.files.lazy_tensors import open_weights

    try:
        weights = open_weights(path)
    except MhaError:
        return True  # the one-layer reader has the more specific message for a damaged file
    from mha_cli.hf.layouts import find_layout, other_family

    keys = weights.keys
    if find_layout(keys) is not None or other_family(keys) is not None:
        return False  # a whole model (OPT's and GPT-J's layers have out_proj too)
    if weights.config is not None and not any(key in MEMBERS for key in keys):
        return False  # a file inside a model folder is read as the folder
    return any(key == m or key.endswith("." + m) for key in keys for m in MEMBERS)


def _named(option: str, load: Callable[[Path], T], path: str) -> T:
    """Load a file; its errors name the option the file came from."""
    try:
        return load(Path(path))
    except MhaError as error:
        raise MhaError(f"{option} {error}") from None


def sizes_from_weights(state: dict[str, torch.Tensor], heads: int, path: str) -> dict[str, Any]:
    """The spec fields a checkpoint fixes. Weights are (out_features, in_features)."""
    hiddens, query_size = state["W_q.weight"].shape
    key_out, key_size = state["W_k.weight"].shape
    sizes: dict[str, Any] = {
        "hiddens": hiddens,
        "query_size": query_size,
        "key_size": key_size,
        "bias": "W_q.bias" in state,
    }
    if "w_v.weight" in state:  # d2l's AdditiveAttention: values are not projected
        return {**sizes, "score": "additive", "heads": 1}
    value_out, value_size = state["W_v.weight"].shape
    sizes |= {"value_size": value_size, "score": "dot"}
    if ("W_k.bias" in state) != sizes["bias"]:  # W_k alone with(out) a bias (Whisper's)
        sizes["key_bias"] = "W_k.bias" in state
    if hiddens % heads or (key_out * heads) % hiddens:
        raise MhaError(
            f"--heads {heads} does not fit {path}: W_q has {hiddens} outputs and W_k {key_out}, "
            "so the head dim must divide both; give the number of heads the layer was trained with"
        )
    kv_heads = key_out * heads // hiddens
    sizes["kv_heads"] = None if kv_heads == heads else kv_heads
    concat = state["W_o.weight"].shape[1]
    sizes["value_mode"] = "full" if concat == heads * hiddens and heads > 1 else "split"
    if value_out != (hiddens if sizes["value_mode"] == "full" else key_out):
        raise MhaError(
            f"{path}: W_v has {value_out} outputs, which fits neither split nor full values"
        )
    return sizes


def sizes_from_inputs(inputs: dict[str, torch.Tensor], spec: AttentionSpec) -> dict[str, Any]:
    batch, queries, query_size = inputs["queries"].shape
    _, kv, key_size = inputs["keys"].shape
    sizes: dict[str, Any] = {
        "batch": batch,
        "queries": queries,
        "kv": kv,
        "query_size": query_size,
        "key_size": key_size,
        "value_size": inputs["values"].shape[2],
    }
    # The file's valid_lens replace the chapter's default; a --valid-lens option still wins.
    if "valid_lens" not in spec.explicit:
        lens = inputs.get("valid_lens")
        sizes["valid_lens"] = None if lens is None else _to_tuple(lens.tolist())
    return sizes


def _to_tuple(value: Any) -> Any:
    return tuple(_to_tuple(v) for v in value) if isinstance(value, list) else int(value)
