"""Build a specification the way every face of mha does: defaults, then a preset or config
file, then the options given (command line or keyword arguments). Pure Python: no torch."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.spec.configs import load_config, model_config_file
from mha_cli.spec.parse import coerce, merge, parse_option
from mha_cli.spec.spec import DEPENDENTS, AttentionSpec


def build_spec(
    config: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
    source: str = "command line",
) -> AttentionSpec:
    """Defaults, then `config` (a preset name or a file), then `options` (None = not given).

    Text values are parsed as the command line writes them (`valid_lens="3,2"`), so the Python
    API takes the same spellings as the options.
    """
    given = {
        k: os.fspath(v) if isinstance(v, os.PathLike) else v
        for k, v in (options or {}).items()
        if v is not None
    }
    config = None if config is None else model_config_file(os.fspath(config))
    spec = AttentionSpec()
    if config is None and given.get("score") == "additive":
        # `--score additive` alone reproduces its chapter's example, as plain `mha inspect`
        # reproduces the multi-head one: those are the defaults, not choices the user made.
        chapter = merge(spec, load_config("additive"), "preset additive")
        spec = replace(chapter, explicit=frozenset())
    values = {k: parse_option(k, v) if isinstance(v, str) else v for k, v in given.items()}
    if config is not None:
        layer = coerce("layer", values.get("layer", 0), source)
        attention = coerce("attention", values.get("attention"), source)
        spec = merge(spec, load_config(config, layer, attention), f"config {config}")
    spec = switch_off_dependents(merge(spec, values, source), frozenset(values))
    if spec.weights is not None:  # a model id (`gpt2`) names its folder in the HF cache
        from mha_cli.hf.cache import resolve_weights

        spec = replace(spec, weights=resolve_weights(spec.weights))
    model_config = config is not None and config.lower().endswith(".json")
    if spec.layer > 0 and spec.weights is None and not model_config:
        raise MhaError(
            f"{spec.given('layer')}: the seeded random layer holds 1 attention layer (layer 0); "
            "--layer picks a layer of a whole model: add --weights (a Hugging Face folder or "
            "file) or --config (its config.json), or drop --layer"
        )
    if spec.attention is not None and spec.weights is None and not model_config:
        raise MhaError(
            f"{spec.given('attention')} picks an attention of an encoder-decoder model "
            "(Whisper, BART, T5), and the seeded random layer is one self-attention layer: add "
            "--weights (the model's folder) or --config (its config.json), or drop --attention"
        )
    return spec


def switch_off_dependents(spec: AttentionSpec, given: frozenset[str]) -> AttentionSpec:
    """Options override the config's behaviour: a switch the options turn off takes with it
    the settings that depend on it, unless the options give those too (then validation says
    that they conflict)."""
    off: dict[str, Any] = {}
    for switch, (value, dependents) in DEPENDENTS.items():
        if switch in given and getattr(spec, switch) == value:
            off |= {key: None for key in dependents if key not in given}
    return replace(spec, **off) if off else spec
