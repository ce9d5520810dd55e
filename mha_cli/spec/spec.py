"""The attention specification: defaults, parsing of option strings, validation.

An `AttentionSpec` is plain, immutable data. The CLI builds one from a preset or
config file and the command-line options; the layer run reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.messages import suggest

ValidLens = tuple[int, ...] | tuple[tuple[int, ...], ...] | None

SCORES = ("dot", "additive")
VALUE_MODES = ("split", "full")
DTYPES = ("float32", "float64", "float16", "bfloat16")
DEVICES = ("cpu", "meta", "cuda")
INPUT_KINDS = ("randn", "ones")


@dataclass(frozen=True)
class AttentionSpec:
    """Everything that decides the layer and its inputs. Defaults: the chapter's example."""

    batch: int = 2
    queries: int = 4
    kv: int = 6
    hiddens: int = 100
    heads: int = 5
    kv_heads: int | None = None  # None: one key-value head per query head (plain MHA)
    query_size: int | None = None  # None: num_hiddens, as the English edition has it
    key_size: int | None = None
    value_size: int | None = None
    valid_lens: ValidLens = (3, 2)
    causal: bool = False
    bias: bool = False
    dropout: float = 0.0
    train: bool = False
    score: str = "dot"
    value_mode: str = "split"
    seed: int = 0
    inputs: str = "randn"  # randn, ones, or a file path
    weights: str | None = None  # a checkpoint path, or None for seeded random weights
    dtype: str = "float32"
    device: str = "cpu"
    # Fields the user set (config or command line): sizes read from files may fill the others.
    explicit: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def num_kv_heads(self) -> int:
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def head_dim(self) -> int:
        return self.hiddens // self.heads

    @property
    def q_size(self) -> int:
        return self.hiddens if self.query_size is None else self.query_size

    @property
    def k_size(self) -> int:
        return self.hiddens if self.key_size is None else self.key_size

    @property
    def v_size(self) -> int:
        return self.hiddens if self.value_size is None else self.value_size

    @property
    def inputs_file(self) -> str | None:
        return None if self.inputs in INPUT_KINDS else self.inputs

    def to_dict(self) -> dict[str, Any]:
        """The specification as JSON-ready data, with the derived sizes filled in."""
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "explicit"}
        record.update(
            kv_heads=self.num_kv_heads,
            query_size=self.q_size,
            key_size=self.k_size,
            value_size=self.v_size,
            head_dim=self.head_dim,
        )
        if self.valid_lens is not None:
            record["valid_lens"] = _as_lists(self.valid_lens)
        return record


SPEC_FIELDS = tuple(f.name for f in fields(AttentionSpec) if f.name != "explicit")


def _as_lists(value: Any) -> Any:
    return [_as_lists(v) for v in value] if isinstance(value, tuple | list) else value


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


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def parse_option(field: str, text: str) -> Any:
    """A command-line value (always text) as the field's type, or one line naming the fault."""
    option = option_name(field)
    if field == "valid_lens":
        return parse_valid_lens(text)
    if field in _INT_FIELDS:
        try:
            return int(text)
        except ValueError:
            example = getattr(AttentionSpec(), field) or 1
            raise MhaError(
                f"{option} {text!r} is not a whole number; e.g. {option} {example}"
            ) from None
    if field == "dropout":
        try:
            return float(text)
        except ValueError:
            raise MhaError(
                f"{option} {text!r} is not a number; give a probability in [0, 1), e.g. 0.1"
            ) from None
    return text


def merge(base: AttentionSpec, values: dict[str, Any], source: str) -> AttentionSpec:
    """Apply `values` (from a config or the command line) over `base`, checking each one's type."""
    typed: dict[str, Any] = {}
    for key, value in values.items():
        if key not in SPEC_FIELDS:
            raise MhaError(f"{source}: unknown key {key!r}{suggest(key, SPEC_FIELDS)}")
        typed[key] = _coerce(key, value, source)
    return replace(base, **typed, explicit=base.explicit | frozenset(typed))


_INT_FIELDS: tuple[str, ...] = ("batch", "queries", "kv", "hiddens", "heads", "kv_heads", "seed")
_INT_FIELDS += ("query_size", "key_size", "value_size")
_BOOL_FIELDS = ("causal", "bias", "train")
_STR_FIELDS = ("score", "value_mode", "inputs", "weights", "dtype", "device")


def _coerce(key: str, value: Any, source: str) -> Any:
    def wrong(expected: str) -> MhaError:
        return MhaError(f"{source}: {key} = {value!r} should be {expected}")

    if key in _INT_FIELDS:
        if key in ("kv_heads", "query_size", "key_size", "value_size") and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("a whole number")
        return value
    if key in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if key == "dropout":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number in [0, 1)")
        return float(value)
    if key == "valid_lens":
        return _coerce_valid_lens(value, wrong)
    if key in _STR_FIELDS:
        if key == "weights" and value is None:
            return None
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    raise wrong("a known value")  # unreachable: every field is listed above


def _coerce_valid_lens(value: Any, wrong: Any) -> ValidLens:
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
