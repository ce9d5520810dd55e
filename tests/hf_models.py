"""Tiny Hugging Face models of every supported family, saved with save_pretrained.

Built from config objects (no hub is reachable), eager attention, 2-3 layers, hidden size 32-48,
grouped-query attention and biases where the family has them, and every parameter redrawn from
a seeded generator: the library's own initialisation (std 0.02) makes attention nearly uniform,
against which a loader that swaps q and k would still pass. The whole set builds in about two
seconds.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

SHARD_SIZES = ("20KB", "30KB", "40KB", "12KB")  # tried until one layer straddles two shards


@dataclass(frozen=True)
class HFModel:
    family: str
    folder: Path  # what save_pretrained wrote
    model: nn.Module  # the same model in memory, eval mode
    config: Any  # its transformers config

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    def attention(self, layer: int) -> nn.Module:
        """The attention module of layer `layer`, found by its in-memory names."""
        return _ATTENTION[self.family](self.model, layer)


_ATTENTION = {
    "bert": lambda m, i: m.bert.encoder.layer[i].attention,
    "roberta": lambda m, i: m.encoder.layer[i].attention,
    "vit": lambda m, i: m.vit.layers[i].attention,
    "gpt2": lambda m, i: m.transformer.h[i].attn,
    "opt": lambda m, i: m.model.decoder.layers[i].self_attn,
    "llama": lambda m, i: m.model.layers[i].self_attn,
    "mistral": lambda m, i: m.layers[i].self_attn,
    "qwen2": lambda m, i: m.model.layers[i].self_attn,
    "qwen3": lambda m, i: m.model.layers[i].self_attn,
    "gpt_neox": lambda m, i: m.gpt_neox.layers[i].attention,
    "gptj": lambda m, i: m.transformer.h[i].attn,
}
_ATTENTION["llama_sharded"] = _ATTENTION["llama"]


def _configs() -> dict[str, tuple[Any, Any]]:
    """family -> (config, model class): a whole model where the wrapper prefix is worth testing."""
    import transformers as t

    small = {"vocab_size": 64, "intermediate_size": 64, "max_position_embeddings": 64}
    gqa = {"num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 32, **small}
    llama3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}
    llama3 |= {"low_freq_factor": 1.0, "high_freq_factor": 4.0}
    llama3["original_max_position_embeddings"] = 32
    encoder = {"hidden_size": 32, "num_attention_heads": 4, **small}
    gpt = {"vocab_size": 64, "n_embd": 32, "n_head": 4, "n_positions": 64}
    gpt |= {"bos_token_id": 0, "eos_token_id": 0}  # within the tiny vocabulary
    return {
        "bert": (t.BertConfig(num_hidden_layers=2, **encoder), t.BertForMaskedLM),
        "roberta": (t.RobertaConfig(num_hidden_layers=2, **encoder), t.RobertaModel),
        "vit": (
            t.ViTConfig(num_hidden_layers=2, image_size=8, patch_size=4, **encoder),
            t.ViTForImageClassification,
        ),
        "gpt2": (t.GPT2Config(n_layer=3, **gpt), t.GPT2LMHeadModel),
        "opt": (t.OPTConfig(num_hidden_layers=2, ffn_dim=64, **encoder), t.OPTForCausalLM),
        "llama": (
            t.LlamaConfig(num_hidden_layers=2, rope_parameters=llama3, **gqa),
            t.LlamaForCausalLM,
        ),
        "mistral": (t.MistralConfig(num_hidden_layers=2, sliding_window=3, **gqa), t.MistralModel),
        "qwen2": (
            t.Qwen2Config(
                num_hidden_layers=3,
                use_sliding_window=True,
                sliding_window=3,
                max_window_layers=1,
                **gqa,
            ),
            t.Qwen2ForCausalLM,
        ),
        "qwen3": (t.Qwen3Config(num_hidden_layers=2, head_dim=12, **gqa), t.Qwen3ForCausalLM),
        "gpt_neox": (
            t.GPTNeoXConfig(num_hidden_layers=2, rotary_pct=0.5, rotary_emb_base=5000, **encoder),
            t.GPTNeoXForCausalLM,
        ),
        "gptj": (t.GPTJConfig(n_layer=2, rotary_dim=4, **gpt), t.GPTJForCausalLM),
        "llama_sharded": (t.LlamaConfig(num_hidden_layers=3, **gqa), t.LlamaForCausalLM),
    }


def build_all(root: Path, seed: int = 0) -> dict[str, HFModel]:
    """Every family's tiny model, saved under root/<family>; the sharded Llama's index straddles."""
    models = {}
    for offset, (family, (config, cls)) in enumerate(_configs().items()):
        config._attn_implementation = "eager"
        torch.manual_seed(seed + offset)  # the library's init, before the redraw, is seeded too
        model = cls(config).eval()
        _redraw(model, seed + offset)
        folder = root / family
        if family == "llama_sharded":
            _save_straddling(model, folder)
        else:
            model.save_pretrained(folder)
        models[family] = HFModel(family, folder, model, config)
    return models


def _redraw(model: nn.Module, seed: int) -> None:
    """Every parameter from N(0, 0.5²); norm weights near 1 so they matter but stay sane."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            values = torch.randn(param.shape, generator=generator)
            is_norm = param.dim() == 1 and "norm" in name.lower() and name.endswith("weight")
            param.copy_(1 + 0.2 * values if is_norm else 0.5 * values)


def _save_straddling(model: nn.Module, folder: Path) -> None:
    for size in SHARD_SIZES:
        shutil.rmtree(folder, ignore_errors=True)  # no shard of an earlier try stays behind
        model.save_pretrained(folder, max_shard_size=size)
        if straddling_layer(folder) is not None:
            return
    raise RuntimeError(f"no shard size of {SHARD_SIZES} splits one layer's attention")


def straddling_layer(folder: Path) -> int | None:
    """The first layer whose q/k/v/o projections lie in more than one shard."""
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    shards: dict[int, set[str]] = {}
    for key, shard in weight_map.items():
        parts = key.split(".")
        if "self_attn" in parts:
            shards.setdefault(int(parts[parts.index("layers") + 1]), set()).add(shard)
    return next((layer for layer, files in sorted(shards.items()) if len(files) > 1), None)
