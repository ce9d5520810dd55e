"""Tiny Hugging Face models of the families added after the first eleven (issue 19), saved with
save_pretrained, the way tests/hf_models.py builds those: 2-3 layers, grouped-query attention,
biases and windows where the family has them, every parameter redrawn from a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hf_models import _redraw
from torch import nn

VISION = ("dinov2", "clip_vision_model", "siglip_vision_model")  # run on pixels, no padding
# An encoder and a decoder: three attentions per layer number (mha's --attention), run with
# tests/test_hf_families.py's encoder_decoder_run rather than with input_ids alone.
ENCODER_DECODER = ("whisper", "bart")
# T5's three as whole encoder-decoder models (ForConditionalGeneration), beside their encoders
# above: 2 encoder layers, 3 decoder layers (num_decoder_layers), the same heads in both.
T5_SEQ2SEQ = ("t5", "mt5", "umt5")
# Tiny models of a family with the config switches its first model leaves off: their model_type.
VARIANTS = {
    "falcon_new": "falcon",
    "falcon_alibi": "falcon",
    "stablelm_qk_layernorm": "stablelm",
    "cohere_qk_norm": "cohere",
}


@dataclass(frozen=True)
class FamilyModel:
    family: str
    folder: Path
    model: nn.Module
    config: Any

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    def attention(self, layer: int, kind: str = "encoder") -> nn.Module:
        if self.family in ENCODER_DECODER:
            stack = self.model.model.encoder if kind == "encoder" else self.model.model.decoder
            block = stack.layers[layer]
            return block.encoder_attn if kind == "cross" else block.self_attn
        return _ATTENTION[self.family](self.model, layer)

    def layers_of(self, kind: str) -> int:
        """Layers of the stack an encoder-decoder model's `kind` of attention is in."""
        if kind == "encoder":
            return int(self.config.encoder_layers)
        return int(self.config.decoder_layers)


@dataclass(frozen=True)
class Seq2SeqT5(FamilyModel):
    """A T5ForConditionalGeneration (or mT5's, UMT5's): attentions by stack and kind."""

    def attention(self, layer: int, kind: str = "encoder") -> nn.Module:
        stack = self.model.encoder if kind == "encoder" else self.model.decoder
        block = stack.block[layer]
        return block.layer[1].EncDecAttention if kind == "cross" else block.layer[0].SelfAttention

    def layers_of(self, kind: str) -> int:
        if kind == "encoder":
            return int(self.config.num_layers)
        return int(self.config.num_decoder_layers)

    def bias_table(self, layer: int, kind: str) -> nn.Module:
        """The relative position bias table layer `layer`'s self-attention adds (T5, mT5:
        layer 0's of its stack; UMT5: its own)."""
        return self.attention(0 if self.family != "umt5" else layer, kind).relative_attention_bias


def build_t5_seq2seq(root: Path, seed: int = 300) -> dict[str, Seq2SeqT5]:
    """T5, mT5 and UMT5 whole models, saved under root/<family>."""
    import transformers as t

    sizes = {"d_model": 32, "d_kv": 12, "num_heads": 4, "num_layers": 2, "d_ff": 64}
    sizes |= {"num_decoder_layers": 3, "vocab_size": 64, "relative_attention_num_buckets": 8}
    sizes |= {"relative_attention_max_distance": 5}
    classes = {
        "t5": (t.T5Config, t.T5ForConditionalGeneration),
        "mt5": (t.MT5Config, t.MT5ForConditionalGeneration),
        "umt5": (t.UMT5Config, t.UMT5ForConditionalGeneration),
    }
    models = {}
    for offset, (family, (config_class, model_class)) in enumerate(classes.items()):
        config = config_class(**sizes)
        config._attn_implementation = "eager"
        torch.manual_seed(seed + offset)
        model = model_class(config).eval()
        _redraw(model, seed + offset)
        folder = root / family
        model.save_pretrained(folder)
        models[family] = Seq2SeqT5(family, folder, model, config)
    return models


