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
    reads: str = ""  # for people (`mha families`): what mha reads of its config beyond sizes
    encoder: bool = False  # bidirectional (not causal) unless the config says is_decoder
    # An encoder and a decoder (Whisper, BART): `layouts` are then "encoder", "decoder" and
    # "cross", one per attention `--attention` picks; the heads and layers of each stack come
    # from encoder_attention_heads, encoder_layers (decoder_... for the decoder and cross).
    encoder_decoder: bool = False
    # T5, mT5, UMT5: an encoder and a decoder whose layouts are (encoder, decoder, cross) in
    # that order, with num_heads in both stacks, num_layers in the encoder and this key in the
    # decoder (num_layers when left out); without --attention, the encoder as the T5 encoder's.
    decoder_layers_key: str = ""
    qkv_bias: Flag = False  # bias on W_q, W_k and W_v
    k_bias: bool | None = None  # None: as qkv_bias; False: none on W_k (Whisper's k_proj)
    o_bias: Flag = False  # bias on W_o
    grouped: bool = False  # reads num_key_value_heads (grouped-query attention)
    multi_query: bool = False  # one key-value head (GPTBigCode with multi_query)
    alibi: Flag = False  # ALiBi position biases instead of a rotation (Bloom; MPT's attn_config)
    alibi_power_of_two: bool = False  # MPT: its slopes are Bloom's for 2, 4, 8, ... heads only
    alibi_scaled: bool = False  # Falcon: the bias (bfloat16) is scaled with the scores
    # How a packed projection is laid out, by config: the first (key, its value when left out,
    # packing, key-value heads) whose key is true, else `packing_otherwise`. Packings as
    # `hf/layouts.Layout.packing`; key-value heads "config" (`kv_heads_key`, one per head when
    # left out), "one" or "heads" (one per head). Empty: the layout's packing.
    packings: tuple[tuple[str, bool, str, str], ...] = ()
    packing_otherwise: tuple[str, str] = ("", "")
    kv_heads_key: str = "num_key_value_heads"
    nested: str = ""  # a config object whose keys count as top-level ones (MPT: attn_config)
    kv_heads_default: int | None = None  # num_key_value_heads left out (None: one per head)
    own_head_dim: bool = False  # reads head_dim (else hidden size / heads, which must divide)
    head_dim_default: int | None = None  # head_dim left out (None: hidden size / heads)
    rope: str = "none"  # "none", "half" (rotate-half) or "interleaved"
    # How the config keeps the rotation: "parameters" (rope_parameters or rope_scaling and
    # rope_theta; the whole head turns), "neox" (rotary_emb_base, rotary_pct 0.25 when left
    # out), "gptj" (base 10000 always, rotary_dim 64 when left out).
    rope_config: str = "parameters"
    context_default: int = 2048  # max_position_embeddings left out (llama3 rope scaling)
    # partial_rotary_factor left out: None when the family's attention always turns the whole
    # head (another factor is refused), else the factor (StableLM: 0.25, Phi-3: 1.0).
    partial_rotary: float | None = None
    theta_default: float = 10_000.0  # the rope base when the config gives none (default_theta)
    # The sliding window: "none", "always" (Mistral: sliding_window on every layer,
    # `window_default` when left out), "switched" (Qwen3-MoE: with use_sliding_window, on every
    # layer) or "layer_types" (Qwen2: with use_sliding_window, on the layers that layer_types
    # marks; without layer_types, `window_layers` says which).
    window: str = "none"
    window_default: int | None = 4096  # sliding_window left out
    # Without layer_types: "from_max" (Qwen2: layers from max_window_layers on), "odd_below_max"
    # (Qwen2-MoE: layers 0, 2, 4, ... below max_window_layers), "even" (Gemma 2: 0, 2, 4...) or
    # "pattern" (Gemma 3: all but every sliding_window_pattern-th layer, 6 when left out).
    window_layers: str = "from_max"
    qk_norm: Flag = False  # per-head RMSNorm of queries and keys (rms_norm_eps), before rope
    # That norm is a LayerNorm (mean subtracted, no bias) with one weight per head, (heads, d),
    # its eps layer_norm_eps (StableLM's qk_layernorm, Cohere's use_qk_norm).
    norm_layer: bool = False
    qk_norm_whole: bool = False  # that norm spans the whole projection, before the split (OLMo 2)
    norm_plus_one: bool = False  # that norm multiplies by (1 + w), w as stored (Gemma 3)
    theta_local: float | None = None  # the rope base of sliding layers left out (Gemma 3: 1e4)
    # The config key of the scores' factor, and its value when left out (Granite:
    # attention_multiplier, 1.0); None: 1/sqrt(head_dim). `scale_inverse_sqrt`: the key holds
    # s and the factor is 1/sqrt(s) (Gemma 2's query_pre_attn_scalar).
    scale_key: tuple[str, float | None] | None = None
    scale_inverse_sqrt: bool = False
    softcap_key: tuple[str, float | None] | None = None  # Gemma 2: attn_logit_softcapping, 50
    clip_key: str | None = None  # OLMo: clip_qkv (None when left out: no clamping)
    window_switch: bool = True  # use_sliding_window turns the window on (Gemma 2: always on)
    head_dim_key: str = "head_dim"  # where own_head_dim reads it (T5: d_kv)
    scale_fixed: float | None = None  # the scores' factor, always (T5: 1, no 1/sqrt(d))
    # T5: a relative position bias table of relative_attention_num_buckets (32 when left out),
    # distances up to relative_attention_max_distance (128); bidirectional unless is_decoder.
    relative_bias: bool = False
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
_BIGCODE = (
    Requirement(
        "multi_query",
        True,
        "multi_query = false (c_attn packed per head) is not supported; {fix}",
    ),
    Requirement("scale_attn_weights", True, "scale_attn_weights = false is not supported; {fix}"),
)
_MPT = (
    Requirement(
        "qk_ln", False, "qk_ln = true (a LayerNorm of queries and keys) is not supported; {fix}"
    ),
    Requirement("alibi_bias_max", 8, "alibi_bias_max = {value} is not supported (8 only); {fix}"),
)
# FalconAttention.forward: the new decoder architecture packs per key-value group (its query
# heads, then its key and its value), multi-query packs q | k | v, the rest per head (q, k, v).
_FALCON_PACKINGS = (
    ("new_decoder_architecture", False, "grouped", "config"),
    ("multi_query", True, "phi3", "one"),
)
_T5_ENCODER = (
    Requirement(
        "is_decoder",
        False,
        "is_decoder = true (a decoder alone) is not supported: mha reads the decoder of a "
        "whole encoder-decoder model with --attention decoder or cross; give the whole "
        "model's config.json (is_decoder false)",
    ),
)
_CAUSAL = (
    Requirement(
        "use_bidirectional_attention",
        False,
        "use_bidirectional_attention = true is not supported; mha reads Gemma's causal "
        "attention; inspect a model without it",
    ),
)

