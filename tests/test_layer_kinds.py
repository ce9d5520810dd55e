"""Models whose layers differ (Gemma 2 and 3: local sliding-window layers and global ones, Gemma
3 with a rope base of its own for each): `--layer all` says which layer is which."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")


def _save(config, cls, folder: Path) -> Path:  # type: ignore[no-untyped-def]
    import torch

    config._attn_implementation = "eager"
    torch.manual_seed(0)
    cls(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import transformers as t

    config = t.Gemma3TextConfig(
        vocab_size=64, hidden_size=48, intermediate_size=64, num_attention_heads=4,
        num_key_value_heads=2, num_hidden_layers=3, head_dim=12, sliding_window=3,
        sliding_window_pattern=3, rope_theta=1e6, rope_local_base_freq=1e4,
    )  # fmt: skip
    return _save(config, t.Gemma3ForCausalLM, tmp_path_factory.mktemp("gemma3"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import transformers as t

    config = t.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_attention_heads=4,
        num_hidden_layers=2,
    )  # fmt: skip
    return _save(config, t.LlamaForCausalLM, tmp_path_factory.mktemp("llama"))


def test_weights_every_layer_names_local_and_global_layers(cli, gemma3: Path) -> None:
    import transformers as t

    config = t.AutoConfig.from_pretrained(gemma3)
    local = [i for i, kind in enumerate(config.layer_types) if kind == "sliding_attention"]
    assert local and len(local) < config.num_hidden_layers  # the model mixes both kinds
    result = cli("weights", "--weights", str(gemma3), "--layer", "all", "--format", "json")
    assert result.exit_code == 0, result.output
    kinds = [layer["kind"] for layer in json.loads(result.stdout)["layers"]]
    for i, kind in enumerate(kinds):
        if i in local:
            assert kind == "local (window 3, rope base 10000)", (i, kind)
        else:
            assert kind == "global (rope base 1e+06)", (i, kind)
    table = cli("weights", "--weights", str(gemma3), "--layer", "all").stdout
    assert "kind" in table and "local (window 3" in table and "global (rope base" in table


def test_layers_alike_need_no_kind(cli, llama: Path) -> None:
    result = cli("weights", "--weights", str(llama), "--layer", "all", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [layer["kind"] for layer in json.loads(result.stdout)["layers"]] == [None, None]
    assert "kind" not in cli("weights", "--weights", str(llama), "--layer", "all").stdout