_ATTENTION = {
    "mixtral": lambda m, i: m.model.layers[i].self_attn,
    "qwen2_moe": lambda m, i: m.model.layers[i].self_attn,
    "qwen3_moe": lambda m, i: m.model.layers[i].self_attn,
    "gemma": lambda m, i: m.model.layers[i].self_attn,
    "starcoder2": lambda m, i: m.model.layers[i].self_attn,
    "stablelm": lambda m, i: m.model.layers[i].self_attn,
    "phi3": lambda m, i: m.model.layers[i].self_attn,
    "cohere": lambda m, i: m.model.layers[i].self_attn,
    "olmo": lambda m, i: m.model.layers[i].self_attn,
    "granite": lambda m, i: m.model.layers[i].self_attn,
    "gemma2": lambda m, i: m.model.layers[i].self_attn,
    "gemma3_text": lambda m, i: m.model.layers[i].self_attn,
    "olmo2": lambda m, i: m.model.layers[i].self_attn,
    "electra": lambda m, i: m.encoder.layer[i].attention,
    "xlm-roberta": lambda m, i: m.encoder.layer[i].attention,
    "camembert": lambda m, i: m.encoder.layer[i].attention,
    "dinov2": lambda m, i: m.encoder.layer[i].attention,
    "distilbert": lambda m, i: m.transformer.layer[i].attention,
    "llama_yarn": lambda m, i: m.model.layers[i].self_attn,
    "llama_dynamic": lambda m, i: m.model.layers[i].self_attn,
    "gpt_bigcode": lambda m, i: m.transformer.h[i].attn,
    "bloom": lambda m, i: m.transformer.h[i].self_attention,
    "mpt": lambda m, i: m.transformer.blocks[i].attn,
    "falcon": lambda m, i: m.transformer.h[i].self_attention,
    "falcon_new": lambda m, i: m.transformer.h[i].self_attention,
    "falcon_alibi": lambda m, i: m.transformer.h[i].self_attention,
    "stablelm_qk_layernorm": lambda m, i: m.model.layers[i].self_attn,
    "cohere_qk_norm": lambda m, i: m.model.layers[i].self_attn,
    "clip_text_model": lambda m, i: getattr(m, "text_model", m).encoder.layers[i].self_attn,
    "clip_vision_model": lambda m, i: getattr(m, "vision_model", m).encoder.layers[i].self_attn,
    "siglip_text_model": lambda m, i: getattr(m, "text_model", m).encoder.layers[i].self_attn,
    "siglip_vision_model": lambda m, i: getattr(m, "vision_model", m).encoder.layers[i].self_attn,
    "whisper": lambda m, i: m.model.encoder.layers[i].self_attn,
    "bart": lambda m, i: m.model.encoder.layers[i].self_attn,
    "t5": lambda m, i: m.encoder.block[i].layer[0].SelfAttention,
    "mt5": lambda m, i: m.encoder.block[i].layer[0].SelfAttention,
    "umt5": lambda m, i: m.encoder.block[i].layer[0].SelfAttention,
}