# fmt: off
TABLE: tuple[Family, ...] = (
    Family("bert", ("bert",), encoder=True, qkv_bias=True, o_bias=True, requires=_ABSOLUTE,
           reads="bidirectional (causal with is_decoder), biases; absolute positions only"),
    Family("roberta", ("bert",), encoder=True, qkv_bias=True, o_bias=True, requires=_ABSOLUTE,
           reads="as BERT"),
    Family("vit", ("vit", "vit5"), encoder=True, qkv_bias=("qkv_bias", True), o_bias=True,
           reads="bidirectional, qkv_bias; no padding"),
    Family("gpt2", ("gpt2",), qkv_bias=True, o_bias=True, requires=_GPT2_SCORES,
           reads="packed Conv1D c_attn split q | k | v, biases"),
    Family("opt", ("opt",), qkv_bias=("enable_bias", True), o_bias=("enable_bias", True),
           reads="enable_bias"),
    Family("llama", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True, own_head_dim=True,
           rope="half",
           reads="grouped heads, head_dim, attention_bias, rope base; linear, llama3, yarn, "
                 "dynamic, longrope rope scaling"),
    Family("mistral", ("llama",), grouped=True, kv_heads_default=8, own_head_dim=True,
           rope="half", context_default=4096 * 32, window="always",
           reads="as Llama, sliding_window on every layer"),  # Llama's keys: never guessed
    Family("qwen2", ("llama",), qkv_bias=True, o_bias=False, grouped=True, kv_heads_default=32,
           own_head_dim=True, rope="half", context_default=32768, window="layer_types",
           keys_have=("W_q.bias",), keys_lack=("W_o.bias",),
           reads="biases on q, k, v (not o), window on the layers layer_types marks"),
    Family("qwen3", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True, kv_heads_default=32,
           own_head_dim=True, head_dim_default=128, rope="half", context_default=32768,
           window="layer_types", qk_norm=True, keys_have=("q_norm.weight",),
           reads="per-head q/k RMSNorm before rope, head_dim 128 by default"),
    Family("gpt_neox", ("gpt_neox",), qkv_bias=("attention_bias", True),
           o_bias=("attention_bias", True), rope="half", rope_config="neox",
           reads="query_key_value packed per head, partial rotary (rotary_pct)"),
    Family("gptj", ("gptj",), rope="interleaved", rope_config="gptj",
           reads="interleaved rope on the first rotary_dim features"),
    # Attention as Mistral's, Qwen2's and Qwen3's: the experts are in the MLP, never read.
    Family("mixtral", ("llama",), grouped=True, kv_heads_default=8, own_head_dim=True,
           rope="half", context_default=4096 * 32, theta_default=1e6, window="always",
           window_default=None,
           reads="as Mistral: rope base 1e6 by default, sliding_window (none by default)"),
    Family("qwen2_moe", ("llama",), qkv_bias=("qkv_bias", True), o_bias=False, grouped=True,
           kv_heads_default=16, own_head_dim=True, rope="half", context_default=32768,
           window="layer_types", window_layers="odd_below_max",
           reads="as Qwen2: qkv_bias, window on even layers below max_window_layers"),
    Family("qwen3_moe", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True,
           kv_heads_default=4, own_head_dim=True, rope="half", context_default=32768,
           window="switched", qk_norm=True,
           reads="as Qwen3: q/k RMSNorm, window on every layer with use_sliding_window"),
    Family("gemma", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True, kv_heads_default=16,
           own_head_dim=True, head_dim_default=256, rope="half", context_default=8192,
           requires=_CAUSAL,
           reads="head_dim (256 by default), 16 key-value heads by default"),
    Family("starcoder2", ("llama",), qkv_bias=("use_bias", True), o_bias=("use_bias", True),
           grouped=True, kv_heads_default=2, own_head_dim=True, rope="half",
           context_default=4096, window="always", window_default=None,
           reads="use_bias on all four projections, sliding_window"),
    Family("stablelm", ("llama",), qkv_bias=("use_qkv_bias", False), o_bias=False, grouped=True,
           kv_heads_default=32, rope="half", partial_rotary=0.25,
           qk_norm=("qk_layernorm", False), norm_layer=True,
           reads="partial rotary (partial_rotary_factor, 0.25 by default), use_qkv_bias; "
                 "qk_layernorm: a LayerNorm per head, one weight each (a stage row)"),
    Family("phi3", ("phi3",), grouped=True, own_head_dim=True, rope="half", partial_rotary=1.0,
           context_default=4096, window="always", window_default=None,
           reads="packed qkv_proj split q | k | v with grouped sizes, partial rotary, "
                 "sliding_window; longrope (short and long factors)"),
    Family("cohere", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True, own_head_dim=True,
           rope="interleaved", theta_default=500_000.0, context_default=8192,
           qk_norm=("use_qk_norm", False), norm_layer=True,
           reads="interleaved rope (pairs 2j, 2j + 1), rope base 5e5 by default; use_qk_norm: "
                 "a LayerNorm over (heads, head_dim), one weight per head (a stage row)"),
    Family("olmo", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True, own_head_dim=True,
           rope="half", clip_key="clip_qkv",
           reads="clip_qkv: W_q, W_k, W_v outputs clamped (a stage row), as Llama otherwise"),
    Family("granite", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True,
           own_head_dim=True, rope="half", scale_key=("attention_multiplier", 1.0),
           reads="attention_multiplier as the scores' factor (a stage row), as Llama otherwise"),
    Family("gemma2", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True, kv_heads_default=4,
           own_head_dim=True, head_dim_default=256, rope="half", context_default=8192,
           scale_key=("query_pre_attn_scalar", 256.0), scale_inverse_sqrt=True,
           softcap_key=("attn_logit_softcapping", 50.0), window="layer_types",
           window_switch=False, window_layers="even", requires=_CAUSAL,
           reads="scores x query_pre_attn_scalar^-0.5, soft-capping tanh(s / c) * c (a stage "
                 "row), sliding window on the layers layer_types marks (even ones by default)"),
    Family("gemma3_text", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True,
           kv_heads_default=4, own_head_dim=True, head_dim_default=256, rope="half",
           context_default=131072, theta_default=1e6, theta_local=1e4,
           scale_key=("query_pre_attn_scalar", 256.0), scale_inverse_sqrt=True,
           softcap_key=("attn_logit_softcapping", None), window="layer_types",
           window_switch=False, window_layers="pattern", qk_norm=True, norm_plus_one=True,
           requires=_CAUSAL,
           reads="Gemma 2's, plus q/k RMSNorm times (1 + w) (read as 1 + w), the rope base per "
                 "layer type (local 1e4, global 1e6)"),
    Family("olmo2", ("llama",), qkv_bias=_BIAS, o_bias=_BIAS, grouped=True, own_head_dim=True,
           rope="half", qk_norm=True, qk_norm_whole=True,
           reads="q/k RMSNorm over the whole projection (h x d, g x d features) before the "
                 "split into heads (a stage row)"),
    # BERT's and ViT's attention under their own model types.
    Family("electra", ("bert",), encoder=True, qkv_bias=True, o_bias=True, requires=_ABSOLUTE,
           reads="BERT's layout under its own model type"),
    Family("xlm-roberta", ("bert",), encoder=True, qkv_bias=True, o_bias=True,
           requires=_ABSOLUTE,
           reads="BERT's layout under its own model type"),
    Family("camembert", ("bert",), encoder=True, qkv_bias=True, o_bias=True,
           requires=_ABSOLUTE,
           reads="BERT's layout under its own model type"),
    Family("dinov2", ("vit", "vit5"), encoder=True, qkv_bias=("qkv_bias", True), o_bias=True,
           reads="ViT's layout under its own model type"),
    Family("clip_text_model", ("clip",), qkv_bias=True, o_bias=True,
           reads="causal (CLIP's text tower), biases, self_attn.out_proj"),
    Family("clip_vision_model", ("clip",), encoder=True, qkv_bias=True, o_bias=True,
           reads="bidirectional, biases, self_attn.out_proj; no padding"),
    Family("siglip_text_model", ("clip",), encoder=True, qkv_bias=True, o_bias=True,
           reads="bidirectional (SigLIP's text tower is not causal), biases"),
    Family("siglip_vision_model", ("clip",), encoder=True, qkv_bias=True, o_bias=True,
           reads="bidirectional, biases; no padding"),
    Family("gpt_bigcode", ("gpt_bigcode",), qkv_bias=True, o_bias=True, multi_query=True,
           requires=_BIGCODE,
           reads="multi-query c_attn (nn.Linear) split h x d | d | d, biases; multi_query = "
                 "false and scale_attn_weights = false refused"),
    Family("bloom", ("bloom",), qkv_bias=True, o_bias=True, alibi=True,
           reads="query_key_value packed per head, ALiBi slopes per head (a stage row), biases"),
    Family("mpt", ("mpt",),  # MptAttention: Wqkv and out_proj never have biases
           alibi=("alibi", True), alibi_power_of_two=True, nested="attn_config",
           scale_key=("softmax_scale", None), clip_key="clip_qkv", requires=_MPT,
           reads="attn_config: ALiBi (slopes as Bloom's, 2^k heads), softmax_scale, clip_qkv; "
                 "Wqkv split q | k | v; qk_ln refused"),
    Family("falcon", ("falcon",), qkv_bias=("bias", False), o_bias=("bias", False),
           rope="half", alibi=("alibi", False), alibi_scaled=True, packings=_FALCON_PACKINGS,
           packing_otherwise=("neox", "heads"), kv_heads_key="num_kv_heads",
           reads="query_key_value: per key-value group with new_decoder_architecture "
                 "(num_kv_heads), h x d | d | d with multi_query, else per head; rope, or with "
                 "alibi ALiBi in bfloat16 scaled with the scores (a stage row); bias"),
    Family("t5", ("t5", "t5_decoder", "t5_cross"), encoder=True, own_head_dim=True,
           head_dim_key="d_kv", head_dim_default=64, scale_fixed=1.0, relative_bias=True,
           encoder_decoder=True, decoder_layers_key="num_decoder_layers", requires=_T5_ENCODER,
           reads="--attention encoder (default) | decoder (causal; num_decoder_layers) | cross "
                 "(queries from the decoder, keys and values from the encoder, no position "
                 "bias); d_kv, no 1/sqrt(d), relative position bias (a stage row) from layer "
                 "0's table of its stack, shared by every layer"),
    Family("mt5", ("t5", "t5_decoder", "t5_cross"), encoder=True, own_head_dim=True,
           head_dim_key="d_kv", head_dim_default=64, scale_fixed=1.0, relative_bias=True,
           encoder_decoder=True, decoder_layers_key="num_decoder_layers", requires=_T5_ENCODER,
           reads="as T5"),
    Family("umt5", ("umt5", "umt5_decoder", "umt5_cross"), encoder=True, own_head_dim=True,
           head_dim_key="d_kv", head_dim_default=64, scale_fixed=1.0, relative_bias=True,
           encoder_decoder=True, decoder_layers_key="num_decoder_layers", requires=_T5_ENCODER,
           reads="as T5, with each self-attention layer's own relative position bias table"),
    Family("distilbert", ("distilbert",), encoder=True, qkv_bias=True, o_bias=True,
           reads="q_lin, k_lin, v_lin, out_lin; dim, n_heads, n_layers"),
    # Encoder-decoder: --attention encoder (default), decoder (causal) or cross.
    Family("whisper", ("encoder", "decoder", "cross"), encoder_decoder=True, qkv_bias=True,
           k_bias=False, o_bias=True,
           reads="--attention encoder | decoder (causal) | cross (queries from the decoder, "
                 "keys and values from the encoder); k_proj without bias (--no-key-bias); "
                 "queries x head_dim^-0.5 after q_proj, the same as scores / sqrt(d); "
                 "no padding mask in the encoder and cross-attention"),
    Family("bart", ("encoder", "decoder", "cross"), encoder_decoder=True, qkv_bias=True,
           o_bias=True,
           reads="--attention encoder | decoder (causal) | cross (queries from the decoder, "
                 "keys and values from the encoder), biases"),
)
# fmt: on

FAMILY = {family.name: family for family in TABLE}
FAMILIES = tuple(FAMILY)

# Families mha does not read, and why, where a word helps.
_STATE_SPACE = "a state-space model: it has no attention layer"
UNSUPPORTED = {"mamba": _STATE_SPACE, "mamba2": _STATE_SPACE, "rwkv": "it has no attention layer"}
UNSUPPORTED |= {
    "gemma3": "a multimodal config (text_config inside); give the text model's config "
    "(model_type gemma3_text)",
    "phi": "its packed dense layout and partial rotary are not rebuilt",
    "clip": "two towers in one config; give a tower's config (model_type clip_text_model or "
    "clip_vision_model)",
    "siglip": "two towers in one config; give a tower's config (model_type siglip_text_model "
    "or siglip_vision_model)",
    "gpt_neo": "unscaled scores and local layers are not rebuilt",
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
