"""Issue 16: one validation for every way a value arrives, options that override a config's
behaviour, values accepted but meaningless, and no silent NaN (items 2, 9, 12, 16, 18, 24)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import mha_cli
from mha_cli.errors import MhaError

LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def refused(result: Any, *words: str) -> str:
    """Exit 2 and one line on stderr from mha, holding `words`; no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("mha") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.stderr, result.stderr
    return result.stderr


def toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text('rope = "half"\n' + text + "\n")
    return str(path)


def model_config(tmp_path: Path, **values: Any) -> str:
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        **values,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


# --- 16.2 and 16.12: TOML rope_scaling and rope_theta, validated as config.json's are ---------

BAD_SCALINGS = {
    "factor=0": 'rope_scaling = {rope_type = "linear", factor = 0}',
    "factor=-1": 'rope_scaling = {rope_type = "linear", factor = -1}',
    "factor=true": 'rope_scaling = {rope_type = "linear", factor = true}',
    'factor="x"': 'rope_scaling = {rope_type = "linear", factor = "x"}',
    "factor=[1]": 'rope_scaling = {rope_type = "linear", factor = [1]}',
    "factor=inf": 'rope_scaling = {type = "linear", factor = inf}',
    "llama3 high=low": "rope_scaling = {rope_type = 'llama3', factor = 8.0, low_freq_factor = 2.0, "
    "high_freq_factor = 2.0, original_max_position_embeddings = 8192}",
    "theta inf": "rope_theta = inf",
    "theta nan": "rope_theta = nan",
    "theta 0": "rope_theta = 0",
    "theta overflowing": "rope_theta = 1e-50",
}


@pytest.mark.parametrize("line", BAD_SCALINGS.values(), ids=BAD_SCALINGS.keys())
@pytest.mark.parametrize("command", ["inspect", "heatmap", "heads"])
def test_toml_rope_values_are_refused_not_run_into_nan(cli, tmp_path, line, command):
    extra = ["--terminal"] if command == "heatmap" else []
    message = refused(cli(command, "--config", toml(tmp_path, line), *extra))
    assert "c.toml" in message or "theta" in message  # it names where the value came from


@pytest.mark.parametrize("theta", ["inf", "nan", "-inf", "1e-50"])
def test_rope_theta_option_must_be_finite(cli, theta):
    refused(cli("inspect", "--rope", "half", "--rope-theta", theta), "--rope-theta")


def test_legacy_type_key_is_read_as_rope_type(cli, tmp_path):
    legacy = cli("inspect", "--config", toml(tmp_path, 'rope_scaling = {type = "linear", '
                 "factor = 2.0}"), "--format", "json")  # fmt: skip
    assert legacy.exit_code == 0, legacy.output
    (tmp_path / "n.toml").write_text(
        'rope = "half"\nrope_scaling = {rope_type = "linear", factor = 2.0}\n'
    )
    named = cli("inspect", "--config", str(tmp_path / "n.toml"), "--format", "json")
    plain = cli("inspect", "--rope", "half", "--format", "json")
    stages = [json.loads(r.stdout)["stages"] for r in (legacy, named, plain)]
    assert json.loads(legacy.stdout)["spec"]["rope_scaling"] == {
        "rope_type": "linear",
        "factor": 2.0,
    }
    assert stages[0] == stages[1]  # the same layer, whichever spelling
    assert stages[0] != stages[2]  # and the scaling is applied


@pytest.mark.parametrize(
    "scaling",
    [
        {"type": "linear", "factor": 0},
        {"type": "linear", "factor": "x"},
        {"rope_type": "linear", "factor": [1]},
        {"rope_type": "linear"},
        {"rope_type": "yarn", "factor": 2.0},
        {**LLAMA3, "high_freq_factor": 1.0},
        {**LLAMA3, "factor": math.nan},
        "x",
    ],
    ids=str,
)
def test_python_api_raises_mha_error_for_every_bad_scaling(scaling):
    with pytest.raises(MhaError):
        mha_cli.inspect(rope="half", rope_scaling=scaling)


