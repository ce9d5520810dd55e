"""Every Hugging Face model family mha reads, one `Family` record each, in one table.

Adding a family is one entry of `TABLE`: which key layouts its checkpoints have
(`hf/layouts.LAYOUTS`), how its config.json gives the sizes, the biases, the rotary embedding,
the window and the norms, and the defaults transformers 5 takes for keys a config leaves out
(its config classes and modeling files). Pure data: `config.py`, `positions.py` and
`layouts.py` read it and hold no per-family branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A flag that is a constant of the family, or (config key, its value when left out).
Flag = bool | tuple[str, bool]


@dataclass(frozen=True)
class Requirement:
    """A config value the d2l layer needs: `key` (`expected` when left out) must be `expected`;
    `message` says otherwise, with `{value}` the config's value and `{fix}` the way out."""

    key: str
    expected: Any
    message: str

    def holds(self, value: Any) -> bool:
        """Whether the config's value (`expected` when left out) is the one needed."""
        if isinstance(self.expected, bool):
            return bool(value) == self.expected
        return bool(value == self.expected)


@dataclass(frozen=True)
class Family:
    name: str  # config.json's model_type
    layouts: tuple[str, ...]  # the key layouts of its checkpoints, tried in this order
    encoder: bool = False  # bidirectional (not causal) unless the config says is_decoder
    qkv_bias: Flag = False  # bias on W_q, W_k and W_v
    o_bias: Flag = False  # bias on W_o
    grouped: bool = False  # reads num_key_value_heads (grouped-query attention)
    kv_heads_default: int | None = None  # num_key_value_heads left out (None: one per head)
    own_head_dim: bool = False  # reads head_dim (else hidden size / heads, which must divide)
    head_dim_default: int | None = None  # head_dim left out (None: hidden size / heads)
    rope: str = "none"  # "none", "half" (rotate-half) or "interleaved"
    # How the config keeps the rotation: "parameters" (rope_parameters or rope_scaling and
    # rope_theta; the whole head turns), "neox" (rotary_emb_base, rotary_pct 0.25 when left
    # out), "gptj" (base 10000 always, rotary_dim 64 when left out).
    rope_config: str = "parameters"
    context_default: int = 2048  # max_position_embeddings left out (llama3 rope scaling)
    # The sliding window: "none", "always" (Mistral: sliding_window on every layer, 4096 when
    # left out) or "layer_types" (Qwen2: with use_sliding_window, on the layers that
    # layer_types marks, by default from max_window_layers on).
    window: str = "none"
    qk_norm: bool = False  # per-head RMSNorm of queries and keys (rms_norm_eps), before rope
    requires: tuple[Requirement, ...] = ()  # what the d2l layer cannot reproduce otherwise
    # Without a config.json, how its checkpoints differ from the others of the same layout:
    # d2l names its layers have, and names they lack (no entry: the layout's first family).
    keys_have: tuple[str, ...] = ()
    keys_lack: tuple[str, ...] = ()


_GPT2_SCORES = (
    Requirement("scale_attn_weights", True, "scale_attn_weights = false is not supported; {fix}"),
    Requirement(
        "scale_attn_by_inverse_layer_idx",
        False,
        "scale_attn_by_inverse_layer_idx = true is not supported; {fix}",
    ),
)
_ABSOLUTE = (
    Requirement(
        "position_embedding_type",
        "absolute",
        "position_embedding_type {value!r} (relative-position scores) is not supported; "
        "{fix} ('absolute')",
    ),
)
_BIAS = ("attention_bias", False)

# fmt: off
TABLE: tuple[Family, ...] = (
    Family("bert", ("bert",), encoder=True, qkv_bias=True, o_bias=True, requires=_ABSOLUTE),
    Family("roberta", ("bert",), encoder=True, qkv_bias=True, o_bias=True, requires=_ABSOLUTE),
    Family("vit", ("vit", "vit5"), encoder=True, qkv_bias=("qkv_bias", True), o_bias=True),
    Family("gpt2", ("gpt2",), qkv_bias=True, o_bias=True, requires=_GPT2_SCORES),
    Family("opt", ("opt",), qkv_bias=("enable_bias", True), o_bias=("enable_bias", True)),
    Family("llama", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True, own_head_dim=True,
           rope="half"),
    Family("mistral", ("llama",), grouped=True, kv_heads_default=8, own_head_dim=True,
           rope="half", context_default=4096 * 32, window="always"),  # Llama's keys: never guessed
    Family("qwen2", ("llama",), qkv_bias=True, o_bias=False, grouped=True, kv_heads_default=32,
           own_head_dim=True, rope="half", context_default=32768, window="layer_types",
           keys_have=("W_q.bias",), keys_lack=("W_o.bias",)),
    Family("qwen3", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True, kv_heads_default=32,
           own_head_dim=True, head_dim_default=128, rope="half", context_default=32768,
           window="layer_types", qk_norm=True, keys_have=("q_norm.weight",)),
    Family("gpt_neox", ("gpt_neox",), qkv_bias=("attention_bias", True),
           o_bias=("attention_bias", True), rope="half", rope_config="neox"),
    Family("gptj", ("gptj",), rope="interleaved", rope_config="gptj"),
)
# fmt: on

FAMILY = {family.name: family for family in TABLE}
FAMILIES = tuple(FAMILY)

# Families mha does not read, and why, where a word helps.
_STATE_SPACE = "a state-space model: it has no attention layer"
UNSUPPORTED = {"mamba": _STATE_SPACE, "mamba2": _STATE_SPACE, "rwkv": "it has no attention layer"}
UNSUPPORTED |= {
    "gpt_bigcode": "multi-query attention with nn.Linear c_attn, not GPT-2's Conv1D",
    "olmo2": "its q/k norm spans the whole projection, not one head",
}


def guess(layout: str, present: Any) -> str:
    """The family of a checkpoint of layout `layout` (a `LAYOUTS` key) without a config.json:
    the first whose keys show it (`present(d2l name)`), else the layout's first family."""
    candidates = [f for f in TABLE if layout in f.layouts]
    for family in reversed(candidates):  # the later entries have the narrower signatures
        shown = family.keys_have and all(present(k) for k in family.keys_have)
        if shown and not any(present(k) for k in family.keys_lack):
            return family.name
    return next(f for f in candidates if not f.keys_have).name


def flag(value: Flag, config: Any) -> bool:
    """A `Flag` as this config sets it."""
    if isinstance(value, bool):
        return value
    key, default = value
    return bool(config.get(key, default))
