"""Where each Hugging Face family keeps layer i's attention tensors, and how they become d2l's.

Pure Python up to the conversion itself (which receives tensors). Key names are those on disk:
transformers 5 still writes the legacy names by default (`save_original_format=True`), and ViT's
in-memory names (`layers.i.attention.q_proj`) appear on disk only when saved without it, so both
ViT namings are known. Whatever wraps the model (`model.`, `bert.`, `transformer.`, `gpt_neox.`,
`model.decoder.`, `vit.`, nothing) is found from the keys. Only the attention projections (and
Qwen3's per-head norms) are ever named here, so mask buffers (`attn.bias`, `attn.masked_bias`),
`rotary_emb.inv_freq`, LayerNorms and MLPs are never read.

d2l names: `W_q.weight` (out, in), `W_k.weight`, `W_v.weight`, `W_o.weight`, `W_q.bias`, ...
where present, and `q_norm.weight`, `k_norm.weight` (head_dim,).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mha_cli.errors import MhaError
from mha_cli.hf.families import FAMILIES, FAMILY, guess
from mha_cli.messages import listing
from mha_cli.spec.spec import ATTENTIONS

if TYPE_CHECKING:
    import torch

QKV = "qkv"  # the packed projection of GPT-2 and GPT-NeoX, split into W_q, W_k, W_v
D2L_ORDER = tuple(f"W_{p}.{kind}" for p in "qkvo" for kind in ("weight", "bias"))
D2L_ORDER += ("q_norm.weight", "k_norm.weight", "relative_bias.weight")


@dataclass(frozen=True)
class Layout:
    name: str
    stack: str  # the layers' container: key = prefix + stack + ".{i}." + member
    members: Mapping[str, str]  # d2l name (or "qkv.weight") -> member under the layer
    # "linear" (nn.Linear), "gpt2" (Conv1D, q|k|v), "neox" (per head), "phi3" (nn.Linear,
    # rows q (heads x d) | k (kv_heads x d) | v (kv_heads x d)), "grouped" (Falcon's new
    # decoder architecture: per key-value group, its query heads, then its key, then its value)
    packing: str = "linear"
    # Per-head norms kept one key per head (StableLM's q_layernorm.norms.{i}): q and k templates
    head_norms: tuple[str, ...] = ()
    # d2l name -> member read from layer 0 whatever the layer (T5's relative position bias
    # table, which every later layer shares)
    shared: Mapping[str, str] = field(default_factory=dict)

    @property
    def markers(self) -> tuple[str, str]:
        """The query (or packed) and output weights: every layer of the layout has both."""
        query = self.members.get("W_q.weight") or self.members[f"{QKV}.weight"]
        return query, self.members["W_o.weight"]


def _linear(
    name: str,
    stack: str,
    q: str,
    k: str,
    v: str,
    o: str,
    norms: str = "",
    per_head: str = "",
    bias_table: str = "",
) -> Layout:
    members: dict[str, str] = {}
    for d2l, member in (("W_q", q), ("W_k", k), ("W_v", v), ("W_o", o)):
        members |= {f"{d2l}.weight": f"{member}.weight", f"{d2l}.bias": f"{member}.bias"}
    if norms:
        members |= {
            "q_norm.weight": f"{norms}.q_norm.weight",
            "k_norm.weight": f"{norms}.k_norm.weight",
        }
    head_norms: tuple[str, ...] = ()
    if per_head:
        head_norms = (
            f"{per_head}.q_layernorm.norms.{{i}}.weight",
            f"{per_head}.k_layernorm.norms.{{i}}.weight",
        )
    if bias_table:  # UMT5: every layer's own relative position bias table
        members["relative_bias.weight"] = bias_table
    return Layout(name, stack, members, head_norms=head_norms)


def _packed(name: str, stack: str, qkv: str, o: str, packing: str) -> Layout:
    members = {f"{QKV}.weight": f"{qkv}.weight", f"{QKV}.bias": f"{qkv}.bias"}
    members |= {"W_o.weight": f"{o}.weight", "W_o.bias": f"{o}.bias"}
    return Layout(name, stack, members, packing)


_SELF = "attention.self"  # BERT's, with query, key, value under it
_VIT = "attention.attention"  # ViT's (legacy names)
_T5 = "layer.0.SelfAttention"  # T5's self-attention in an encoder block
_T5_CROSS = "layer.1.EncDecAttention"  # its cross-attention in a decoder block
LAYOUTS = {
    "bert": _linear(
        "bert", "encoder.layer", f"{_SELF}.query", f"{_SELF}.key", f"{_SELF}.value",
        "attention.output.dense",
    ),
    "vit": _linear(
        "vit", "encoder.layer", f"{_VIT}.query", f"{_VIT}.key", f"{_VIT}.value",
        "attention.output.dense",
    ),
    "vit5": _linear(
        "vit (transformers 5 names)", "layers", "attention.q_proj", "attention.k_proj",
        "attention.v_proj", "attention.o_proj",
    ),
    "gpt2": _packed("gpt2", "h", "attn.c_attn", "attn.c_proj", "gpt2"),
    "opt": _linear(
        "opt", "decoder.layers", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
        "self_attn.out_proj",
    ),
    "llama": _linear(
        "llama", "layers", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
        "self_attn.o_proj", norms="self_attn", per_head="self_attn",
    ),
    "gpt_neox": _packed(
        "gpt_neox", "layers", "attention.query_key_value", "attention.dense", "neox"
    ),
    "gptj": _linear(
        "gptj", "h", "attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj"
    ),
    "phi3": _packed("phi3", "layers", "self_attn.qkv_proj", "self_attn.o_proj", "phi3"),
    # GPTBigCode's c_attn has GPT-2's key names but is an nn.Linear packing q | k | v as Phi-3's
    # qkv_proj does (multi-query: h x d | d | d): only its config.json picks this layout.
    "gpt_bigcode": _packed("gpt_bigcode", "h", "attn.c_attn", "attn.c_proj", "phi3"),
    "bloom": _packed(
        "bloom", "h", "self_attention.query_key_value", "self_attention.dense", "neox"
    ),
    "mpt": _packed("mpt", "blocks", "attn.Wqkv", "attn.out_proj", "phi3"),  # q | k | v blocks
    "falcon": _packed(  # multi-query: q (h x d) | k (d) | v (d); its config may say otherwise
        "falcon", "h", "self_attention.query_key_value", "self_attention.dense", "phi3"
    ),
    "clip": _linear(
        "clip", "encoder.layers", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
        "self_attn.out_proj",
    ),
    # T5 and mT5: the encoder's self-attention, no biases; layer 0's relative_attention_bias
    # (buckets, heads) serves every layer. UMT5: each layer has its own.
    "t5": replace(
        _linear(
            "t5", "encoder.block", f"{_T5}.q", f"{_T5}.k", f"{_T5}.v", f"{_T5}.o"
        ),
        shared={"relative_bias.weight": f"{_T5}.relative_attention_bias.weight"},
    ),
    "umt5": _linear(
        "umt5", "encoder.block", f"{_T5}.q", f"{_T5}.k", f"{_T5}.v", f"{_T5}.o",
        bias_table=f"{_T5}.relative_attention_bias.weight",
    ),
    # Their decoders (--attention decoder: causal, the table of the decoder's layer 0, or each
    # layer's own in UMT5) and cross-attention (no relative position bias).
    "t5_decoder": replace(
        _linear(
            "t5 decoder self-attention", "decoder.block", f"{_T5}.q", f"{_T5}.k", f"{_T5}.v",
            f"{_T5}.o",
        ),
        shared={"relative_bias.weight": f"{_T5}.relative_attention_bias.weight"},
    ),
    "umt5_decoder": _linear(
        "umt5 decoder self-attention", "decoder.block", f"{_T5}.q", f"{_T5}.k", f"{_T5}.v",
        f"{_T5}.o", bias_table=f"{_T5}.relative_attention_bias.weight",
    ),
    "t5_cross": _linear(
        "t5 cross-attention", "decoder.block", f"{_T5_CROSS}.q", f"{_T5_CROSS}.k",
        f"{_T5_CROSS}.v", f"{_T5_CROSS}.o",
    ),
    "umt5_cross": _linear(
        "umt5 cross-attention", "decoder.block", f"{_T5_CROSS}.q", f"{_T5_CROSS}.k",
        f"{_T5_CROSS}.v", f"{_T5_CROSS}.o",
    ),
    "distilbert": _linear(
        "distilbert", "transformer.layer", "attention.q_lin", "attention.k_lin",
        "attention.v_lin", "attention.out_lin",
    ),
    # Encoder-decoder models (Whisper, BART), one layout per attention (spec.ATTENTIONS): only
    # their config.json picks these (the decoder's keys are OPT's, the encoder's CLIP's).
    "encoder": _linear(
        "encoder self-attention", "encoder.layers", "self_attn.q_proj", "self_attn.k_proj",
        "self_attn.v_proj", "self_attn.out_proj",
    ),
    "decoder": _linear(
        "decoder self-attention", "decoder.layers", "self_attn.q_proj", "self_attn.k_proj",
        "self_attn.v_proj", "self_attn.out_proj",
    ),
    "cross": _linear(
        "cross-attention", "decoder.layers", "encoder_attn.q_proj", "encoder_attn.k_proj",
        "encoder_attn.v_proj", "encoder_attn.out_proj",
    ),
}  # fmt: skip
# Reached only through an encoder-decoder family's config.json, never by their keys alone.
_CONFIG_ONLY: tuple[str, ...] = ("encoder", "decoder", "cross")
_CONFIG_ONLY += ("t5_decoder", "umt5_decoder", "t5_cross", "umt5_cross")
_SHOWN = 6


@dataclass(frozen=True)
class Located:
    """A layout found in a checkpoint's keys."""

    layout: Layout
    prefix: str  # "model.", "transformer.", "" ...
    indices: frozenset[int]  # the layer numbers the keys name (from the keys present only)
    where: str  # the weights' path, for messages

    @property
    def num_layers(self) -> int:
        """How many layers there are: the keys must name layers 0..n-1, every one of them."""
        count = len(self.indices)
        if max(self.indices) != count - 1:
            gap = next(i for i in range(count + 1) if i not in self.indices)
            shown = ", ".join(str(i) for i in sorted(self.indices)[:_SHOWN])
            more = f", ... ({count} in all)" if count > _SHOWN else ""
            raise MhaError(
                f"{self.where} names attention layers {shown}{more} of a {self.layout.name} "
                f"model but not layer {gap}; the file is incomplete or its keys were renamed: "
                "download or save it again"
            )
        return count

    def layer_keys(self, layer: int) -> dict[str, str]:
        """d2l name -> the file's key, for the members layer `layer` is expected to have."""
        head = f"{self.prefix}{self.layout.stack}.{layer}."
        first = f"{self.prefix}{self.layout.stack}.0."
        keys = {name: head + member for name, member in self.layout.members.items()}
        return keys | {name: first + member for name, member in self.layout.shared.items()}

    def head_norm_keys(self, layer: int) -> tuple[str, str]:
        """The templates (`{i}`: the head) of layer `layer`'s per-head q and k norm keys, or ()."""
        head = f"{self.prefix}{self.layout.stack}.{layer}."
        return tuple(head + t for t in self.layout.head_norms)  # type: ignore[return-value]

    def describe(self) -> str:
        """For people: "llama: model.layers.N.self_attn.q_proj.weight, ..."."""
        query, out = self.layout.markers
        head = f"{self.prefix}{self.layout.stack}.N."
        return f"{self.layout.name}: {head}{query}, {head}{out}, ..."

    def guess_family(self, keys: Iterable[str], layer: int) -> str:
        """The family when there is no config: Qwen3 and Qwen2 show in their keys (Mistral has
        Llama's; its window lives in config.json only)."""
        present = set(keys)
        wanted = self.layer_keys(layer)
        name = next(key for key, layout in LAYOUTS.items() if layout is self.layout)
        return guess(name, lambda d2l: wanted.get(d2l) in present)


