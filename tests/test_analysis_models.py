"""`mha weights` and `mha heads` on real models' layers (tiny transformers models saved with
save_pretrained): figures from the in-memory modules' own weights, and ablations by rerunning
transformers itself with a head's slice of the output projection's input zeroed."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from test_hf_exact import MASK, transformers_run
from test_weights import assert_head_figures, dense_figures, expected_heads

pytest.importorskip("transformers")

# family -> the names of the query, key, value and output projections under its attention module
PROJECTIONS = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "bert": ("self.query", "self.key", "self.value", "output.dense"),
}


def module(root: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


def state_of(model: Any, layer: int) -> dict[str, torch.Tensor]:
    """The layer's weights in d2l's names, taken from the transformers module in memory."""
    attention = model.attention(layer)
    state = {}
    for name, path in zip(("W_q", "W_k", "W_v", "W_o"), PROJECTIONS[model.family], strict=True):
        linear = module(attention, path)
        state[f"{name}.weight"] = linear.weight.detach()
        if linear.bias is not None and name != "W_o":
            state[f"{name}.bias"] = linear.bias.detach()
    return state


@pytest.mark.parametrize("family", ["llama", "bert"])
def test_weights_of_every_layer_of_a_model(hf_models, cli, family):
    model = hf_models[family]
    config = model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    result = cli("weights", "--weights", str(model.folder), "--layer", "all", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [layer["layer"] for layer in document["layers"]] == list(range(model.num_layers))
    assert len(document["stat_grid"]) == model.num_layers
    for index, layer in enumerate(document["layers"]):
        one = {**document, "layers": [layer]}
        expected = expected_heads(state_of(model, index), heads, kv_heads)
        assert_head_figures(one, expected, rtol=1e-4)
        wanted = [dense_figures(h["matrices"]["ov"])["frobenius"] for h in expected]
        assert document["stat_grid"][index] == pytest.approx(wanted, rel=1e-4)


@pytest.mark.parametrize("family", ["llama", "bert"])
def test_heads_of_a_models_layer_match_transformers_rerun_without_each_head(
    hf_models, cli, tmp_path, family
):
    model = hf_models[family]
    layer = model.num_layers - 1
    hidden, _, output = transformers_run(model, layer)
    torch.save({"hidden_states": hidden, "valid_lens": MASK.sum(-1)}, tmp_path / "in.pt")
    result = cli(
        "heads", "--weights", str(model.folder), "--layer", str(layer),
        "--inputs", str(tmp_path / "in.pt"), "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    attention = model.attention(layer)
    projection = module(attention, PROJECTIONS[family][3])
    d = model.config.hidden_size // model.config.num_attention_heads
    for i, head in enumerate(document["heads"]):

        def zero_head(_module: Any, args: tuple[Any, ...], i: int = i) -> tuple[Any, ...]:
            concat = args[0].clone()
            concat[..., i * d : (i + 1) * d] = 0
            return (concat, *args[1:])

        hook = projection.register_forward_pre_hook(zero_head)
        try:
            _, _, without = transformers_run(model, layer)
        finally:
            hook.remove()
        expected = float((output - without).norm() / output.norm())
        assert head["ablation"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
