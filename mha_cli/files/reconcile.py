"""Fill the specification with the sizes a file fixes, refusing an option that contradicts it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.spec.spec import AttentionSpec


def _resolved(spec: AttentionSpec, key: str) -> Any:
    """The value a field really has: None sizes mean num_hiddens, None kv_heads means heads."""
    final = spec.final()  # every size written out
    derived = {
        "query_size": final.query_size,
        "key_size": final.key_size,
        "value_size": final.value_size,
        "kv_heads": final.kv_heads,
        "head_dim": final.head_dim,
        "out_bias": final.out_bias,
        "key_bias": final.key_bias,
    }
    return derived.get(key, getattr(spec, key))


def apply_sizes(spec: AttentionSpec, sizes: dict[str, Any], path: str) -> AttentionSpec:
    filled = replace(spec, **sizes)
    for key in sizes:
        # Compare what each field means, not how it is written: kv_heads None is `heads`.
        given, implied = _resolved(spec, key), _resolved(filled, key)
        if key in spec.explicit and key != "valid_lens" and given != implied:
            origin = dict(spec.origins).get(key, "")
            if origin.startswith(("config ", "preset ")):
                # The config set it (a model's hidden size sets every input width): say so.
                raise MhaError(
                    f"{origin} gives {key} = {given}, which contradicts {path} ({key} = "
                    f"{implied}); use a file that matches the config, or another config"
                )
            option = "--" + key.replace("_", "-")
            raise MhaError(
                f"{option} {given} contradicts {path}, which implies {key} = {implied}; "
                f"drop {option} (sizes are read from the file) or use a matching file"
            )
    return replace(spec, **sizes, explicit=spec.explicit | frozenset(sizes))
