"""One attention layer of a Hugging Face model, described from its `config.json` as plain data.

Pure Python (json only): `mha inspect --config config.json --device meta` needs the sizes of a
real model's attention without importing torch. The rules follow `transformers` 5 (its config
classes and modeling files), including its defaults for keys a config leaves out, and the places
older config files keep the same value (`rope_theta`, `rope_scaling`, `rotary_emb_base`,
`rotary_pct`). What the d2l layer cannot reproduce (rope scalings other than linear and llama3,
GPT-2's unusual score scalings, relative position scores) is refused with one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.files.json_values import REQUIRED, positive, read_json_file, whole
from mha_cli.hf.families import FAMILIES, FAMILY, UNSUPPORTED, Family, flag
from mha_cli.hf.positions import rope_settings, sliding_window
from mha_cli.messages import suggest
from mha_cli.spec.spec import ATTENTIONS

# Keys that one value has under different names (GPT-2 and GPT-J keep the old ones).
_HIDDEN = ("hidden_size", "n_embd", "dim", "d_model")  # DistilBERT: dim; MPT: d_model
_HEADS = ("num_attention_heads", "n_head", "n_heads", "num_heads")  # T5: num_heads
_LAYERS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")  # T5: num_layers


@dataclass(frozen=True)
class HFAttention:
    """The attention of layer `layer` of a Hugging Face model, in the terms mha uses."""

    family: str  # model_type, one of FAMILIES
    layer: int
    num_layers: int
    hiddens: int  # the model's hidden size: input of W_q, W_k, W_v and output of W_o
    heads: int
    kv_heads: int  # fewer than heads: grouped-query attention
    head_dim: int  # may differ from hiddens / heads (Qwen3): W_q has heads * head_dim outputs
    q_bias: bool
    k_bias: bool
    v_bias: bool
    o_bias: bool  # Qwen2: biases on q, k and v but not on o
    causal: bool
    rope: str  # "none" | "half" (pairs j, j + rd/2) | "interleaved" (pairs 2j, 2j + 1)
    rope_theta: float | None
    rotary_dim: int | None  # the first rotary_dim features of each head rotate, the rest pass
    rope_scaling: dict[str, Any] | None  # {"rope_type": "linear" | "llama3", ...} or None
    window: int | None  # sliding window W of this layer: key j seen iff i - W < j <= i
    qk_norm: bool  # per-head RMSNorm of queries and keys, after the head split, before rope
    qk_norm_whole: bool  # that norm over the whole projection, before the split (OLMo 2)
    qk_norm_layer: bool  # that norm a LayerNorm with (heads, head_dim) weights (StableLM, Cohere)
    norm_eps: float | None  # that norm's eps (rms_norm_eps; layer_norm_eps for a LayerNorm)
    scale: float | None  # the scores' factor (Granite's attention_multiplier); None: 1/sqrt(d)
    softcap: float | None  # logit soft-capping (Gemma 2's attn_logit_softcapping), or None
    clip_qkv: float | None  # OLMo's clamp of the projections, or None
    alibi: bool  # ALiBi position biases (Bloom)
    alibi_scaled: bool  # Falcon's ALiBi: in bfloat16, scaled with the scores
    packing: str | None  # how the packed projection is laid out (Falcon: by config); None: the
    # layout's
    relative_buckets: int | None  # T5's relative position bias: its buckets, or None
    relative_max_distance: int  # and the distance from which all share the last bucket
    dtype: str | None  # the dtype the config says the weights were saved in, for people
    # Of an encoder-decoder model (Whisper, BART; T5 when given): "encoder", "decoder" or
    # "cross"; else None.
    attention: str | None = None


def read_hf_config(path: Path, layer: int = 0, attention: str | None = None) -> HFAttention:
    """Layer `layer`'s attention as `path` (a Hugging Face config.json) describes it (of an
    encoder-decoder model, its `attention`: encoder, decoder or cross; encoder when None)."""
    path = Path(path)
    config = read_json_file(path, "give a config.json written by save_pretrained")
    if not isinstance(config, dict):
        raise MhaError(
            f"{path} holds a JSON {type(config).__name__}, not an object; give a config.json"
        )
    return parse_hf_config(config, layer, str(path), attention)


def parse_hf_config(
    config: Mapping[str, Any],
    layer: int = 0,
    where: str = "config.json",
    attention: str | None = None,
) -> HFAttention:
    """The same, from the config's parsed contents; `where` names it in messages."""
    family = config.get("model_type")
    if family not in FAMILY:
        found = f"model_type {family!r}" if family is not None else "no model_type"
        why = (
            f" ({UNSUPPORTED[family]})" if isinstance(family, str) and family in UNSUPPORTED else ""
        )
        raise MhaError(
            f"{where}: {found} is not supported{why}; supported families: {', '.join(FAMILIES)}; "
            "give the config.json of a model of one of those"
        )
    rules = FAMILY[family]
    attention = _which_attention(rules, attention, where)
    hiddens = whole(config, _HIDDEN, where)
    heads_keys: tuple[str, ...] = _HEADS
    layers_keys: tuple[str, ...] = _LAYERS
    stack = ""
    layers_default: Any = REQUIRED
    if attention is not None and rules.decoder_layers_key:  # T5: num_heads in both stacks
        stack = "encoder" if attention == "encoder" else "decoder"
        if stack == "decoder":  # T5Config: num_decoder_layers, num_layers when left out
            layers_default = whole(config, _LAYERS, where)
            layers_keys = (rules.decoder_layers_key,)
    elif attention is not None:  # Whisper, BART: the encoder's sizes, or the decoder's
        stack = "encoder" if attention == "encoder" else "decoder"
        heads_keys, layers_keys = (f"{stack}_attention_heads",), (f"{stack}_layers",)
    heads = whole(config, heads_keys, where)
    num_layers = whole(config, layers_keys, where, layers_default)
    if not 0 <= layer < num_layers:
        raise MhaError(
            f"--layer {layer} is beyond the model: {where} gives {num_layers} "
            f"{stack + ' ' if stack else ''}layers; pick a layer from 0 to {num_layers - 1}"
        )
    if rules.nested:  # MPT keeps its attention's settings in attn_config
        inner = config.get(rules.nested) or {}
        if not isinstance(inner, dict):
            raise MhaError(f"{where}: {rules.nested} should be an object; fix the config")
        config = {**config, **inner}
    _refuse_other_scores(config, rules, where)
    kv_heads = heads
    if rules.grouped:
        # null (as written by some tools) means one key-value head per query head, as the
        # config classes read it; a key left out takes the class's default.
        absent = "num_key_value_heads" not in config
        default = (rules.kv_heads_default or heads) if absent else heads
        kv_heads = whole(config, ("num_key_value_heads",), where, default)
    if rules.multi_query:
        kv_heads = 1
    packing = None
    if rules.packings or rules.packing_otherwise[0]:
        packing, kv_rule = next(
            ((name, kv) for key, default, name, kv in rules.packings if config.get(key, default)),
            rules.packing_otherwise,
        )
        if kv_rule == "config":  # FalconConfig: num_kv_heads, one per head when left out
            kv_heads = whole(config, (rules.kv_heads_key,), where, heads)
        else:
            kv_heads = 1 if kv_rule == "one" else heads
    head_dim = _head_dim(config, rules, hiddens, heads, where)
    if heads % kv_heads:
        raise MhaError(
            f"{where}: num_attention_heads ({heads}) is not a multiple of num_key_value_heads "
            f"({kv_heads}); fix the config"
        )
    q_bias, o_bias = flag(rules.qkv_bias, config), flag(rules.o_bias, config)
    alibi = flag(rules.alibi, config)
    rope = "none" if alibi else rules.rope  # Falcon with alibi: no rotation
    theta, rotary_dim, scaling = (None, None, None)
    if rope != "none":
        theta, rotary_dim, scaling = rope_settings(config, rules, head_dim, layer, where)
    qk_norm = flag(rules.qk_norm, config)
    eps_key, eps_default = ("layer_norm_eps", 1e-5) if rules.norm_layer else ("rms_norm_eps", 1e-6)
    eps = float(positive(config.get(eps_key, eps_default), eps_key, where)) if qk_norm else None
    causal = not rules.encoder or bool(config.get("is_decoder", False))
    if attention is not None:  # only the decoder's self-attention is causal
        causal = attention == "decoder"
    if alibi and rules.alibi_power_of_two and heads & (heads - 1):
        raise MhaError(
            f"{where}: {family} ALiBi with {heads} heads (not a power of 2) is not supported: its "
            "slopes are ordered differently from Bloom's, which mha builds; inspect a model with "
            "2, 4, 8, ... heads"
        )
    clip = config.get(rules.clip_key) if rules.clip_key else None
    clip = None if clip is None else float(positive(clip, str(rules.clip_key), where))
    scale = None
    if rules.scale_key is not None:
        key, fallback = rules.scale_key
        value = config.get(key, fallback)
        scale = None if value is None else float(positive(value, key, where))
        scale = scale**-0.5 if scale is not None and rules.scale_inverse_sqrt else scale
    if rules.scale_fixed is not None:  # T5: the scores are not scaled at all
        scale = float(rules.scale_fixed)
    buckets, distance = None, 128
    if rules.relative_bias and attention != "cross":  # T5's cross-attention has no bias
        # T5Config's defaults: 32 buckets, 128 positions
        buckets = whole(config, ("relative_attention_num_buckets",), where, 32)
        distance = whole(config, ("relative_attention_max_distance",), where, 128)
    softcap = None
    if rules.softcap_key is not None:
        key, fallback = rules.softcap_key
        value = config.get(key, fallback)
        softcap = None if value is None else float(positive(value, key, where))
    return HFAttention(
        family=family,
        layer=layer,
        num_layers=num_layers,
        hiddens=hiddens,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        q_bias=q_bias,
        k_bias=q_bias if rules.k_bias is None else rules.k_bias,
        v_bias=q_bias,
        o_bias=o_bias,
        causal=causal,
        rope=rope,
        rope_theta=theta,
        rotary_dim=rotary_dim,
        rope_scaling=scaling,
        window=sliding_window(config, rules, layer, num_layers, where),
        qk_norm=qk_norm,
        qk_norm_whole=rules.qk_norm_whole,
        qk_norm_layer=qk_norm and rules.norm_layer,
        norm_eps=eps,
        scale=scale,
        softcap=softcap,
        clip_qkv=clip,
        alibi=alibi,
        alibi_scaled=alibi and rules.alibi_scaled,
        packing=packing,
        relative_buckets=buckets,
        relative_max_distance=distance,
        dtype=config.get("dtype") or config.get("torch_dtype"),
        attention=attention,
    )


