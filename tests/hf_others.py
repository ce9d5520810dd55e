"""Tiny Hugging Face models of families mha does not read, or reads only with their config.json,
saved with save_pretrained: the refusals name what they see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

SMALL = {"vocab_size": 64, "max_position_embeddings": 64}


def _configs() -> dict[str, tuple[Any, Any]]:
    import transformers as t

    gqa = {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2}
    gqa |= {"intermediate_size": 64, "num_hidden_layers": 2, **SMALL}
    return {
        "gpt_neo": (
            t.GPTNeoConfig(
                hidden_size=32, num_layers=2, num_heads=4, attention_types=[[["global"], 2]],
                **SMALL,
            ),
            t.GPTNeoForCausalLM,
        ),
        "mpt": (
            t.MptConfig(d_model=32, n_heads=4, n_layers=2, vocab_size=64, max_seq_len=64),
            t.MptForCausalLM,
        ),
        "clip": (
            t.CLIPTextConfig(
                hidden_size=32, num_attention_heads=4, num_hidden_layers=2,
                intermediate_size=64, **SMALL,
            ),
            t.CLIPTextModel,
        ),
        "bart": (
            t.BartConfig(
                d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, **SMALL,
            ),
            t.BartModel,
        ),
        "whisper": (
            t.WhisperConfig(
                d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                num_mel_bins=8, max_source_positions=16, max_target_positions=16, vocab_size=64,
                pad_token_id=0, bos_token_id=0, eos_token_id=0, decoder_start_token_id=0,
            ),
            t.WhisperModel,
        ),
        "mamba": (
            t.MambaConfig(hidden_size=32, state_size=4, num_hidden_layers=2, vocab_size=64),
            t.MambaModel,
        ),
        "gpt_bigcode": (
            t.GPTBigCodeConfig(n_embd=32, n_head=4, n_layer=2, multi_query=True, **SMALL),
            t.GPTBigCodeForCausalLM,
        ),
        "olmo2": (t.Olmo2Config(**gqa), t.Olmo2ForCausalLM),
        "gemma3": (t.Gemma3TextConfig(head_dim=8, **gqa), t.Gemma3ForCausalLM),
    }  # fmt: skip


def build_others(root: Path) -> dict[str, Path]:
    """family -> the folder save_pretrained wrote (config.json and model.safetensors)."""
    folders = {}
    for family, (config, cls) in _configs().items():
        torch.manual_seed(0)
        folder = root / family
        cls(config).eval().save_pretrained(folder)
        folders[family] = folder
    return folders