def test_python_api_accepts_the_legacy_type_key():
    report = mha_cli.inspect(rope="half", rope_scaling={"type": "linear", "factor": 2.0})
    assert report.spec.to_dict()["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}
    assert all(torch.isfinite(t).all() for t in report.tensors.values())


# --- 16.9: a --layer that is not a whole number, with --config -------------------------------


@pytest.mark.parametrize("layer", ["all", "1.5", "x"])
@pytest.mark.parametrize("command", ["inspect", "heatmap", "compare", "heads", "diagram"])
def test_non_integer_layer_with_config_is_one_line(cli, command, layer):
    refused(cli(command, "--config", "gpt2-small", "--layer", layer), "--layer")


def test_layer_all_with_config_says_which_command_takes_it(cli):
    refused(cli("inspect", "--config", "gpt2-small", "--layer", "all"), "mha weights")


# --- 16.18: options override the config's behaviour -----------------------------------------


def test_rope_none_on_a_llama_config_turns_its_scaling_off(cli, tmp_path):
    path = model_config(tmp_path, rope_theta=500000.0, rope_scaling=LLAMA3)
    result = cli("inspect", "--config", path, "--rope", "none", "--format", "json")
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["spec"]
    assert spec["rope"] == "none" and spec["rope_scaling"] is None and spec["rotary_dim"] is None
    assert not any("rope" in s["name"] for s in json.loads(result.stdout)["stages"])


def test_no_causal_on_a_mistral_config_drops_its_window(cli, tmp_path):
    path = model_config(tmp_path, model_type="mistral", sliding_window=3)
    result = cli("inspect", "--config", path, "--no-causal", "--format", "json")
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["spec"]
    assert spec["causal"] is False and spec["window"] is None


def test_options_that_conflict_with_each_other_are_named(cli, tmp_path):
    path = model_config(tmp_path, model_type="mistral", sliding_window=3)
    refused(
        cli("inspect", "--config", path, "--no-causal", "--window", "3"),
        "--window 3",
        "--no-causal",
    )
    refused(cli("inspect", "--rope", "none", "--rotary-dim", "8"), "--rotary-dim 8", "--rope none")


def test_config_values_that_conflict_are_named_with_the_config(cli, tmp_path):
    (tmp_path / "w.toml").write_text("window = 3\ncausal = false\n")
    message = refused(cli("inspect", "--config", str(tmp_path / "w.toml")))
    assert "window = 3 (config" in message and "causal = false (config" in message
    assert "--window" not in message.split(":")[0] and "--causal" not in message.split(":")[0]


def test_inputs_wider_than_the_model_blame_the_config_not_an_option(cli, tmp_path):
    path = model_config(tmp_path)
    inputs = tmp_path / "in100.pt"
    torch.save(
        {
            "queries": torch.randn(2, 4, 100),
            "keys": torch.randn(2, 6, 100),
            "values": torch.randn(2, 6, 100),
        },
        inputs,
    )
    message = refused(cli("inspect", "--config", path, "--inputs", str(inputs)))
    assert "--query-size" not in message  # the user never gave it
    assert "config" in message and "query_size = 64" in message and "100" in message


# --- 16.24: accepted but meaningless -----------------------------------------------------------


@pytest.mark.parametrize("command", ["inspect", "heatmap", "heads", "compare"])
def test_layer_without_a_model_is_refused(cli, command):
    refused(cli(command, "--layer", "3"), "--layer 3", "--weights")


def test_layer_with_a_model_config_is_fine(cli, tmp_path):
    result = cli("inspect", "--config", model_config(tmp_path), "--layer", "1")
    assert result.exit_code == 0, result.output


def test_diagram_checks_the_device_it_does_not_use(cli, tmp_path):
    refused(cli("diagram", "--device", "xyz", "--out", str(tmp_path / "d.svg")), "--device")
    assert not (tmp_path / "d.svg").exists()


@pytest.mark.parametrize("expect", ["params=-1", "flops=-5", "head_dim=0", "params=x"])
def test_negative_expected_figures_are_a_usage_error(cli, expect):
    refused(cli("inspect", "--expect", expect), "--expect")


# --- 16.16: non-finite weights in the terminal heatmap ----------------------------------------


def test_terminal_heatmap_marks_overflowed_weights(cli, tmp_path):
    """float16 scores of inputs this large overflow; the weights are NaN. The grid marks them
    and a note says why, instead of failing as a stdout error (exit 74)."""
    inputs = tmp_path / "big.pt"
    torch.save(
        {
            "queries": torch.full((2, 4, 100), 3000.0),
            "keys": torch.full((2, 6, 100), 3000.0),
            "values": torch.randn(2, 6, 100),
        },
        inputs,
    )
    result = cli("heatmap", "--terminal", "--dtype", "float16", "--inputs", str(inputs))
    assert result.exit_code == 0, (result.output, result.exception)
    assert "!!" in result.stdout and "not finite" in result.stdout
    assert "not finite" in result.stderr and "float16" in result.stderr


@pytest.mark.parametrize(
    ("family", "option", "field"),
    [("llama", "--rope", "rotary_dim"), ("mistral", "--no-causal", "window")],
)
def test_options_override_a_model_folder_too(cli, hf_models, family, option, field):
    args = [option, "none"] if option == "--rope" else [option]
    result = cli("inspect", "--weights", str(hf_models[family].folder), *args, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["spec"][field] is None