def _which_attention(family: Family, attention: str | None, where: str) -> str | None:
    """The attention `--attention` picks: of an encoder-decoder model, one of ATTENTIONS
    (encoder when not given); of any other model, None, and the option is refused."""
    if attention is not None and attention not in ATTENTIONS:
        raise MhaError(
            f"--attention {attention!r} is not one of {', '.join(ATTENTIONS)}"
            f"{suggest(attention, ATTENTIONS)}"
        )
    if family.encoder_decoder:  # T5: None (its encoder, read as before) when not given
        return attention if family.decoder_layers_key else attention or "encoder"
    if attention is not None:
        raise MhaError(
            f"--attention {attention}: {where} describes a {family.name} model, which has one "
            "kind of attention (--attention picks one of an encoder-decoder model's: Whisper, "
            "BART, T5, mT5, UMT5); drop --attention"
        )
    return None


def attention_from_weights(
    family: str,
    shapes: Mapping[str, tuple[int, ...]],
    heads: int | None,
    layer: int,
    num_layers: int,
) -> HFAttention:
    """The attention when there is no config.json: the family's defaults, sizes from the weights.

    `shapes` maps d2l names ("W_q.weight" (out, in), "W_q.bias", "q_norm.weight") to shapes.
    The heads cannot be read from the weights (a norm's size is checked against the head dim,
    never used to count heads); the rope base, rope scaling and sliding window are the family's
    defaults (none for a window), which the options given replace.
    """
    q_out, hiddens = shapes["W_q.weight"]
    if heads is None:
        raise MhaError(
            f"without a config.json the number of heads is unknown (W_q has {q_out} outputs); "
            "give --heads, or point at the model folder that holds config.json"
        )
    if heads < 1 or q_out % heads:
        raise MhaError(
            f"--heads {heads} does not divide the {q_out} outputs of W_q; give the right --heads"
        )
    head_dim = q_out // heads
    k_out = shapes["W_k.weight"][0]
    if k_out % head_dim:
        raise MhaError(
            f"--heads {heads} makes heads of {head_dim} features, which do not divide the "
            f"{k_out} outputs of W_k into whole key-value heads; give the right --heads"
        )
    config: dict[str, Any] = {
        "model_type": family,
        "hidden_size": hiddens,
        "num_attention_heads": heads,
        "num_key_value_heads": shapes["W_k.weight"][0] // head_dim,
        "head_dim": head_dim,
        "d_kv": head_dim,  # T5's name for it
        "num_hidden_layers": num_layers,
        "sliding_window": None,
        "rotary_dim": min(64, head_dim),  # GPT-J's default, where a head is that wide
    }
    try:
        attention = parse_hf_config(config, layer, f"the {family} weights (no config.json)")
    except MhaError as error:  # there is no config to fix: the options are the user's
        raise MhaError(str(error).replace("fix the config", "check the options")) from None
    present = {p: f"W_{p}.bias" in shapes for p in "qkvo"}
    return replace(
        attention,
        q_bias=present["q"],
        k_bias=present["k"],
        v_bias=present["v"],
        o_bias=present["o"],
    )


