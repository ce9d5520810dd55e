"""One layer of a whole model as the run's weights, and the specification its config implies.

`--weights PATH --layer N` on a Hugging Face model folder, whole-model file or sharded index:
the layer's tensors are read (and only they), in d2l's names. The sizes the weights fix (heads,
head dim, biases, norms) fill the specification, and an option that contradicts them is refused;
what the config says of the layer's behaviour (causal, rotary embedding, window) fills in what the
command line did not set, so `--no-causal` on a decoder is the user's to choose.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.files.reconcile import apply_sizes
from mha_cli.layer.records import Source
from mha_cli.spec.parse import coerce
from mha_cli.spec.spec import DEPENDENTS, AttentionSpec

if TYPE_CHECKING:
    import torch

# Fixed by the weights themselves: an option may only repeat them.
WEIGHT_FIELDS = (
    "hiddens",
    "heads",
    "kv_heads",
    "head_dim",
    "query_size",
    "key_size",
    "value_size",
    "bias",
    "out_bias",
    "key_bias",
    "qk_norm",
    "qk_norm_layer",
    "relative_buckets",
)
# How the layer is run: the config's value unless the command line sets its own.
BEHAVIOUR_FIELDS = (
    "causal",
    "rope",
    "rope_theta",
    "rotary_dim",
    "rope_scaling",
    "window",
    "norm_eps",
    "score_scale",
    "softcap",
    "clip_qkv",
    "qk_norm_whole",
    "alibi",
    "alibi_scaled",
    "relative_max_distance",
)


def read_model_layer(
    spec: AttentionSpec, *, finite: bool = True
) -> tuple[dict[str, torch.Tensor], Source, AttentionSpec]:
    """(d2l-named weights, where they came from, the spec with the model's sizes filled in).

    Without a config.json, what the run still takes on trust is reported as an
    `AssumptionNote` warning (the command line shows it on stderr)."""
    from mha_cli.hf.checkpoint import load_hf_layer
    from mha_cli.hf.config import spec_fields

    path = Path(str(spec.weights))
    heads = spec.heads if "heads" in spec.explicit else None
    named = ("heads", *BEHAVIOUR_FIELDS)
    given = {key: getattr(spec, key) for key in named if key in spec.explicit}
    try:
        layer = load_hf_layer(
            path,
            spec.layer,
            heads=heads,
            given=given,
            finite=finite,
            attention=spec.attention,
            fallback_config=_given_model_config(spec),
        )
        fields = spec_fields(layer.attention)
    except MhaError as error:  # name the option, unless the message already does
        message = str(error)
        raise MhaError(message if message.startswith("--") else f"--weights {message}") from None
    spec = apply_sizes(spec, {key: fields[key] for key in WEIGHT_FIELDS}, str(path))
    where = str(layer.config or path)
    behaviour = {
        key: coerce(key, fields[key], where)
        for key in BEHAVIOUR_FIELDS
        # None: the config says nothing of it (no rotation, no norm): the default stands
        if key not in spec.explicit
        and (fields[key] is not None or key in ("window", "rotary_dim", "rope_scaling"))
    }
    for switch, (off, dependents) in DEPENDENTS.items():  # --rope none: no rotary dims either
        if switch in spec.explicit and getattr(spec, switch) == off:
            behaviour = {k: v for k, v in behaviour.items() if k not in dependents}
    if "dtype" not in spec.explicit:  # as transformers loads a model: in the dtype it was saved
        spec = replace(spec, dtype=_stored_dtype(layer.state))
    spec = replace(spec, **behaviour, attention=layer.attention.attention)
    if layer.assumed:
        import warnings

        from mha_cli.errors import AssumptionNote

        warnings.warn(
            AssumptionNote(f"{path} has no config.json; assumed: {'; '.join(layer.assumed)}"),
            stacklevel=2,
        )
    return dict(layer.state), _source(path, layer, spec.layer), spec


def _given_model_config(spec: AttentionSpec) -> Path | None:
    """The Hugging Face config.json given with `--config` (its fields' origin), if any."""
    for _, origin in spec.origins:
        if origin.startswith("config ") and origin.lower().endswith(".json"):
            return Path(origin.removeprefix("config "))
    return None


def model_layer_count(spec: AttentionSpec) -> int:
    """How many attention layers the whole model `spec.weights` holds."""
    from mha_cli.files.lazy_tensors import open_weights
    from mha_cli.hf.checkpoint import count_hf_layers

    try:
        path = Path(str(spec.weights))
        config = None if open_weights(path).config else _given_model_config(spec)
        return count_hf_layers(path, config=config, attention=spec.attention)
    except MhaError as error:
        message = str(error)
        raise MhaError(message if message.startswith("--") else f"--weights {message}") from None


def _stored_dtype(state: dict[str, torch.Tensor]) -> str:
    weight = state["W_q.weight"]
    return str(weight.dtype).removeprefix("torch.")


def _source(path: Path, layer: Any, index: int) -> Source:
    """The layout recognised, and each key read with the file it came from."""
    files: dict[str, Path] = layer.files
    shown_files = path.is_dir() or len(set(files.values())) > 1 or path.suffix == ".json"
    shards = tuple(files[key].name for key in files) if shown_files else ()
    layers = layer.attention.num_layers
    layout = f"{layer.layout}; layer {index} of {layers}"
    if layer.attention.attention is not None:  # Whisper, BART: which attention, and its inputs
        layout = f"{layer.attention.family} {layout}"
        layout += {
            "encoder": "; queries, keys and values: the encoder's states",
            "decoder": "; queries, keys and values: the decoder's states (causal)",
            "cross": "; queries: the decoder's states; keys and values: the encoder's output",
        }[layer.attention.attention]
    if layer.config is not None:
        layout += f"; sizes from {layer.config.name}"
    return Source(str(path), layout, tuple(files), shards)