# Families mha does not read, recognised by their key names so that a message can name them.
# (pattern on a key, the family, what is not supported)
_OTHERS = (
    (r"(^|\.)layers\.\d+\.mixer\.(A_log|in_proj\.weight)", "Mamba",
     "a state-space model: it has no attention layer to inspect"),
    (r"(^|\.)h\.\d+\.attn\.attention\.(q_proj|out_proj)\.", "GPT-Neo",
     "its attention (unscaled scores, local layers) is not supported"),
    (r"(^|\.)blocks\.\d+\.attn\.Wqkv\.", "MPT",
     "its ALiBi, scale and clamp are in its config.json: give --config config.json"),
    (r"(^|\.)encoder\.conv1\.weight$", "Whisper",
     "without its config.json the heads of its encoder and decoder are unknown: give --config "
     "config.json (the model's own, model_type whisper) and --attention encoder, decoder or "
     "cross"),
    (r"(^|\.)encoder\.layers\.\d+\.layer_norm1\.", "CLIP (or SigLIP)",
     "mha reads its towers with their config.json, which says whether the tower is causal: "
     "give --config config.json (model_type clip_text_model, clip_vision_model, "
     "siglip_text_model or siglip_vision_model)"),
    (r"(^|\.)layers\.\d+\.encoder_attn\.", "encoder-decoder (BART, mBART, Marian, ...)",
     "without its config.json the family and the heads of its encoder and decoder are unknown: "
     "give --config config.json (the model's own; mha reads model_type bart and whisper) and "
     "--attention encoder, decoder or cross"),
    (r"(^|\.)block\.\d+\.layer\.0\.SelfAttention\.", "T5 (or mT5, UMT5)",
     "its relative position bias settings (buckets, maximum distance) are in its config.json: "
     "give --config config.json (T5, mT5 and UMT5 encoders are read with it)"),
    (r"(^|\.)h\.\d+\.self_attention\.query_key_value\.", "Falcon or BLOOM",
     "its packing and position biases are in its config.json: give --config config.json "
     "(BLOOM and Falcon are read with it)"),
    (r"(^|\.)layers\.\d+\.self_attn\.dense\.", "Phi", "its attention is not supported"),
)  # fmt: skip