def spec_fields(attention: HFAttention) -> dict[str, Any]:
    """The attention as the specification's fields (every input is hiddens: self-attention, and
    cross-attention, whose decoder states and encoder output have the same width)."""
    if attention.q_bias != attention.v_bias:
        raise MhaError(
            f"{attention.family} layer {attention.layer} has a bias on one of W_q, W_v but not "
            "the other; the layer's bias flags (one for W_q, W_v; W_k's, W_o's) cannot build it"
        )
    return {
        "hiddens": attention.hiddens,
        "heads": attention.heads,
        "kv_heads": attention.kv_heads,
        "head_dim": attention.head_dim,
        "query_size": attention.hiddens,
        "key_size": attention.hiddens,
        "value_size": attention.hiddens,
        "bias": attention.q_bias,
        "out_bias": attention.o_bias,
        "key_bias": attention.k_bias,
        "causal": attention.causal,
        "rope": attention.rope,
        "rope_theta": attention.rope_theta,
        "rotary_dim": attention.rotary_dim,
        "rope_scaling": None if attention.rope_scaling is None else dict(attention.rope_scaling),
        "window": attention.window,
        "qk_norm": attention.qk_norm,
        "norm_eps": attention.norm_eps,
        "qk_norm_whole": attention.qk_norm_whole,
        "score_scale": attention.scale,
        "softcap": attention.softcap,
        "clip_qkv": attention.clip_qkv,
        "alibi": attention.alibi,
        "qk_norm_layer": attention.qk_norm_layer,
        "alibi_scaled": attention.alibi_scaled,
        "relative_buckets": attention.relative_buckets,
        "relative_max_distance": attention.relative_max_distance,
    } | ({} if attention.attention is None else {"attention": attention.attention})


# ---------------------------------------------------------------------------------------------
# Sizes and flags


def _head_dim(
    config: Mapping[str, Any], family: Family, hiddens: int, heads: int, where: str
) -> int:
    # Llama, Mistral and Qwen2 take head_dim when the config has one; Qwen3's default is 128.
    if family.own_head_dim:
        default = hiddens // heads
        if family.head_dim_default is not None and family.head_dim_key not in config:
            default = family.head_dim_default
        return whole(config, (family.head_dim_key,), where, default)
    if hiddens % heads:
        raise MhaError(
            f"{where}: the hidden size ({hiddens}) is not divisible by the heads ({heads}); "
            f"{family.name} needs head_dim = hidden size / heads; fix the config"
        )
    return hiddens // heads


def _refuse_other_scores(config: Mapping[str, Any], family: Family, where: str) -> None:
    """Scores other than q·kᵀ / sqrt(head_dim) plus a mask: the d2l layer cannot reproduce them."""
    fix = "mha scores q·kᵀ / sqrt(head_dim) as d2l does; inspect a model with the default"
    for requirement in family.requires:
        value = config.get(requirement.key, requirement.expected)
        if not requirement.holds(value):
            raise MhaError(f"{where}: " + requirement.message.format(value=value, fix=fix))
