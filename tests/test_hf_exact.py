"""One layer of a real model's checkpoint, exactly: mha against transformers' own eager attention.

For every supported family, the tiny model (tests/hf_models.py: weights redrawn from a seeded
generator, saved with save_pretrained) runs in transformers with padding; hooks catch what its
attention module got (the hidden states after the layer norm) and gave (the output projection,
before any residual or norm), and `output_attentions` gives the weights per head. mha then reads
the same layer from the saved files and runs it on the same hidden states: the weights must
agree within 1e-5 and the output within 1e-4, in float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import mha_cli
from mha_cli.comparison.lines import failure_message
from mha_cli.hf.config import FAMILIES as SUPPORTED

pytest.importorskip("transformers")

FAMILIES = (*SUPPORTED, "llama_sharded")  # every family, and a Llama sharded across files
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])  # right padding: valid_lens [6, 4]


def transformers_run(model: Any, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hidden states into layer `layer`'s attention, its weights (b, h, q, k), its output)."""
    attention = model.attention(layer)
    caught: dict[str, torch.Tensor] = {}

    def grab_input(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        caught["input"] = args[0] if args else kwargs["hidden_states"]

    def grab_output(_module: Any, _args: Any, output: Any) -> None:
        caught["output"] = output[0] if isinstance(output, tuple) else output

    # BERT's and RoBERTa's attention module adds the residual and a LayerNorm itself: take the
    # output projection's own output.
    projection = attention.output.dense if hasattr(attention, "output") else attention
    hooks = [
        attention.register_forward_pre_hook(grab_input, with_kwargs=True),
        projection.register_forward_hook(grab_output),
    ]
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        if model.family == "vit":
            pixels = torch.randn(2, 3, 8, 8, generator=generator)
            result = model.model(pixel_values=pixels, output_attentions=True)
        else:
            ids = torch.randint(0, 64, MASK.shape, generator=generator)
            extra = {"use_cache": False} if "use_cache" in model.config.to_dict() else {}
            result = model.model(
                input_ids=ids, attention_mask=MASK, output_attentions=True, **extra
            )
    for hook in hooks:
        hook.remove()
    return caught["input"], result.attentions[layer], caught["output"]


def run_mha(weights: Path, layer: int, hidden: torch.Tensor, tmp_path: Path, vit: bool) -> Any:
    inputs: dict[str, torch.Tensor] = {"hidden_states": hidden}
    if not vit:
        inputs["valid_lens"] = MASK.sum(-1)
    torch.save(inputs, tmp_path / "inputs.pt")
    return mha_cli.inspect(weights=weights, layer=layer, inputs=str(tmp_path / "inputs.pt"))


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_reproduces_transformers(hf_models, tmp_path, family):
    model = hf_models[family]
    for layer in (0, model.num_layers - 1):
        hidden, expected_weights, expected_output = transformers_run(model, layer)
        report = run_mha(model.folder, layer, hidden, tmp_path, family == "vit")
        weights = report.attention_weights  # (b, h, q, k), padded queries' rows included
        torch.testing.assert_close(weights, expected_weights, atol=1e-5, rtol=0)
        if report.mask is not None:  # masked keys get exactly nothing, as in transformers
            assert float(weights[report.mask].abs().max()) == 0.0
        torch.testing.assert_close(report.output_tensor, expected_output, atol=1e-4, rtol=0)


@pytest.mark.parametrize("where", ["folder", "single file", "sharded index"])
def test_every_way_of_pointing_at_the_weights(hf_models, tmp_path, where):
    family = "llama_sharded" if where == "sharded index" else "llama"
    model = hf_models[family]
    path = {
        "folder": model.folder,
        "single file": model.folder / "model.safetensors",
        "sharded index": model.folder / "model.safetensors.index.json",
    }[where]
    layer = model.num_layers - 1
    hidden, expected_weights, expected_output = transformers_run(model, layer)
    report = run_mha(path, layer, hidden, tmp_path, vit=False)
    torch.testing.assert_close(report.attention_weights, expected_weights, atol=1e-5, rtol=0)
    torch.testing.assert_close(report.output_tensor, expected_output, atol=1e-4, rtol=0)
    assert report.source is not None and len(report.source.keys) == 4  # q, k, v, o: no more


def test_the_run_says_what_it_read(hf_models, cli):
    model = hf_models["llama_sharded"]
    result = cli("inspect", "--weights", str(model.folder), "--layer", "1", "--valid-lens", "none")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # rich wraps long lines at the console's width
    assert "weights: " in text and "llama: model.layers.N.self_attn.q_proj.weight" in text
    assert "layer 1 of 3" in text
    assert "read 4 tensors from model-0000" in text  # with the shard they came from
    assert "model.layers.1.self_attn.q_proj.weight" in text
    assert "queries.rope" in text and "keys.rope" in text and "keys.share" in text


def test_options_override_the_config_but_not_the_weights(hf_models, cli):
    folder = str(hf_models["mistral"].folder)
    plain = cli("inspect", "--weights", folder, "--format", "json", "--valid-lens", "none")
    spec = __import__("json").loads(plain.stdout)["spec"]
    assert (spec["causal"], spec["window"], spec["rope"]) == (True, 3, "half")
    free = cli(
        "inspect", "--weights", folder, "--no-causal", "--window", "none", "--format", "json"
    )
    assert free.exit_code == 0, free.output
    assert __import__("json").loads(free.stdout)["spec"]["causal"] is False
    wrong = cli("inspect", "--weights", folder, "--heads", "8")
    assert wrong.exit_code == 2
    assert wrong.stderr.startswith("mha: --heads 8 contradicts ")


def test_a_layer_beyond_the_model_says_how_many_it_has(hf_models, cli):
    result = cli("inspect", "--weights", str(hf_models["gpt2"].folder), "--layer", "7")
    assert result.exit_code == 2
    assert result.stderr.startswith("mha: --layer 7 is beyond the model: ")
    assert "3 layers; pick a layer from 0 to 2" in result.stderr


def test_config_json_as_a_specification(hf_models, cli):
    config = str(hf_models["qwen3"].folder / "config.json")
    result = cli("inspect", "--config", config, "--device", "meta", "--format", "json")
    assert result.exit_code == 0, result.output
    document = __import__("json").loads(result.stdout)
    spec = document["spec"]
    assert (spec["heads"], spec["kv_heads"], spec["head_dim"], spec["qk_norm"]) == (4, 2, 12, True)
    names = [stage["name"] for stage in document["stages"]]
    assert names.index("queries.norm") < names.index("queries.rope") < names.index("scores")


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "qwen3", "gptj"])
def test_compare_on_a_real_models_layer(hf_models, family):
    """`mha compare` on a checkpoint: the family's formula as mha reads it is the reference, and
    torch's paths get the same rotated (and normed) queries and keys."""
    comparison = mha_cli.compare(weights=hf_models[family].folder, layer=1, valid_lens="3,2")
    assert comparison.agrees, failure_message(comparison)