def other_family(keys: Iterable[str]) -> tuple[str, str, str] | None:
    """(family, a key that shows it, what is not supported) for a family mha does not read."""
    keys = list(keys)
    for pattern, family, why in _OTHERS:
        compiled = re.compile(pattern)
        key = next((key for key in keys if compiled.search(key)), None)
        if key is not None:
            return family, key, why
    return None


def find_layout(keys: Iterable[str]) -> str | None:
    """The name of the supported layout the keys have, if any (nothing raised)."""
    keys = list(keys)
    names = (name for name in LAYOUTS if name not in _CONFIG_ONLY)
    return next((name for name in names if _scan(LAYOUTS[name], keys)), None)


def locate(
    keys: Iterable[str], family: str | None, where: str, attention: str | None = None
) -> Located:
    """The layout of the checkpoint whose keys are `keys` (the config's family's, if given;
    of an encoder-decoder family, the layout of its `attention`, "encoder" by default)."""
    keys = list(keys)
    other = None if family else other_family(keys)
    if other is not None:  # BART's and Whisper's decoders have OPT's key names
        raise MhaError(_other_message(where, *other))
    names = FAMILY[family].layouts if family else tuple(n for n in LAYOUTS if n not in _CONFIG_ONLY)
    if family and FAMILY[family].encoder_decoder:
        names = (FAMILY[family].layouts[ATTENTIONS.index(attention or "encoder")],)
    for name in names:
        found = _scan(LAYOUTS[name], keys)
        if len(found) > 1:
            shown = ", ".join(repr(p) for p in sorted(found))
            raise MhaError(
                f"{where} holds several {LAYOUTS[name].name} models (key prefixes {shown}); "
                "save one model's weights per file"
            )
        if found:
            prefix, layers = next(iter(found.items()))
            return Located(LAYOUTS[name], prefix, frozenset(layers), where)
    found_keys = listing(keys, _SHOWN)
    if family:
        alike = next((n for n in LAYOUTS if _scan(LAYOUTS[n], keys)), None)
        seen = f"they look like {LAYOUTS[alike].name}" if alike else f"found {found_keys}"
        raise MhaError(
            f"config.json says {family}, but {where} holds no {family} attention keys "
            f"({_example(LAYOUTS[names[0]])}); {seen}; use the config.json saved with these weights"
        )
    raise MhaError(
        f"{where}: no attention layer of a known layout; found keys {found_keys}; give "
        f"a Hugging Face model of a supported family ({', '.join(FAMILIES)}) or one "
        "attention layer's state_dict (d2l's MultiHeadAttention, torch.nn.MultiheadAttention)"
    )


