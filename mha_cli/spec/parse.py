"""Values for the specification from text (the command line) or TOML (config files), typed.

Every field's kind is listed once here; a value of the wrong kind is one line naming the
field, the value and what it should be.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.messages import suggest
from mha_cli.spec.spec import SPEC_FIELDS, AttentionSpec, RopeScaling, ValidLens

INT_FIELDS = (
    "batch",
    "queries",
    "kv",
    "hiddens",
    "heads",
    "seed",
    "layer",
    "relative_max_distance",
)
OPTIONAL_INT_FIELDS = (
    "kv_heads",
    "head_dim",
    "query_size",
    "key_size",
    "value_size",
    "window",
    "rotary_dim",
    "relative_buckets",
)
BOOL_FIELDS = (
    "causal",
    "bias",
    "train",
    "qk_norm",
    "qk_norm_whole",
    "qk_norm_layer",
    "alibi",
    "alibi_scaled",
)
OPTIONAL_BOOL_FIELDS = ("out_bias", "key_bias")
FLOAT_FIELDS = ("dropout", "rope_theta", "norm_eps")
OPTIONAL_FLOAT_FIELDS = ("score_scale", "softcap", "clip_qkv")
STR_FIELDS = ("score", "value_mode", "rope", "inputs", "dtype", "device")
OPTIONAL_STR_FIELDS = ("weights", "attention")
_EXAMPLES = {
    "dropout": "0.1",
    "rope_theta": "500000",
    "norm_eps": "1e-6",
    "score_scale": "0.125",
    "softcap": "50",
    "clip_qkv": "8",
}


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def parse_valid_lens(text: str) -> ValidLens:
    """`3,2` (one length per example), `3,2,1,4;2,2,2,2` (one per query), or `none`."""
    cleaned = text.strip()
    if cleaned.lower() in ("none", ""):
        return None
    # A ';' makes it 2-D; a trailing one lets a batch of one give per-query lengths: `1,2,3;`.
    rows = [row for row in cleaned.split(";") if row.strip()]
    try:
        parsed = [tuple(int(v) for v in row.replace(" ", "").split(",")) for row in rows]
    except ValueError:
        raise MhaError(
            f"--valid-lens {text!r} is not a list of whole numbers; "
            "write 3,2 (one per example), 3,2,1,4;2,2,2,2 (one per query, rows by ';') or none"
        ) from None
    return parsed[0] if len(parsed) == 1 and ";" not in cleaned else tuple(parsed)


def parse_option(field: str, text: str) -> Any:
    """A command-line value (always text) as the field's type, or one line naming the fault."""
    option = option_name(field)
    optional = field in OPTIONAL_INT_FIELDS + OPTIONAL_STR_FIELDS + OPTIONAL_BOOL_FIELDS
    optional = optional or field in OPTIONAL_FLOAT_FIELDS
    if optional and text.strip().lower() == "none":
        return None
    if field == "valid_lens":
        return parse_valid_lens(text)
    if field in INT_FIELDS + OPTIONAL_INT_FIELDS:
        try:
            return int(text)
        except ValueError:
            example = getattr(AttentionSpec(), field) or 1
            only = " (only `mha weights` takes --layer all)" if field == "layer" else ""
            raise MhaError(
                f"{option} {text!r} is not a whole number; e.g. {option} {example}{only}"
            ) from None
    if field in FLOAT_FIELDS + OPTIONAL_FLOAT_FIELDS:
        try:
            return float(text)
        except ValueError:
            raise MhaError(
                f"{option} {text!r} is not a number; e.g. {option} {_EXAMPLES[field]}"
            ) from None
    return text


def merge(base: AttentionSpec, values: Mapping[str, Any], source: str) -> AttentionSpec:
    """Apply `values` (from a config or the command line) over `base`, checking each one's type."""
    typed: dict[str, Any] = {}
    for key, value in values.items():
        if key not in SPEC_FIELDS:
            raise MhaError(f"{source}: unknown key {key!r}{suggest(key, SPEC_FIELDS)}")
        typed[key] = coerce(key, value, source)
    origins = tuple((k, v) for k, v in base.origins if k not in typed)
    return replace(
        base,
        **typed,
        explicit=base.explicit | frozenset(typed),
        origins=origins + tuple((key, source) for key in typed),
    )


def coerce(key: str, value: Any, source: str) -> Any:
    """`value` as field `key` holds it, or MhaError naming what it should be."""

    def wrong(expected: str) -> MhaError:
        return MhaError(f"{source}: {key} = {value!r} should be {expected}")

    optional = OPTIONAL_INT_FIELDS + OPTIONAL_BOOL_FIELDS + OPTIONAL_STR_FIELDS
    if value is None and key in optional + OPTIONAL_FLOAT_FIELDS:
        return None
    if key in INT_FIELDS + OPTIONAL_INT_FIELDS:
        return _checked(value, _is_int, wrong("a whole number"))
    if key in BOOL_FIELDS + OPTIONAL_BOOL_FIELDS:
        return _checked(value, lambda v: isinstance(v, bool), wrong("true or false"))
    if key in FLOAT_FIELDS + OPTIONAL_FLOAT_FIELDS:
        number = _checked(value, _is_number, wrong("a number"))
        return float(number)
    if key in STR_FIELDS + OPTIONAL_STR_FIELDS:
        return _checked(value, lambda v: isinstance(v, str), wrong("a string"))
    if key == "valid_lens":
        return _coerce_valid_lens(value, wrong)
    if key == "rope_scaling":
        return _coerce_rope_scaling(value, wrong)
    raise wrong("a known value")  # unreachable: every field is listed above


def _checked(value: Any, ok: Callable[[Any], bool], error: MhaError) -> Any:
    if not ok(value):
        raise error
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coerce_valid_lens(value: Any, wrong: Callable[[str], MhaError]) -> ValidLens:
    if value is None or value is False or (isinstance(value, str) and value.lower() == "none"):
        return None
    if isinstance(value, str):
        return parse_valid_lens(value)
    if isinstance(value, list | tuple) and all(_is_int(v) for v in value):
        return tuple(value)
    if isinstance(value, list | tuple) and all(
        isinstance(row, list | tuple) and all(_is_int(v) for v in row) for row in value
    ):
        return tuple(tuple(row) for row in value)
    raise wrong('a list of whole numbers, a list of such lists, or "none"')


def _coerce_rope_scaling(value: Any, wrong: Callable[[str], MhaError]) -> RopeScaling:
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    items = value.items() if isinstance(value, Mapping) else value
    try:
        table = {str(k): v for k, v in items}
    except (TypeError, ValueError):
        raise wrong('a table such as {rope_type = "linear", factor = 2.0}') from None
    if "type" in table:  # the older spelling transformers still reads as rope_type
        kind = table.pop("type")
        table.setdefault("rope_type", kind)
    return tuple(sorted(table.items()))
