"""Which variants of a layer to compare: the default set, or the user's `--variant` settings.

The default set answers the readers' question on values kept whole per head (with a note on
its other reading, heads summed) and the key-value head question at once: the chapter's
layer (values split across heads), values kept whole per head, grouped-query attention with
about a quarter of the heads as key-value heads, and multi-query attention. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.messages import suggest
from mha_cli.spec.parse import BOOL_FIELDS, OPTIONAL_BOOL_FIELDS, merge, option_name, parse_option
from mha_cli.spec.spec import SPEC_FIELDS, AttentionSpec
from mha_cli.spec.validation import divisors

REFERENCE = "MHA, values split (d2l)"
WHOLE = "MHA, values whole per head"
# Settings a variant may change: the layer's shape, never where it runs or what it reads.
NOT_VARIED = ("device", "weights", "inputs", "layer", "attention", "seed")
VARIED = tuple(name for name in SPEC_FIELDS if name not in NOT_VARIED)
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


@dataclass(frozen=True)
class Variant:
    label: str
    settings: dict[str, Any] = field(default_factory=dict)  # spec field -> value


def grouped_kv_heads(heads: int) -> int | None:
    """The key-value heads of the grouped-query variant: the divisor of `heads` nearest to a
    quarter of them, strictly between 1 and `heads` (None when there is none, e.g. 5 heads)."""
    between = [d for d in divisors(heads) if 1 < d < heads]
    if not between:
        return None
    return min(between, key=lambda d: (abs(d - heads / 4), -d))


def summed_heads_note(spec: AttentionSpec) -> str:
    """The other reading of "values not split, then combined": heads summed, not concatenated."""
    h, hiddens = spec.heads, spec.hiddens
    return (
        f"the other reading, heads summed instead of concatenated: each of the {h} heads keeps "
        f"all {hiddens} value features and their outputs are added, so W_o stays {hiddens} x "
        f"{hiddens} and the parameters stay d2l's; but with one W_v shared by every head the sum "
        f"is (A_1 + ... + A_{h}) V, one averaged attention pattern, and the heads no longer "
        "write different things. d2l's concatenation followed by W_o is itself a sum over the "
        "heads (W_o's column block i times head i's output), so splitting the values costs no "
        "parameters and keeps each head's output its own"
    )


def default_variants(spec: AttentionSpec) -> tuple[list[Variant], list[str]]:
    """The default columns (the layer as given first when it is none of them) and notes on
    the ones that cannot be built for these sizes."""
    if spec.score == "additive":
        raise MhaError(
            "mha variants compares multi-head layers; additive attention has one head and no "
            "value projection; use --score dot"
        )
    variants = [
        Variant(REFERENCE, {"kv_heads": None, "value_mode": "split"}),
        Variant(WHOLE, {"kv_heads": None, "value_mode": "full"}),
    ]
    notes = [summed_heads_note(spec)] if spec.heads > 1 else []
    grouped = grouped_kv_heads(spec.heads)
    if grouped is not None:
        variants.append(
            Variant(f"GQA, {grouped} kv heads", {"kv_heads": grouped, "value_mode": "split"})
        )
    elif spec.heads > 2:
        notes.append(
            f"no grouped-query column: kv heads must divide the {spec.heads} heads, and only "
            f"1 and {spec.heads} do"
        )
    if spec.heads > 1:
        variants.append(Variant("MQA, 1 kv head", {"kv_heads": 1, "value_mode": "split"}))
    given = (spec.final().kv_heads, spec.value_mode)
    if given not in [
        (apply(spec, v).final().kv_heads, apply(spec, v).value_mode) for v in variants
    ]:
        variants.insert(0, Variant("as given"))
    return variants, notes


def parse_variant(text: str) -> Variant:
    """`kv-heads=2 value-mode=full`: settings separated by spaces, option names without `--`."""
    settings: dict[str, Any] = {}
    for item in text.split():
        key, equals, value = item.partition("=")
        name = key.removeprefix("--").replace("-", "_")
        if not equals or not value:
            raise MhaError(
                f"--variant {text!r}: {item!r} is not NAME=VALUE; write e.g. "
                "--variant 'kv-heads=2' or --variant 'value-mode=full head-dim=32'"
            )
        if name not in VARIED:
            known = [option_name(n).removeprefix("--") for n in VARIED]
            raise MhaError(
                f"--variant {text!r}: {key!r} is not a setting a variant can change"
                f"{suggest(key, known)}"
            )
        settings[name] = _value(name, value, text)
    if not settings:
        raise MhaError("--variant is empty; write e.g. --variant 'kv-heads=2'")
    return Variant(text.strip(), settings)


def _value(name: str, value: str, text: str) -> Any:
    if name in BOOL_FIELDS + OPTIONAL_BOOL_FIELDS:
        if value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise MhaError(f"--variant {text!r}: {name.replace('_', '-')} is true or false")
    return parse_option(name, value)


def apply(spec: AttentionSpec, variant: Variant) -> AttentionSpec:
    """The base specification with the variant's settings (on the meta device)."""
    return merge(spec, {**variant.settings, "device": "meta"}, f"variant {variant.label!r}")