def _other_message(where: str, family: str, key: str, why: str) -> str:
    return (
        f"{where} looks like a model of the {family} family (key {key}): {why}; mha reads "
        f"these families: {', '.join(FAMILIES)}"
    )


def _scan(layout: Layout, keys: list[str]) -> dict[str, set[int]]:
    """prefix -> the layer indices that hold either marker, for the prefixes where some layer
    holds both (a layer that lacks one is then named by what it lacks)."""
    stack = re.escape(layout.stack)
    found: dict[str, dict[str, set[int]]] = {}
    for marker in layout.markers:
        pattern = re.compile(rf"^((?:.+\.)?){stack}\.(\d+)\.{re.escape(marker)}$")
        for key in keys:
            match = pattern.match(key)
            if match:
                # an absurd index (thousands of digits) counts as far beyond any model
                index = int(match[2]) if len(match[2]) <= 18 else 10**18
                found.setdefault(match[1], {}).setdefault(marker, set()).add(index)
    return {
        prefix: m.get(layout.markers[0], set()) | m.get(layout.markers[1], set())
        for prefix, m in found.items()
        if m.get(layout.markers[0], set()) & m.get(layout.markers[1], set())
    }


def _example(layout: Layout) -> str:
    return f"{layout.stack}.N.{layout.markers[0]}"


