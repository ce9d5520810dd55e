"""Where a Hugging Face config keeps the rotary embedding and the sliding window of a layer.

Pure Python. transformers 5 keeps the rope settings in `rope_parameters` (`rope_theta`,
`rope_type`, the scaling's numbers, `partial_rotary_factor`); older config.json files have
`rope_theta` and `rope_scaling` at the top level, and GPT-NeoX `rotary_emb_base` and `rotary_pct`.
The precedence below is that of `RotaryEmbeddingConfigMixin.convert_rope_params_to_dict` and
`standardize_rope_params`, and of each family's config class where it differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.files.json_values import positive, whole
from mha_cli.hf.families import Family

# besides "default": no scaling
ROPE_SCALINGS = ("linear", "llama3", "yarn", "dynamic", "longrope")
_YARN_OPTIONAL = ("attention_factor", "mscale", "mscale_all_dim", "beta_fast", "beta_slow")
_THETA_DEFAULT = 10_000.0  # RotaryEmbeddingConfigMixin.default_theta; GPT-J's fixed base
# max_position_embeddings when a config leaves it out: llama3 scaling falls back on it.
_SCALING_KEYS = {
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "yarn": ("factor", "original_max_position_embeddings"),
    "dynamic": ("factor", "original_max_position_embeddings"),
    # longrope: its two lists of per-frequency factors are checked on their own (_longrope)
    "longrope": ("original_max_position_embeddings",),
}

Rope = tuple[float, int, dict[str, Any] | None]  # (theta, rotary_dim, scaling)


def rope_settings(
    config: Mapping[str, Any], family: Family, head_dim: int, layer: int, where: str
) -> Rope:
    """(theta, rotary_dim, scaling) of layer `layer` of a rotary family."""
    if (
        family.rope_config == "gptj"
    ):  # GPTJRotaryEmbedding: base 10000 always, rotary_dim 64 when left out
        if "rotary_dim" in config and config["rotary_dim"] is None:
            rotary_dim = head_dim  # transformers then rotates the whole head (heads must be 1)
        else:
            rotary_dim = whole(config, ("rotary_dim",), where, 64)
        return _THETA_DEFAULT, _check_rotary(rotary_dim, head_dim, where), None
    # rope_scaling (older files) wins over rope_parameters, as in convert_rope_params_to_dict.
    params = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if not isinstance(params, dict):
        raise MhaError(f"{where}: rope_parameters = {params!r} should be an object; fix the config")
    layer_types = _layer_types(config, where)
    per_type = set(layer_types) | {"full_attention", "sliding_attention"}
    theta_default = family.theta_default
    if any(key in per_type for key in params):  # one entry per layer type
        kind = _layer_type(layer_types, layer, where) if layer_types else "full_attention"
        params = params.get(kind) or {}
        if kind == "sliding_attention" and family.theta_local is not None:
            theta_default = family.theta_local  # Gemma 3's local layers
        if not isinstance(params, dict):
            raise MhaError(
                f"{where}: rope_parameters[{kind!r}] = {params!r} should be an object; "
                "fix the config"
            )
    # GPT-NeoX names the base rotary_emb_base and the fraction of rotating dims rotary_pct.
    neox = family.rope_config == "neox"
    bases = ("rotary_emb_base", "rope_theta") if neox else ("rope_theta",)
    theta = params.get("rope_theta")
    if theta is None:
        theta = next((config[b] for b in bases if config.get(b) is not None), theta_default)
    theta = float(positive(theta, "rope_theta", where))
    factor = params.get("partial_rotary_factor")
    if factor is None:
        names: tuple[str, ...] = ("partial_rotary_factor",)
        names = ("rotary_pct", *names) if neox else names
        factor = next((config[n] for n in names if config.get(n) is not None), None)
    if neox:  # GPTNeoXConfig: rotary_pct 0.25 when left out
        factor = 0.25 if factor is None else factor
        rotary_dim = int(head_dim * positive(factor, "partial_rotary_factor", where))
    elif family.partial_rotary is not None:  # StableLM: the first int(d * factor) dims turn
        factor = family.partial_rotary if factor is None else factor
        rotary_dim = int(head_dim * positive(factor, "partial_rotary_factor", where))
    elif factor not in (None, 1, 1.0):  # Llama's apply_rotary_pos_emb rotates the whole head
        raise MhaError(
            f"{where}: partial_rotary_factor = {factor!r} is not supported for "
            f"{family.name}, whose "
            "attention rotates the whole head in transformers; remove it"
        )
    else:
        rotary_dim = head_dim
    scaling = _scaling(config, params, family, where)
    return theta, _check_rotary(rotary_dim, head_dim, where), scaling


def sliding_window(
    config: Mapping[str, Any], family: Family, layer: int, num_layers: int, where: str
) -> int | None:
    """The window W of layer `layer` (key j seen by query i iff i - W < j <= i), or None."""
    if family.window == "always":  # Mistral: every layer (Mixtral, Starcoder2: None by default)
        window = config.get("sliding_window", family.window_default)
    elif family.window == "switched":  # Qwen3-MoE: every layer, with use_sliding_window
        use = config.get("use_sliding_window", False)
        window = config.get("sliding_window", family.window_default) if use else None
    elif family.window == "layer_types":
        # Qwen2Config.__post_init__: a window only with use_sliding_window, and then only on the
        # layers that layer_types marks "sliding_attention" (by default: from max_window_layers on;
        # Qwen2-MoE's: the even layers below max_window_layers).
        use = config.get("use_sliding_window", False) or not family.window_switch
        window = config.get("sliding_window", family.window_default) if use else None
        layer_types = _layer_types(config, where)
        first = config.get("max_window_layers", 28)
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise MhaError(
                f"{where}: max_window_layers = {first!r} should be a whole number of at "
                "least 0 (the first layer with a sliding window); fix the config"
            )
        if not layer_types:
            if family.window_layers == "even":  # Gemma 2: layers 0, 2, 4, ...
                sliding = window and layer % 2 == 0
            elif family.window_layers == "pattern":  # Gemma 3: every pattern-th layer is global
                pattern = whole(config, ("sliding_window_pattern",), where, 6)
                sliding = window and (layer + 1) % pattern != 0
            elif family.window_layers == "odd_below_max":
                sliding = window and layer < first and (layer + 1) % 2 == 1
            else:
                sliding = window and layer >= first
            layer_types = ("sliding_attention" if sliding else "full_attention",) * num_layers
        if _layer_type(layer_types, layer, where) != "sliding_attention":
            window = None
    else:
        return None
    return None if window is None else whole({"sliding_window": window}, ("sliding_window",), where)


def _check_rotary(rotary_dim: int, head_dim: int, where: str) -> int:
    if rotary_dim < 2 or rotary_dim > head_dim or rotary_dim % 2:
        raise MhaError(
            f"{where}: {rotary_dim} rotary dims; they should be even and between 2 and head_dim "
            f"({head_dim}); fix the config"
        )
    return rotary_dim


def _scaling(
    config: Mapping[str, Any], params: Mapping[str, Any], family: Family, where: str
) -> dict[str, Any] | None:
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return None
    if kind not in ROPE_SCALINGS:
        raise MhaError(
            f"{where}: rope scaling {kind!r} is not supported; supported: "
            f"{', '.join(ROPE_SCALINGS)} (or default, none); inspect a model that uses one of those"
        )
    params = dict(params)
    if kind == "dynamic":  # _compute_dynamic_ntk_parameters: the context is max_position_embeddings
        context = config.get("max_position_embeddings", family.context_default)
        params["original_max_position_embeddings"] = context
    if kind in ("llama3", "yarn", "longrope"):  # standardize_rope_params: a top-level value wins
        top = config.get("original_max_position_embeddings")
        context = config.get("max_position_embeddings", family.context_default)
        if top is not None:
            params["original_max_position_embeddings"] = top
        params.setdefault("original_max_position_embeddings", context)
    missing = [key for key in _SCALING_KEYS[kind] if params.get(key) is None]
    if missing:
        raise MhaError(
            f"{where}: {kind} rope scaling lacks {', '.join(missing)}; complete rope_parameters"
        )
    scaling = {"rope_type": kind}
    scaling |= {key: positive(params[key], key, where) for key in _SCALING_KEYS[kind]}
    if kind == "yarn":  # the optional numbers, and rope_parameters' truncate (True by default)
        scaling |= {key: params[key] for key in _YARN_OPTIONAL if params.get(key) is not None}
        top = config.get("rope_parameters")
        truncate = top.get("truncate", True) if isinstance(top, dict) else True
        scaling["truncate"] = bool(truncate)
    if kind == "longrope":
        scaling |= _longrope(config, params, family, where)
    if kind == "llama3" and scaling["high_freq_factor"] == scaling["low_freq_factor"]:
        raise MhaError(
            f"{where}: llama3 rope scaling has high_freq_factor = low_freq_factor, which divides "
            "by zero; fix the config"
        )
    return scaling


def _longrope(
    config: Mapping[str, Any], params: Mapping[str, Any], family: Family, where: str
) -> dict[str, Any]:
    """_compute_longrope_parameters' numbers: the short and long factors (one per frequency,
    as tuples), `factor` (max_position_embeddings / original when left out) and the attention
    factor when the config gives one (rope.attention_factor infers it otherwise)."""
    found: dict[str, Any] = {}
    for key in ("short_factor", "long_factor"):
        values = params.get(key)
        if not isinstance(values, list | tuple) or not values:
            raise MhaError(f"{where}: longrope rope scaling needs {key}, a list; fix the config")
        found[key] = tuple(positive(v, key, where) for v in values)
    factor = params.get("factor")
    if factor is None:
        context = config.get("max_position_embeddings", family.context_default)
        factor = context / params["original_max_position_embeddings"]
    found["factor"] = positive(factor, "factor", where)
    if params.get("attention_factor") is not None:
        found["attention_factor"] = positive(params["attention_factor"], "attention_factor", where)
    return found


def _layer_types(config: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """The config's layer_types (one kind per layer), or () when it has none."""
    kinds = config.get("layer_types")
    if kinds is None:
        return ()
    if not isinstance(kinds, list) or not all(isinstance(kind, str) for kind in kinds):
        raise MhaError(
            f"{where}: layer_types = {_short(kinds)} should be a list of layer kinds "
            '("full_attention", "sliding_attention"); fix the config'
        )
    return tuple(kinds)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _layer_type(layer_types: Any, layer: int, where: str) -> str:
    if not isinstance(layer_types, list | tuple) or layer >= len(layer_types):
        raise MhaError(f"{where}: layer_types has no entry for layer {layer}; fix the config")
    return str(layer_types[layer])
