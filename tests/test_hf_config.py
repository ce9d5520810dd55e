"""hf_config: a Hugging Face config.json read as transformers 5 reads it, as plain data.

Configs here are written by hand, as older and newer transformers versions write them; the
configs that transformers itself saves are read in test_hf_checkpoints.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mha_cli.errors import MhaError
from mha_cli.hf.config import (
    FAMILIES,
    attention_from_weights,
    parse_hf_config,
    read_hf_config,
    spec_fields,
)


def llama(**extra: Any) -> dict[str, Any]:
    return {
        "model_type": "llama",
        "hidden_size": 64,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "num_hidden_layers": 4,
        **extra,
    }


def fails(config: dict[str, Any], pattern: str, layer: int = 0) -> str:
    with pytest.raises(MhaError, match=pattern) as info:
        parse_hf_config(config, layer)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_the_readers_import_no_torch() -> None:
    # `--config config.json --device meta` and `mha --help` must not pay for torch's import
    modules = (
        "hf.config",
        "hf.layouts",
        "hf.checkpoint",
        "files.lazy_tensors",
        "files.safetensors_header",
    )
    imports = ", ".join(f"mha_cli.{name}" for name in modules)
    code = f"import sys, {imports}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_llama_defaults() -> None:
    att = parse_hf_config(llama(), layer=3)
    assert (att.family, att.layer, att.num_layers) == ("llama", 3, 4)
    assert (att.hiddens, att.heads, att.kv_heads, att.head_dim) == (64, 8, 2, 8)
    assert (att.q_bias, att.o_bias, att.causal) == (False, False, True)
    assert (att.rope, att.rope_theta, att.rotary_dim, att.rope_scaling) == ("half", 1e4, 8, None)
    assert (att.window, att.qk_norm, att.norm_eps) == (None, False, None)


def test_theta_and_scaling_where_transformers_5_keeps_them() -> None:
    params = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}
    params |= {"low_freq_factor": 1.0, "high_freq_factor": 4.0}
    att = parse_hf_config(llama(rope_parameters=params, max_position_embeddings=4096))
    assert att.rope_theta == 500000.0
    # original_max_position_embeddings falls back on the context length, as transformers does
    del params["rope_theta"]
    assert att.rope_scaling == params | {"original_max_position_embeddings": 4096}


def test_theta_and_scaling_in_older_configs() -> None:
    old = llama(rope_theta=1e6, rope_scaling={"type": "linear", "factor": 2.0})
    att = parse_hf_config(old)
    assert att.rope_theta == 1e6
    assert att.rope_scaling == {"rope_type": "linear", "factor": 2.0}
    assert parse_hf_config(llama(rope_scaling={"rope_type": "default"})).rope_scaling is None


def test_gpt_neox_old_names_and_partial_rotary() -> None:
    neox = {"model_type": "gpt_neox", "hidden_size": 64, "num_attention_heads": 4}
    neox |= {"num_hidden_layers": 2, "rotary_emb_base": 20000, "rotary_pct": 0.5}
    att = parse_hf_config(neox)
    assert (att.rope_theta, att.head_dim, att.rotary_dim) == (20000.0, 16, 8)
    assert (att.q_bias, att.o_bias) == (True, True)
    del neox["rotary_pct"]
    assert parse_hf_config(neox).rotary_dim == 4  # transformers' default rotary_pct, 0.25
    new = neox | {"rope_parameters": {"rope_theta": 1000.0, "partial_rotary_factor": 1.0}}
    assert (parse_hf_config(new).rope_theta, parse_hf_config(new).rotary_dim) == (1000.0, 16)


def test_gptj_interleaved_on_rotary_dim() -> None:
    gptj = {"model_type": "gptj", "n_embd": 64, "n_head": 4, "n_layer": 2, "rotary_dim": 8}
    att = parse_hf_config(gptj)
    assert (att.rope, att.rotary_dim, att.rope_theta, att.q_bias) == ("interleaved", 8, 1e4, False)


def test_mistral_window_on_every_layer() -> None:
    mistral = llama(model_type="mistral", sliding_window=4096)
    assert [parse_hf_config(mistral, i).window for i in range(4)] == [4096] * 4
    assert parse_hf_config(llama(model_type="mistral", sliding_window=None)).window is None


def test_qwen2_window_only_from_max_window_layers_on() -> None:
    qwen2 = llama(model_type="qwen2", sliding_window=16, max_window_layers=2)
    assert [parse_hf_config(qwen2, i).window for i in range(4)] == [None] * 4  # not switched on
    qwen2["use_sliding_window"] = True
    assert [parse_hf_config(qwen2, i).window for i in range(4)] == [None, None, 16, 16]
    qwen2["layer_types"] = ["sliding_attention", "full_attention"] * 2  # wins when given
    assert [parse_hf_config(qwen2, i).window for i in range(4)] == [16, None, 16, None]
    att = parse_hf_config(qwen2)
    assert (att.q_bias, att.k_bias, att.v_bias, att.o_bias) == (True, True, True, False)


def test_qwen3_norm_and_head_dim() -> None:
    att = parse_hf_config(llama(model_type="qwen3", head_dim=16, rms_norm_eps=1e-5))
    assert (att.head_dim, att.qk_norm, att.norm_eps) == (16, True, 1e-5)
    assert parse_hf_config(llama(model_type="qwen3")).head_dim == 128  # Qwen3Config's default


def test_encoders_and_gpt2() -> None:
    bert = {"model_type": "bert", "hidden_size": 48, "num_attention_heads": 4}
    bert["num_hidden_layers"] = 2
    assert parse_hf_config(bert).causal is False
    assert parse_hf_config(bert | {"is_decoder": True}).causal is True
    vit = bert | {"model_type": "vit", "qkv_bias": False}
    att = parse_hf_config(vit)
    assert (att.causal, att.q_bias, att.o_bias, att.rope) == (False, False, True, "none")
    gpt2 = {"model_type": "gpt2", "n_embd": 48, "n_head": 4, "n_layer": 2}
    assert parse_hf_config(gpt2).causal is True
    opt = bert | {"model_type": "opt", "enable_bias": False}
    assert parse_hf_config(opt).q_bias is False


def test_spec_fields() -> None:
    fields = spec_fields(parse_hf_config(llama(model_type="qwen2", head_dim=16)))
    assert fields == {
        "hiddens": 64,
        "heads": 8,
        "kv_heads": 2,
        "head_dim": 16,
        "query_size": 64,
        "key_size": 64,
        "value_size": 64,
        "bias": True,
        "out_bias": False,
        "key_bias": True,
        "causal": True,
        "rope": "half",
        "rope_theta": 10000.0,
        "rotary_dim": 16,
        "rope_scaling": None,
        "window": None,
        "qk_norm": False,
        "norm_eps": None,
        "qk_norm_whole": False,
        "score_scale": None,
        "softcap": None,
        "clip_qkv": None,
        "alibi": False,
        "qk_norm_layer": False,
        "alibi_scaled": False,
        "relative_buckets": None,
        "relative_max_distance": 128,
    }


@pytest.mark.parametrize(
    ("attention", "heads", "layers", "causal"),
    [
        (None, 4, 3, False),
        ("encoder", 4, 3, False),
        ("decoder", 2, 5, True),
        ("cross", 2, 5, False),
    ],
)
def test_encoder_decoder_sizes_come_from_the_picked_stack(attention, heads, layers, causal) -> None:
    config = {"model_type": "whisper", "d_model": 32, "encoder_layers": 3, "decoder_layers": 5}
    config |= {"encoder_attention_heads": 4, "decoder_attention_heads": 2}
    att = parse_hf_config(config, 0, attention=attention)
    assert (att.heads, att.num_layers, att.causal) == (heads, layers, causal)
    assert att.attention == (attention or "encoder")
    assert (att.q_bias, att.k_bias, att.v_bias, att.o_bias) == (True, False, True, True)
    fields = spec_fields(att)
    assert (fields["bias"], fields["key_bias"], fields["attention"]) == (True, False, att.attention)
    bart = parse_hf_config(config | {"model_type": "bart"}, 4, attention="cross")
    assert bart.k_bias is True and bart.num_layers == 5
    with pytest.raises(MhaError, match=r"gives 3 encoder layers; pick a layer from 0 to 2"):
        parse_hf_config(config, 3, attention="encoder")


def test_attention_is_refused_on_a_model_with_one_kind() -> None:
    with pytest.raises(MhaError, match=r"^--attention cross: config.json describes a qwen2"):
        parse_hf_config(llama(model_type="qwen2"), attention="cross")


def test_attention_from_weights() -> None:
    shapes = {"W_q.weight": (48, 32), "W_k.weight": (24, 32), "W_v.weight": (24, 32)}
    shapes |= {"W_o.weight": (32, 48), "q_norm.weight": (12,), "k_norm.weight": (12,)}
    att = attention_from_weights("qwen3", shapes, 4, 1, 2)
    assert (att.heads, att.kv_heads, att.head_dim, att.hiddens) == (4, 2, 12, 32)
    with pytest.raises(MhaError, match=r"^without a config.json the number of heads is unknown"):
        attention_from_weights("qwen3", shapes, None, 1, 2)  # a norm never counts the heads
    shapes = {"W_q.weight": (32, 32), "W_k.weight": (32, 32), "W_v.weight": (32, 32)}
    shapes |= {"W_o.weight": (32, 32), "W_q.bias": (32,)}
    att = attention_from_weights("gptj", shapes, 4, 0, 2)
    assert (att.rotary_dim, att.q_bias, att.k_bias) == (8, True, False)
    with pytest.raises(MhaError, match=r"^without a config.json the number of heads is unknown"):
        attention_from_weights("llama", shapes, None, 0, 2)


def test_read_from_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(llama()))
    assert read_hf_config(path, 1).layer == 1
    path.write_text("{ not json")
    with pytest.raises(MhaError, match=r"^\S+config.json is not valid JSON \(line 1"):
        read_hf_config(path)
    with pytest.raises(MhaError, match=r"^\S+nothing.json: no such file"):
        read_hf_config(tmp_path / "nothing.json")


# ---------------------------------------------------------------------------------------------
# Refusals: one line each, naming what was found and the way out


def test_unsupported_family_names_the_supported_ones() -> None:
    message = fails(llama(model_type="mamba"), r"^config.json: model_type 'mamba' is not supported")
    assert ", ".join(FAMILIES) in message
    fails({"hidden_size": 8}, r"^config.json: no model_type is not supported; supported families")


@pytest.mark.parametrize("kind", ["su", "ntk"])
def test_unknown_rope_scaling(kind: str) -> None:
    message = fails(
        llama(rope_parameters={"rope_type": kind, "factor": 4.0}),
        rf"^config.json: rope scaling '{kind}' is not supported; supported: linear, llama3, "
        "yarn, dynamic, longrope",
    )
    assert "inspect a model" in message


def test_layer_beyond_the_model() -> None:
    fails(
        llama(),
        r"^--layer 4 is beyond the model: config.json gives 4 layers; pick a layer from 0 to 3$",
        4,
    )


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"hidden_size": None}, r"^config.json has no hidden_size or n_embd"),
        ({"num_attention_heads": 0}, r"^config.json: num_attention_heads = 0 should be a whole"),
        ({"num_key_value_heads": 3}, r"^config.json: num_attention_heads \(8\) is not a multiple"),
        ({"partial_rotary_factor": 0.5}, r"^config.json: partial_rotary_factor = 0.5 is not"),
        (
            {"rope_parameters": {"rope_type": "linear"}},
            r"^config.json: linear rope scaling lacks factor",
        ),
        ({"rope_theta": -1}, r"^config.json: rope_theta = -1 should be a positive number"),
        (
            {"model_type": "mistral", "sliding_window": 0},
            r"^config.json: sliding_window = 0 should",
        ),
    ],
)
def test_bad_values(change: dict[str, Any], pattern: str) -> None:
    fails(llama(**change), pattern)


def test_scores_mha_cannot_reproduce() -> None:
    gpt2 = {"model_type": "gpt2", "n_embd": 48, "n_head": 4, "n_layer": 2}
    fails(gpt2 | {"scale_attn_by_inverse_layer_idx": True}, r"^config.json: scale_attn_by_inverse")
    fails(gpt2 | {"scale_attn_weights": False}, r"^config.json: scale_attn_weights = false is not")
    bert = {
        "model_type": "bert",
        "hidden_size": 48,
        "num_attention_heads": 4,
        "num_hidden_layers": 1,
    }
    fails(bert | {"position_embedding_type": "relative_key"}, r"^config.json: position_embedding")
    fails(
        bert | {"num_attention_heads": 5}, r"^config.json: the hidden size \(48\) is not divisible"
    )
