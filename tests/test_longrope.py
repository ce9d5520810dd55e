"""LongRoPE (Phi-3's long-context rope scaling) against transformers' own Phi-3 attention: the
short factors up to the original context, the long ones beyond it, and the attention factor on
cos and sin; a config whose factors do not fit the rotation is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import mha_cli

pytest.importorskip("transformers")

ORIGINAL = 4  # the original context: a longer sequence takes the long factors


def _phi3(folder: Path, **rope: Any) -> Any:
    import transformers as t

    parameters = {
        "rope_type": "longrope",
        "rope_theta": 500.0,
        "partial_rotary_factor": 0.5,  # 4 of 8 features turn: 2 frequencies
        "short_factor": [1.0, 1.5],
        "long_factor": [3.0, 7.0],
        **rope,
    }
    config = t.Phi3Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_attention_heads=4,
        num_key_value_heads=2, num_hidden_layers=2, max_position_embeddings=16,
        original_max_position_embeddings=ORIGINAL, rope_parameters=parameters,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    config._attn_implementation = "eager"
    torch.manual_seed(3)
    model = t.Phi3ForCausalLM(config).eval()
    with torch.no_grad():  # weights large enough that the rotation shows in the weights
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    model.save_pretrained(folder)
    return model


def _both(model: Any, folder: Path, tmp_path: Path, length: int, layer: int) -> tuple:
    """(transformers' weights, mha's report) for a padded batch of two of `length` tokens."""
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, length - 2 :] = 0  # right padding
    ids = torch.randint(3, 64, (2, length), generator=torch.Generator().manual_seed(length))
    caught: dict[str, torch.Tensor] = {}

    def grab(_module: Any, args: tuple, kwargs: dict) -> None:  # type: ignore[type-arg]
        caught["hidden"] = kwargs.get("hidden_states", args[0] if args else None)

    hook = model.model.layers[layer].self_attn.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        result = model.model(input_ids=ids, attention_mask=mask, output_attentions=True)
    hook.remove()
    torch.save({"hidden_states": caught["hidden"], "valid_lens": mask.sum(-1)}, tmp_path / "in.pt")
    report = mha_cli.inspect(weights=str(folder), layer=layer, inputs=str(tmp_path / "in.pt"))
    return result.attentions[layer], report


@pytest.mark.parametrize("length", [ORIGINAL - 1, ORIGINAL, ORIGINAL + 3])
def test_longrope_is_transformers_short_and_long(tmp_path: Path, length: int) -> None:
    folder = tmp_path / "phi3"
    model = _phi3(folder)
    for layer in (0, 1):
        expected, report = _both(model, folder, tmp_path, length, layer)
        torch.testing.assert_close(report.attention_weights, expected, atol=1e-5, rtol=0)
    # the factors chosen matter: the other set gives other weights (the test can fail)
    other = _phi3(tmp_path / "swapped", short_factor=[3.0, 7.0], long_factor=[1.0, 1.5])
    swapped, _ = _both(other, tmp_path / "swapped", tmp_path, length, 1)
    assert float((swapped - report.attention_weights).abs().max()) > 1e-3


def test_longrope_with_too_few_factors_is_one_line(tmp_path: Path, cli) -> None:
    folder = tmp_path / "phi3"
    _phi3(folder)
    config = json.loads((folder / "config.json").read_text())
    config["rope_parameters"]["long_factor"] = [1.0, 2.0, 3.0]
    (folder / "config.json").write_text(json.dumps(config))
    result = cli("inspect", "--weights", str(folder), "--layer", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "long_factor has 3 factors" in result.output and "2 frequencies" in result.output