# ---------------------------------------------------------------------------------------------
# Conversion to d2l's names


def to_d2l(
    layout: Layout,
    tensors: Mapping[str, torch.Tensor],  # d2l (or "qkv.*") name -> tensor as stored
    keys: Mapping[str, str],  # the same names -> the file's key, for `origin`
    heads: int | None,
    head_dim: int | None = None,
    packing: str | None = None,
    kv_heads: int | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(d2l-named tensors, and for each the file key and part it came from). `head_dim` (the
    config's; else hidden size / heads) places Phi-3's query rows; `packing` (the config's,
    Falcon's) replaces the layout's, and `kv_heads` sizes its groups."""
    state = {name: t for name, t in tensors.items() if not name.startswith(QKV)}
    origin = {name: keys[name] for name in state}
    packing = packing or layout.packing
    if packing == "gpt2":
        _split_gpt2(tensors, keys, state, origin)
    elif packing == "neox":
        _split_neox(tensors, keys, heads, state, origin)
    elif packing == "phi3":
        _split_phi3(tensors, keys, heads, head_dim, state, origin)
    elif packing == "grouped":
        _split_grouped(tensors, keys, heads, kv_heads, state, origin)
    order = {name: i for i, name in enumerate(D2L_ORDER)}
    names = sorted(state, key=lambda name: order.get(name, len(order)))
    return {n: state[n] for n in names}, {n: origin[n] for n in names}


Tensors = Mapping[str, "torch.Tensor"]


def _split_gpt2(
    tensors: Tensors, keys: Mapping[str, str], state: dict, origin: dict[str, str]
) -> None:
    # Conv1D stores (in, out): c_attn (H, 3H) holds q | k | v as column blocks, c_proj (H, H).
    weight, key = tensors[f"{QKV}.weight"], keys[f"{QKV}.weight"]  # (H, 3H)
    hiddens = weight.shape[0]
    if weight.dim() != 2 or weight.shape[1] != 3 * hiddens:
        raise MhaError(
            f"{key} has shape {tuple(weight.shape)}, expected ({hiddens}, {3 * hiddens})"
        )
    bias = _packed_bias(tensors, keys, 3 * hiddens)
    for i, p in enumerate("qkv"):
        part = slice(i * hiddens, (i + 1) * hiddens)
        state[f"W_{p}.weight"] = weight[:, part].t().contiguous()  # (H, H) as (out, in)
        origin[f"W_{p}.weight"] = f"{key}[:, {part.start}:{part.stop}]ᵀ"
        if bias is not None:
            state[f"W_{p}.bias"] = bias[part].contiguous()  # (H,)
            origin[f"W_{p}.bias"] = f"{keys[f'{QKV}.bias']}[{part.start}:{part.stop}]"
    state["W_o.weight"] = tensors["W_o.weight"].t().contiguous()  # (H, H) as (out, in)
    origin["W_o.weight"] = f"{keys['W_o.weight']}ᵀ"


def _split_neox(
    tensors: Tensors, keys: Mapping[str, str], heads: int | None, state: dict, origin: dict
) -> None:
    # query_key_value (3H, H) packs per head: rows of head j are q_j | k_j | v_j, each d long.
    if heads is None:
        raise MhaError(
            "GPT-NeoX packs queries, keys and values per head: give --heads (or the config.json)"
        )
    weight, key = tensors[f"{QKV}.weight"], keys[f"{QKV}.weight"]  # (3H, H)
    rows, hiddens = weight.shape
    if rows % (3 * heads):
        raise MhaError(
            f"{key} has {rows} rows, not a multiple of 3 x {heads} heads; give the number of "
            "heads the model was trained with"
        )
    head_dim = rows // (3 * heads)
    packed = weight.view(heads, 3, head_dim, hiddens)  # (h, 3, d, H)
    bias = _packed_bias(tensors, keys, rows)
    packed_bias = None if bias is None else bias.view(heads, 3, head_dim)  # (h, 3, d)
    for i, p in enumerate("qkv"):
        state[f"W_{p}.weight"] = packed[:, i].reshape(heads * head_dim, hiddens)  # (h d, H)
        origin[f"W_{p}.weight"] = f"{key} viewed (h, 3, d, H)[:, {i}]"
        if packed_bias is not None:
            state[f"W_{p}.bias"] = packed_bias[:, i].reshape(heads * head_dim)  # (h d,)
            origin[f"W_{p}.bias"] = f"{keys[f'{QKV}.bias']} viewed (h, 3, d)[:, {i}]"


def _split_phi3(
    tensors: Tensors,
    keys: Mapping[str, str],
    heads: int | None,
    head_dim: int | None,
    state: dict,
    origin: dict,
) -> None:
    # Phi3Attention.forward: qkv_proj's outputs are q (heads x d) | k (kv x d) | v (kv x d).
    if heads is None:
        raise MhaError(
            "Phi-3 packs queries, keys and values in one qkv_proj: give --heads (or the "
            "config.json)"
        )
    weight, key = tensors[f"{QKV}.weight"], keys[f"{QKV}.weight"]  # (rows, H)
    rows, hiddens = weight.shape
    d = head_dim if head_dim is not None else hiddens // heads
    q_rows = heads * d
    kv_rows = (rows - q_rows) // 2
    if d < 1 or kv_rows < 1 or rows != q_rows + 2 * kv_rows or kv_rows % d:
        raise MhaError(
            f"{key} has {rows} rows: not {heads} heads x {d} query rows and two equal blocks of "
            "whole key-value heads; give the number of heads the model was trained with"
        )
    bounds = {"q": (0, q_rows), "k": (q_rows, q_rows + kv_rows), "v": (q_rows + kv_rows, rows)}
    bias = _packed_bias(tensors, keys, rows)
    for p, (start, stop) in bounds.items():
        state[f"W_{p}.weight"] = weight[start:stop].contiguous()
        origin[f"W_{p}.weight"] = f"{key}[{start}:{stop}]"
        if bias is not None:
            state[f"W_{p}.bias"] = bias[start:stop].contiguous()
            origin[f"W_{p}.bias"] = f"{keys[f'{QKV}.bias']}[{start}:{stop}]"


def _split_grouped(
    tensors: Tensors,
    keys: Mapping[str, str],
    heads: int | None,
    kv_heads: int | None,
    state: dict,
    origin: dict,
) -> None:
    # FalconAttention.forward (new_decoder_architecture): rows viewed (g, h/g + 2, d, H): each
    # key-value group's h/g query heads, then its key head, then its value head.
    weight, key = tensors[f"{QKV}.weight"], keys[f"{QKV}.weight"]  # (rows, H)
    rows, hiddens = weight.shape
    if heads is None or kv_heads is None or heads % kv_heads:  # the config says both
        raise MhaError(f"{key}: packed per key-value group: give the model's config.json")
    per_group = heads // kv_heads + 2
    if rows % (kv_heads * per_group):
        raise MhaError(
            f"{key} has {rows} rows, not {kv_heads} key-value groups of {per_group} heads "
            "(their queries, a key, a value); use the config.json saved with these weights"
        )
    d = rows // (kv_heads * per_group)
    packed = weight.view(kv_heads, per_group, d, hiddens)  # (g, r + 2, d, H)
    bias = _packed_bias(tensors, keys, rows)
    packed_bias = None if bias is None else bias.view(kv_heads, per_group, d)  # (g, r + 2, d)
    parts: dict[str, slice | int] = {
        "q": slice(0, per_group - 2),
        "k": per_group - 2,
        "v": per_group - 1,
    }
    shown = {"q": f":{per_group - 2}", "k": str(per_group - 2), "v": str(per_group - 1)}
    for p, part in parts.items():
        state[f"W_{p}.weight"] = packed[:, part].reshape(-1, hiddens).contiguous()
        origin[f"W_{p}.weight"] = f"{key} viewed (g, h/g + 2, d, H)[:, {shown[p]}]"
        if packed_bias is not None:
            state[f"W_{p}.bias"] = packed_bias[:, part].reshape(-1).contiguous()
            origin[f"W_{p}.bias"] = f"{keys[f'{QKV}.bias']} viewed (g, h/g + 2, d)[:, {shown[p]}]"


def _packed_bias(tensors: Tensors, keys: Mapping[str, str], length: int) -> torch.Tensor | None:
    bias = tensors.get(f"{QKV}.bias")
    if bias is not None and tuple(bias.shape) != (length,):
        raise MhaError(
            f"{keys[f'{QKV}.bias']} has shape {tuple(bias.shape)}, expected ({length},) as its "
            "packed weight; the tensors must come from one layer"
        )
    return bias
