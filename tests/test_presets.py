"""The presets of real models' attention layers, checked against their published sizes."""

from __future__ import annotations

import json

import pytest


def layer_parameters(hiddens: int, heads: int, kv_heads: int, head_dim: int, qkv_bias: bool) -> int:
    """q and o: heads x head_dim by hiddens; k and v: kv_heads x head_dim by hiddens."""
    q, kv = heads * head_dim, kv_heads * head_dim
    weights = 2 * q * hiddens + 2 * kv * hiddens
    return weights + ((q + 2 * kv) if qkv_bias else 0)


@pytest.mark.parametrize(
    ("preset", "sizes", "expected_stages"),
    [
        ("llama-3-8b", (4096, 32, 8, 128, False), {"queries.rope", "keys.rope", "keys.share"}),
        ("mistral-7b", (4096, 32, 8, 128, False), {"queries.rope", "keys.share"}),
        ("qwen2.5-7b", (3584, 28, 4, 128, True), {"queries.rope", "values.share"}),
    ],
)
def test_real_model_presets(cli, preset, sizes, expected_stages):
    result = cli("inspect", "--config", preset, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["summary"]["total_params"] == layer_parameters(*sizes)
    assert expected_stages <= {stage["name"] for stage in document["stages"]}
    spec = document["spec"]
    assert (spec["hiddens"], spec["heads"], spec["kv_heads"], spec["head_dim"]) == sizes[:4]
    assert spec["causal"] and spec["rope"] == "half"


def test_mistral_preset_has_its_window_and_llama_its_scaling(cli):
    mistral = json.loads(cli("inspect", "--config", "mistral-7b", "--format", "json").stdout)
    assert mistral["spec"]["window"] == 4096
    llama = json.loads(cli("inspect", "--config", "llama-3-8b", "--format", "json").stdout)
    assert llama["spec"]["rope_scaling"]["rope_type"] == "llama3"
    assert llama["spec"]["rope_theta"] == 500000.0