def _configs() -> dict[str, tuple[Any, Any]]:
    import transformers as t

    small = {"vocab_size": 64, "intermediate_size": 64, "max_position_embeddings": 64}
    gqa = {"num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 32, **small}
    encoder = {"hidden_size": 32, "num_attention_heads": 4, **small}
    half_rotary = {"rope_type": "default", "rope_theta": 5000.0, "partial_rotary_factor": 0.5}
    tower = {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}
    text = {"vocab_size": 64, "max_position_embeddings": 64, "pad_token_id": 0}
    text |= {"bos_token_id": 1, "eos_token_id": 2}
    yarn = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}
    yarn |= {"original_max_position_embeddings": 16, "beta_fast": 8.0, "beta_slow": 1.0}
    dynamic = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}
    # 3 encoder layers of 4 heads, 2 decoder layers of 2 heads: each read from its own keys
    seq2seq = {"d_model": 32, "encoder_layers": 3, "decoder_layers": 2, "vocab_size": 64}
    seq2seq |= {"encoder_attention_heads": 4, "decoder_attention_heads": 2}
    seq2seq |= {"encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "pad_token_id": 0}
    seq2seq |= {"bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1}
    # T5: d_kv 12 (not 32 / 4), 8 buckets up to distance 5, so 6 tokens reach the log buckets
    t5 = {"d_model": 32, "d_kv": 12, "num_heads": 4, "num_layers": 3, "d_ff": 64}
    t5 |= {"vocab_size": 64, "relative_attention_num_buckets": 8}
    t5 |= {"relative_attention_max_distance": 5}
    experts = {"num_experts": 2, "num_experts_per_tok": 1, "moe_intermediate_size": 16}
    return {
        "mixtral": (
            t.MixtralConfig(
                num_hidden_layers=2, sliding_window=3, num_local_experts=2,
                num_experts_per_tok=1, **gqa,
            ),
            t.MixtralForCausalLM,
        ),
        "qwen2_moe": (
            # layer_types by default: layer 0 slides (even, below max_window_layers), 1 and 2 not
            t.Qwen2MoeConfig(
                num_hidden_layers=3, use_sliding_window=True, sliding_window=3,
                max_window_layers=2, shared_expert_intermediate_size=16, **experts, **gqa,
            ),
            t.Qwen2MoeForCausalLM,
        ),
        "qwen3_moe": (
            t.Qwen3MoeConfig(
                num_hidden_layers=2, head_dim=12, use_sliding_window=True, sliding_window=3,
                **experts, **gqa,
            ),
            t.Qwen3MoeForCausalLM,
        ),
        "gemma": (t.GemmaConfig(num_hidden_layers=2, head_dim=12, **gqa), t.GemmaForCausalLM),
        "starcoder2": (
            t.Starcoder2Config(num_hidden_layers=2, sliding_window=3, **gqa),
            t.Starcoder2ForCausalLM,
        ),
        "stablelm": (  # rotary on the first quarter of each head, biases on q, k, v
            t.StableLmConfig(num_hidden_layers=2, use_qkv_bias=True, **gqa),
            t.StableLmForCausalLM,
        ),
        "phi3": (  # qkv_proj packs 4 query heads and 2 key-value heads; half of each head turns
            t.Phi3Config(
                num_hidden_layers=2, sliding_window=3, pad_token_id=0, bos_token_id=1,
                eos_token_id=2, rope_parameters=half_rotary, **gqa,
            ),
            t.Phi3ForCausalLM,
        ),
        "cohere": (
            t.CohereConfig(
                num_hidden_layers=2, attention_bias=True, pad_token_id=0, bos_token_id=1,
                eos_token_id=2, **gqa,
            ),
            t.CohereForCausalLM,
        ),
        "olmo": (
            t.OlmoConfig(
                num_hidden_layers=2, clip_qkv=1.0, pad_token_id=0, bos_token_id=1,
                eos_token_id=2, **gqa,
            ),
            t.OlmoForCausalLM,
        ),
        "granite": (  # scores times 0.3, not 1/sqrt(8)
            t.GraniteConfig(
                num_hidden_layers=2, attention_multiplier=0.3, attention_bias=True,
                pad_token_id=0, bos_token_id=1, eos_token_id=2, **gqa,
            ),
            t.GraniteForCausalLM,
        ),
        "gemma2": (  # capped at 5 (scores reach ~30), scale 1/sqrt(10), window on layers 0, 2
            t.Gemma2Config(
                num_hidden_layers=3, head_dim=12, query_pre_attn_scalar=10,
                attn_logit_softcapping=5.0, sliding_window=3, **gqa,
            ),
            t.Gemma2ForCausalLM,
        ),
        "gemma3_text": (  # layers 0, 1 local (window 3, base 1e4), layer 2 global (base 1e6)
            t.Gemma3TextConfig(
                num_hidden_layers=3, head_dim=12, query_pre_attn_scalar=10, sliding_window=3,
                sliding_window_pattern=3, **gqa,
            ),
            t.Gemma3ForCausalLM,
        ),
        "olmo2": (  # the norms span 4 x 8 query and 2 x 8 key features
            t.Olmo2Config(
                num_hidden_layers=2, pad_token_id=0, bos_token_id=1, eos_token_id=2, **gqa
            ),
            t.Olmo2ForCausalLM,
        ),
        "electra": (
            t.ElectraConfig(num_hidden_layers=2, embedding_size=16, **encoder), t.ElectraModel
        ),
        "xlm-roberta": (t.XLMRobertaConfig(num_hidden_layers=2, **encoder), t.XLMRobertaModel),
        "camembert": (t.CamembertConfig(num_hidden_layers=2, **encoder), t.CamembertModel),
        "dinov2": (
            t.Dinov2Config(
                num_hidden_layers=2, image_size=8, patch_size=4, hidden_size=32,
                num_attention_heads=4, mlp_ratio=2,
            ),
            t.Dinov2Model,
        ),
        "distilbert": (
            t.DistilBertConfig(
                dim=32, n_heads=4, n_layers=2, hidden_dim=64, vocab_size=64,
                max_position_embeddings=64,
            ),
            t.DistilBertModel,
        ),
        "gpt_bigcode": (  # c_attn: 32 query rows | 8 key rows | 8 value rows
            t.GPTBigCodeConfig(
                n_embd=32, n_head=4, n_layer=2, multi_query=True, vocab_size=64,
                n_positions=64, bos_token_id=0, eos_token_id=0,
            ),
            t.GPTBigCodeForCausalLM,
        ),
        "llama_yarn": (  # blended frequencies and attention factor 0.1 ln 4 + 1
            t.LlamaConfig(num_hidden_layers=2, rope_parameters=yarn, **gqa), t.LlamaForCausalLM
        ),
        "llama_dynamic": (  # the default rotation up to max_position_embeddings (64)
            t.LlamaConfig(num_hidden_layers=2, rope_parameters=dynamic, **gqa),
            t.LlamaForCausalLM,
        ),
        "bloom": (  # 4 heads: slopes 1/4, 1/16, 1/64, 1/256
            t.BloomConfig(hidden_size=32, n_head=4, n_layer=2, vocab_size=64),
            t.BloomForCausalLM,
        ),
        "mpt": (  # ALiBi and a clamp that bites
            t.MptConfig(
                d_model=32, n_heads=4, n_layers=2, vocab_size=64, max_seq_len=64,
                attn_config={"alibi": True, "clip_qkv": 1.0},
            ),
            t.MptForCausalLM,
        ),
        "falcon": (  # multi-query, rotary, biases
            t.FalconConfig(
                hidden_size=32, num_attention_heads=4, num_hidden_layers=2, vocab_size=64,
                multi_query=True, new_decoder_architecture=False, alibi=False, bias=True,
                pad_token_id=0, bos_token_id=1, eos_token_id=2,
            ),
            t.FalconForCausalLM,
        ),
        "clip_text_model": (
            t.CLIPTextConfig(num_hidden_layers=2, **tower, **text), t.CLIPTextModel
        ),
        "clip_vision_model": (
            t.CLIPVisionConfig(num_hidden_layers=2, image_size=8, patch_size=4, **tower),
            t.CLIPVisionModel,
        ),
        "siglip_text_model": (
            t.SiglipTextConfig(num_hidden_layers=2, **tower, **text), t.SiglipTextModel
        ),
        "siglip_vision_model": (
            t.SiglipVisionConfig(num_hidden_layers=2, image_size=8, patch_size=4, **tower),
            t.SiglipVisionModel,
        ),
        "whisper": (  # 8 mel bins x 12 frames in, 6 encoder positions after the convolutions
            t.WhisperConfig(
                num_mel_bins=8, max_source_positions=6, max_target_positions=64, **seq2seq
            ),
            t.WhisperForConditionalGeneration,
        ),
        "bart": (
            t.BartConfig(max_position_embeddings=64, **seq2seq),
            t.BartForConditionalGeneration,
        ),
        "falcon_new": (  # new decoder architecture: query_key_value packed per key-value group
            t.FalconConfig(
                hidden_size=48, num_attention_heads=6, num_kv_heads=2, num_hidden_layers=2,
                vocab_size=64, new_decoder_architecture=True, alibi=False, bias=True,
                pad_token_id=0, bos_token_id=1, eos_token_id=2,
            ),
            t.FalconForCausalLM,
        ),
        "falcon_alibi": (  # ALiBi (5 heads: Bloom's odd extra slopes), q, k, v packed per head
            t.FalconConfig(
                hidden_size=40, num_attention_heads=5, num_hidden_layers=2, vocab_size=64,
                multi_query=False, new_decoder_architecture=False, alibi=True, bias=True,
                pad_token_id=0, bos_token_id=1, eos_token_id=2,
            ),
            t.FalconForCausalLM,
        ),
        "stablelm_qk_layernorm": (  # a LayerNorm per head of queries and keys, no bias
            t.StableLmConfig(
                num_hidden_layers=2, use_qkv_bias=True, qk_layernorm=True, layer_norm_eps=1e-3,
                **gqa,
            ),
            t.StableLmForCausalLM,
        ),
        "cohere_qk_norm": (  # CohereLayerNorm over (heads, head_dim): one weight per head
            t.CohereConfig(
                num_hidden_layers=2, use_qk_norm=True, layer_norm_eps=1e-3, pad_token_id=0,
                bos_token_id=1, eos_token_id=2, **gqa,
            ),
            t.CohereForCausalLM,
        ),
        "t5": (t.T5Config(**t5), t.T5EncoderModel),  # layer 0's bias table serves all three
        "mt5": (t.MT5Config(**t5), t.MT5EncoderModel),
        "umt5": (t.UMT5Config(**t5), t.UMT5EncoderModel),  # a bias table in every layer
    }  # fmt: skip


FAMILIES = tuple(_ATTENTION)


def build_families(root: Path, seed: int = 100) -> dict[str, FamilyModel]:
    """Every new family's tiny model, saved under root/<family>."""
    models = {}
    for offset, (family, (config, cls)) in enumerate(_configs().items()):
        config._attn_implementation = "eager"
        torch.manual_seed(seed + offset)
        model = cls(config).eval()
        _redraw(model, seed + offset)
        folder = root / family
        model.save_pretrained(folder)
        models[family] = FamilyModel(family, folder, model, config)
    return models
