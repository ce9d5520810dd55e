"""The attention specification: everything that decides the layer and its inputs.

An `AttentionSpec` is plain, immutable data. It is built from defaults, a preset or config
file and the command-line options (`spec.build`), checked by `spec.validation`, and read by the
torch core. Defaults reproduce the chapter's example: batch 2, 4 queries, 6 key-value pairs,
100 hiddens, 5 heads, valid_lens [3, 2], no bias, dropout 0 (eval mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

ValidLens = tuple[int, ...] | tuple[tuple[int, ...], ...] | None
# A rope scaling as (key, value) pairs, sorted: hashable, unlike the config's dict.
RopeScaling = tuple[tuple[str, Any], ...] | None

SCORES = ("dot", "additive")
VALUE_MODES = ("split", "full")
ROPES = ("none", "half", "interleaved")
DTYPES = ("float32", "float64", "float16", "bfloat16")
DEVICES = ("cpu", "meta", "cuda")
# Which attention of an encoder-decoder model (Whisper, BART, T5) `--layer N` picks: the
# encoder's self-attention, the decoder's (causal) self-attention, or the decoder's
# cross-attention (queries from the decoder, keys and values from the encoder's output).
ATTENTIONS = ("encoder", "decoder", "cross")
INPUT_KINDS = ("randn", "ones")
# A switch the options can turn off, and the config's settings that only mean something with
# it on: `--rope none` turns off the config's rotary dims and scaling, `--no-causal` its window.
DEPENDENTS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "rope": ("none", ("rotary_dim", "rope_scaling")),
    "causal": (False, ("window",)),
    "alibi": (False, ("alibi_scaled",)),
}


@dataclass(frozen=True)
class AttentionSpec:
    """Everything that decides the layer and its inputs. Defaults: the chapter's example."""

    batch: int = 2
    queries: int = 4
    kv: int = 6
    hiddens: int = 100
    heads: int = 5
    kv_heads: int | None = None  # None: one key-value head per query head (plain MHA)
    head_dim: int | None = None  # None: num_hiddens / num_heads, as d2l has it
    query_size: int | None = None  # None: num_hiddens, as the English edition has it
    key_size: int | None = None
    value_size: int | None = None
    valid_lens: ValidLens = (3, 2)
    causal: bool = False
    window: int | None = None  # sliding window: query at position i sees keys i-W+1 .. i
    score_scale: float | None = None  # the scores' factor; None: 1/sqrt(head_dim), d2l's (Granite's
    # attention_multiplier replaces it)
    softcap: float | None = None  # logit soft-capping c: scores -> tanh(scores / c) * c (Gemma 2)
    clip_qkv: float | None = None  # c: W_q, W_k, W_v outputs clamped to [-c, c] (OLMo)
    alibi: bool = False  # ALiBi: head h adds slope_h * j to key j's score (Bloom, MPT, Falcon)
    # With alibi: Falcon's: slope_h * j rounded to bfloat16, then scaled with the scores (by
    # 1/sqrt(head_dim), or score_scale), instead of Bloom's bias added after the scaling.
    alibi_scaled: bool = False
    # T5: a learned bias per head and bucket of the distance j - i (a table of this many
    # buckets); distances from relative_max_distance on share the last bucket. None: no bias.
    relative_buckets: int | None = None
    relative_max_distance: int = 128
    bias: bool = False  # on W_q, W_k, W_v (and W_o unless out_bias says otherwise)
    out_bias: bool | None = None  # None: as `bias`; Qwen2 has q/k/v biases and none on W_o
    key_bias: bool | None = None  # None: as `bias`; Whisper has biases on all but W_k
    dropout: float = 0.0
    train: bool = False
    score: str = "dot"
    value_mode: str = "split"
    rope: str = "none"  # rotary position embedding: none, half (rotate-half) or interleaved
    rope_theta: float = 10000.0
    rotary_dim: int | None = None  # None: the whole head dim is rotated
    rope_scaling: RopeScaling = None  # e.g. (("factor", 8.0), ("rope_type", "llama3"), ...)
    qk_norm: bool = False  # per-head RMSNorm of queries and keys (Qwen3), before the rotation
    norm_eps: float = 1e-6
    # With qk_norm: one norm over the whole projection (all heads' features, OLMo 2), applied
    # before the split into heads, instead of one per head.
    qk_norm_whole: bool = False
    # With qk_norm: a LayerNorm (mean subtracted, no bias) with one weight per head, (heads, d)
    # (StableLM's qk_layernorm, Cohere's use_qk_norm), instead of an RMSNorm shared by the heads.
    qk_norm_layer: bool = False
    seed: int = 0
    inputs: str = "randn"  # randn, ones, or a file path
    weights: str | None = None  # a checkpoint path, or None for seeded random weights
    layer: int = 0  # which attention layer of a whole-model checkpoint
    # Which attention of an encoder-decoder model (one of ATTENTIONS); None for the others,
    # and for an encoder-decoder model before its config is read (then: "encoder").
    attention: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    # Fields the user set (config or command line): sizes read from files may fill the others.
    explicit: frozenset[str] = field(default=frozenset(), compare=False)
    # Where each set field came from ("command line", "options", "config x.toml"), for messages.
    origins: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def given(self, key: str) -> str:
        """How field `key` was given, for a message: `--rope-theta inf` as an option (command
        line or API keyword), `rope_theta = inf (config x.toml)` from a config, and
        `rope_theta = inf` when nothing set it (a default, or a file's value)."""
        value = getattr(self, key)
        shown = (
            "none" if value is None else str(value).lower() if isinstance(value, bool) else value
        )
        if key == "rope_scaling" and value is not None:
            shown = "{" + ", ".join(f"{k} = {v!r}" for k, v in value) + "}"
        origin = dict(self.origins).get(key)
        if origin is None or origin.startswith(("config ", "preset ")):
            return f"{key} = {shown}" + ("" if origin is None else f" ({origin})")
        if isinstance(value, bool):
            return "--" + ("" if value else "no-") + key.replace("_", "-")
        return f"--{key.replace('_', '-')} {shown}"

    @property
    def query_offset(self) -> int:
        """Position of the first query. Keys sit at 0..kv-1; with fewer queries than keys the
        queries are the last positions, as when decoding with a cache."""
        return max(0, self.kv - self.queries)

    @property
    def inputs_file(self) -> str | None:
        return None if self.inputs in INPUT_KINDS else self.inputs

    def final(self) -> FinalSpec:
        """The spec with every size it leaves to a default written out: kv_heads (= heads),
        head_dim (num_hiddens / num_heads, as d2l has it), query, key and value sizes
        (num_hiddens), out_bias and key_bias (= bias), rotary_dim (the whole head dim, with
        rope). This is what `files.sources.resolve` hands the torch core, which reads each size
        under its one name and never rewrites the spec; before it, read a size as
        `spec.final().head_dim`."""
        head_dim = self.head_dim
        if head_dim is None:  # 0 heads (invalid) is left for validation to say
            head_dim = self.hiddens // self.heads if self.heads else 0
        rotary_dim = None
        if self.rope != "none":
            rotary_dim = head_dim if self.rotary_dim is None else self.rotary_dim
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return FinalSpec(
            **values
            | {
                "kv_heads": self.heads if self.kv_heads is None else self.kv_heads,
                "head_dim": head_dim,
                "query_size": self.hiddens if self.query_size is None else self.query_size,
                "key_size": self.hiddens if self.key_size is None else self.key_size,
                "value_size": self.hiddens if self.value_size is None else self.value_size,
                "out_bias": self.bias if self.out_bias is None else self.out_bias,
                "key_bias": self.bias if self.key_bias is None else self.key_bias,
                "rotary_dim": rotary_dim,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """The specification as JSON-ready data, with the derived sizes filled in."""
        final = self.final()
        record = {f.name: getattr(final, f.name) for f in fields(self) if f.name in SPEC_FIELDS}
        record["rope_scaling"] = None if self.rope_scaling is None else dict(self.rope_scaling)
        if self.valid_lens is not None:
            record["valid_lens"] = as_lists(self.valid_lens)
        return record


@dataclass(frozen=True)
class FinalSpec(AttentionSpec):
    """An `AttentionSpec` with every size written out, as `AttentionSpec.final` makes it: what
    the torch core and the records hold. (The defaults are never used: `final` sets them.)"""

    kv_heads: int = 0
    head_dim: int = 0
    query_size: int = 0
    key_size: int = 0
    value_size: int = 0
    out_bias: bool = False
    key_bias: bool = False


SPEC_FIELDS = tuple(f.name for f in fields(AttentionSpec) if f.name not in ("explicit", "origins"))


def as_lists(value: Any) -> Any:
    return [as_lists(v) for v in value] if isinstance(value, tuple | list) else value
