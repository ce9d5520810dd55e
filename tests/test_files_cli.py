"""`--weights`, `--inputs` and `--export` end to end, against torch.nn.MultiheadAttention."""

from __future__ import annotations

import json

import d2l_reference as d2l
import pytest
import safetensors.torch
import torch


def torch_mha_checkpoint(bias: bool) -> torch.nn.MultiheadAttention:
    torch.manual_seed(3)
    layer = torch.nn.MultiheadAttention(100, 5, bias=bias, batch_first=True).eval()
    if bias:  # torch initialises biases to zero; make them matter
        with torch.no_grad():
            layer.in_proj_bias.normal_()
            layer.out_proj.bias.normal_()
    return layer


def chapter_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return {
        "queries": torch.randn(2, 4, 100, generator=g),
        "keys": torch.randn(2, 6, 100, generator=g),
        "values": torch.randn(2, 6, 100, generator=g),
        "valid_lens": torch.tensor([3, 2]),
    }


@pytest.mark.parametrize("weights_ext", [".pt", ".safetensors"])
@pytest.mark.parametrize("bias", [False, True])
def test_torch_checkpoint_inputs_and_export_match_torch(cli, tmp_path, weights_ext, bias):
    layer = torch_mha_checkpoint(bias)
    weights = tmp_path / f"mha{weights_ext}"
    if weights_ext == ".pt":
        torch.save(layer.state_dict(), weights)
    else:
        safetensors.torch.save_file(layer.state_dict(), weights)
    inputs = chapter_inputs()
    torch.save(inputs, tmp_path / "inputs.pt")
    export = tmp_path / "export.safetensors"

    result = cli(
        "inspect",
        "--weights",
        str(weights),
        "--inputs",
        str(tmp_path / "inputs.pt"),
        "--heads",
        "5",
        "--export",
        str(export),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["spec"]["bias"] is bias  # read from the checkpoint, not given
    exported = safetensors.torch.load_file(export)

    padding = torch.arange(6)[None, :] >= inputs["valid_lens"][:, None]
    with torch.no_grad():
        expected, expected_weights = layer(
            inputs["queries"],
            inputs["keys"],
            inputs["values"],
            key_padding_mask=padding,
            need_weights=True,
            average_attn_weights=False,
        )
    torch.testing.assert_close(exported["output"], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(exported["attention_weights"], expected_weights, atol=1e-5, rtol=0)
    # Every printed shape is the shape of a tensor that was really computed.
    for stage in document["stages"]:
        assert list(exported[stage["name"]].shape) == stage["shape"], stage["name"]


def test_d2l_checkpoint_gives_every_size(cli, tmp_path):
    torch.manual_seed(0)
    reference = d2l.MultiHeadAttention(
        key_size=6, query_size=10, value_size=8, num_hiddens=24, num_heads=4, dropout=0
    )
    torch.save(reference.state_dict(), tmp_path / "d2l.pt")
    result = cli(
        "inspect",
        "--weights",
        str(tmp_path / "d2l.pt"),
        "--heads",
        "4",
        "--valid-lens",
        "none",
        "--format",
        "json",
        "--export",
        str(tmp_path / "out.pt"),
    )
    spec = json.loads(result.stdout)["spec"]
    assert (spec["query_size"], spec["key_size"], spec["value_size"], spec["hiddens"]) == (
        10,
        6,
        8,
        24,
    )
    exported = torch.load(tmp_path / "out.pt", weights_only=True)
    with torch.no_grad():
        expected = reference(exported["queries"], exported["keys"], exported["values"], None)
    torch.testing.assert_close(exported["output"], expected, atol=1e-5, rtol=0)


def test_option_contradicting_the_checkpoint_is_refused(cli, tmp_path):
    torch.save(torch_mha_checkpoint(False).state_dict(), tmp_path / "mha.pt")
    result = cli(
        "inspect", "--weights", str(tmp_path / "mha.pt"), "--hiddens", "60", "--heads", "5"
    )
    assert result.exit_code == 2
    assert "--hiddens 60 contradicts" in result.output
    assert "hiddens = 100" in result.output


def test_export_on_meta_is_refused_and_writes_nothing(cli, tmp_path):
    result = cli("inspect", "--device", "meta", "--export", str(tmp_path / "x.pt"))
    assert result.exit_code == 2
    assert "--device cpu" in result.output
    assert list(tmp_path.iterdir()) == []
