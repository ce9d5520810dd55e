"""Hugging Face checkpoints are never read silently wrong: without config.json the behaviour is
unknown and refused (or taken from the options, the rest listed on stderr); families mha does not
read are named; hostile config and index files, gaps in the layers, damaged layers and NaN
weights each give one line (or a flag), through the command line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from hf_models import HFModel
from safetensors.torch import load_file, save_file

OPTIONS = ["--heads", "4", "--causal", "--rope", "half", "--rope-theta", "1e6"]
OPTIONS += ["--rotary-dim", "12", "--window", "none", "--norm-eps", "1e-6"]


@pytest.fixture(scope="module")
def others(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("transformers")
    from hf_others import build_others

    return build_others(tmp_path_factory.mktemp("others"))


def refused(result, pattern: str) -> str:  # type: ignore[no-untyped-def]
    import re

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def bare(folder: Path, tmp_path: Path, name: str = "model.safetensors") -> Path:
    """The weights alone, as often downloaded: no config.json beside them."""
    target = tmp_path / f"bare-{folder.name}"
    target.mkdir()
    return Path(shutil.copy(folder / name, target / name))


# ---------------------------------------------------------------------------------------------
# 15.2: without config.json, key names tell sizes, never behaviour


def test_without_config_the_unknown_behaviour_is_refused(cli, hf_models, tmp_path) -> None:
    path = bare(hf_models["qwen3"].folder, tmp_path)
    line = refused(
        cli("inspect", "--weights", str(path)),
        r"has no config.json beside it: mha takes it for qwen3 because its layers have q_norm "
        r"and k_norm of 12 values.*the rope base.*the sliding window.* are unknown; give "
        r"--config config.json \(the model's own\), or set them with --heads .*--rope-theta",
    )
    assert "Llama, Mistral" in line  # the families that share the keys
    # only --heads is not enough: the rope base is still unknown
    refused(cli("inspect", "--weights", str(path), "--heads", "4"), r"the rope base")


def test_options_supply_the_behaviour_and_stderr_lists_the_assumptions(
    cli, hf_models, tmp_path
) -> None:
    hf = hf_models["qwen3"]
    path = bare(hf.folder, tmp_path)
    result = cli("inspect", "--weights", str(path), *OPTIONS, "--format", "json")
    assert result.exit_code == 0, result.output
    assert "assumed: the family: qwen3" in result.stderr
    for assumption in ("1/sqrt(head_dim)", "no soft-capping", "no rope scaling", "RMSNorm"):
        assert assumption in result.stderr
    spec = json.loads(result.stdout)["spec"]
    assert (spec["rope_theta"], spec["heads"], spec["kv_heads"]) == (1e6, 4, 2)
    result = cli("weights", "--weights", str(path), *OPTIONS, "--layer", "all")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("assumed: the family: qwen3") == 1  # said once, not per layer
    # the model's own config.json through --config: the same run, its values
    result = cli("inspect", "--weights", str(path), "--config", str(hf.folder / "config.json"))
    assert result.exit_code == 0, result.output


def test_without_config_a_wrong_heads_is_not_blamed_on_a_config(cli, hf_models, tmp_path) -> None:
    path = bare(hf_models["llama"].folder, tmp_path)
    options = ["--causal", "--rope", "half", "--rope-theta", "1e4", "--window", "none"]
    line = refused(
        cli("inspect", "--weights", str(path), "--heads", "1", "--rotary-dim", "32", *options),
        r"--heads 1 makes heads of 32 features, which do not divide the 16 outputs of W_k",
    )
    assert "config" not in line


def test_without_config_a_whole_projection_norm_is_refused(cli, others, tmp_path) -> None:
    path = bare(others["olmo2"], tmp_path)
    for extra in ([], OPTIONS):
        line = refused(
            cli("inspect", "--weights", str(path), *extra),
            r"q_norm.weight has 32 values, as many as W_q's outputs: a q/k norm over the whole "
            r"projection \(as OLMo 2 has\); .*give --config config.json",
        )
        assert "fix the config" not in line
        assert "not supported" not in line  # it is, with its config.json


def test_gemma3_without_config_is_not_run_as_qwen3(cli, others, tmp_path) -> None:
    path = bare(others["gemma3"], tmp_path)
    refused(cli("inspect", "--weights", str(path)), r"mha takes it for qwen3 .* are unknown")
    result = cli("inspect", "--weights", str(path), *OPTIONS[:7], "--rotary-dim", "8",
                 *OPTIONS[9:])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "assumed: the family: qwen3" in result.stderr  # the guess is said, not hidden


@pytest.mark.parametrize(
    ("family", "seen", "why"),
    [
        ("gpt_neo", "GPT-Neo", "not supported"),
        ("mamba", "Mamba", "no attention layer"),
    ],
)
def test_unsupported_families_are_named(cli, others, tmp_path, family, seen, why) -> None:
    folder = others[family]
    for weights in (folder, folder / "model.safetensors"):  # the config says the family
        line = refused(cli("inspect", "--weights", str(weights)), rf"model_type '{family}")
        assert "not supported yet" not in line
    line = refused(cli("inspect", "--weights", str(bare(folder, tmp_path))), seen)
    assert why in line
    assert "not supported yet" not in line
    if family == "mamba":
        assert "has no attention layer" in line


@pytest.mark.parametrize(("family", "seen"), [("bart", "BART"), ("whisper", "Whisper")])
def test_encoder_decoder_weights_need_their_config(cli, others, tmp_path, family, seen) -> None:
    """Whisper and BART are read with their config.json (BartModel's keys have no `model.`
    prefix); their weights alone are refused by name, never read as OPT's or CLIP's layers."""
    folder = others[family]
    for kind in ("encoder", "decoder", "cross"):
        result = cli("inspect", "--weights", str(folder), "--attention", kind, "--layer", "1")
        assert result.exit_code == 0, result.output
    line = refused(cli("inspect", "--weights", str(bare(folder, tmp_path))), seen)
    assert "give --config config.json" in line and "--attention" in line
    assert "not supported" not in line  # it is, with its config.json


@pytest.mark.parametrize("family", ["opt", "gptj", "gpt2", "llama"])
def test_a_file_inside_a_model_folder_is_the_folder(cli, hf_models, family) -> None:
    folder = hf_models[family].folder
    as_folder = cli("inspect", "--weights", str(folder), "--format", "json")
    as_file = cli("inspect", "--weights", str(folder / "model.safetensors"), "--format", "json")
    assert as_folder.exit_code == as_file.exit_code == 0, as_file.output
    specs = [json.loads(result.stdout)["spec"] for result in (as_folder, as_file)]
    assert specs[0] | {"weights": None} == specs[1] | {"weights": None}


def test_a_file_beside_an_unsupported_config_is_read_as_the_folder(cli, others, tmp_path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(others["gpt_neo"] / "config.json", folder)
    state = {"encoder.layer.0.attn.out_proj.weight": torch.randn(4, 4)}
    save_file(state | {"encoder.layer.0.attn.in_proj_weight": torch.randn(12, 4)},
              folder / "model.safetensors")  # fmt: skip
    for weights in (folder, folder / "model.safetensors"):
        refused(cli("inspect", "--weights", str(weights)), r"model_type 'gpt_neo' is not supported")


def test_pytorch_model_bin_given_as_a_file(cli, hf_models, tmp_path) -> None:
    for family in ("opt", "gpt2"):
        folder = tmp_path / family
        folder.mkdir()
        shutil.copy(hf_models[family].folder / "config.json", folder)
        torch.save(load_file(hf_models[family].folder / "model.safetensors"),
                   folder / "pytorch_model.bin")  # fmt: skip
        result = cli("inspect", "--weights", str(folder / "pytorch_model.bin"), "--layer", "1")
        assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------------------------
# 16.1, 16.3: config and index files that exist but cannot be read


def copy(hf: HFModel, tmp_path: Path) -> Path:
    return Path(shutil.copytree(hf.folder, tmp_path / hf.family))


def test_an_unreadable_config_is_an_error_not_an_absence(cli, hf_models, tmp_path) -> None:
    folder = copy(hf_models["qwen3"], tmp_path)
    config = folder / "config.json"
    config.unlink()
    config.symlink_to(tmp_path / "gone.json")  # a half-cleaned cache
    for weights in (folder, folder / "model.safetensors"):
        refused(cli("inspect", "--weights", str(weights), *OPTIONS),
                r"config.json is a broken link \(to \S+gone.json\)")  # fmt: skip
    config.unlink()
    config.mkdir()
    refused(cli("inspect", "--weights", str(folder)), r"config.json is a folder, not a regular")
    config.rmdir()
    os.mkfifo(config)
    refused(cli("inspect", "--weights", str(folder)), r"config.json is a FIFO \(named pipe\)")


def test_config_and_index_linked_to_dev_zero_or_huge(cli, hf_models, tmp_path) -> None:
    zero = tmp_path / "z.json"
    zero.symlink_to("/dev/zero")
    refused(cli("inspect", "--config", str(zero)), r"z.json is a character device, not a regular")
    toml = tmp_path / "z.toml"
    toml.symlink_to("/dev/zero")
    refused(
        cli("inspect", "--config", str(toml)), r"^mha: --config \S+z.toml is a character device"
    )
    toml.unlink()
    os.mkfifo(toml)
    refused(cli("inspect", "--config", str(toml)), r"z.toml is a FIFO \(named pipe\), not a")
    big = tmp_path / "big.json"
    big.write_text(" " * (9 * 2**20) + "{}")
    refused(cli("inspect", "--config", str(big)), r"big.json is larger than 8 MiB")
    folder = copy(hf_models["llama_sharded"], tmp_path)
    index = folder / "model.safetensors.index.json"
    index.unlink()
    index.symlink_to("/dev/zero")
    refused(cli("inspect", "--weights", str(index)), r"index.json is a character device")
    refused(cli("inspect", "--weights", str(folder)), r"index.json is a character device")
    index.unlink()
    os.mkfifo(index)
    refused(cli("inspect", "--weights", str(folder)), r"index.json is a FIFO")
    fifo = tmp_path / "w.safetensors"  # a weights file that would block: refused unread
    os.mkfifo(fifo)
    refused(
        cli("inspect", "--weights", str(fifo)),
        r"w.safetensors is a FIFO \(named pipe\), not a regular file",
    )


# ---------------------------------------------------------------------------------------------
# 16.14, 16.17: config values that crashed, and one transformers accepts


def edit_config(folder: Path, **changes: object) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


@pytest.mark.parametrize(
    ("family", "changes", "pattern"),
    [
        ("qwen2", {"use_sliding_window": True, "max_window_layers": None}, "max_window_layers"),
        ("qwen3", {"use_sliding_window": True, "max_window_layers": "28"}, "max_window_layers"),
        ("qwen3", {"layer_types": 5}, r"layer_types = 5 should be a list"),
        ("llama", {"rope_parameters": {"full_attention": "x"}}, "should be an object"),
        ("llama", {"layer_types": ["full_attention"] * 2,
                   "rope_parameters": {"full_attention": "x"}}, "should be an object"),
        ("gpt_neox", {"rope_parameters": {"partial_rotary_factor": float("inf"),
                                          "rope_theta": 5000}}, "partial_rotary_factor"),
        ("llama", {"partial_rotary_factor": float("inf")}, "partial_rotary_factor"),
    ],
)  # fmt: skip
def test_config_values_that_crashed(cli, hf_models, tmp_path, family, changes, pattern) -> None:
    folder = copy(hf_models[family], tmp_path)
    edit_config(folder, **changes)
    text = (folder / "config.json").read_text().replace("Infinity", "1e400")
    (folder / "config.json").write_text(text)
    refused(cli("inspect", "--weights", str(folder)), pattern)
    refused(cli("inspect", "--config", str(folder / "config.json")), pattern)


def test_deeply_nested_json(cli, tmp_path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    refused(cli("inspect", "--config", str(path)), r"deep.json nests JSON values too deeply")


def test_null_kv_heads_means_one_per_head(cli, hf_models, tmp_path) -> None:
    for family in ("qwen2", "qwen3"):
        folder = copy(hf_models[family], tmp_path)
        edit_config(folder, num_key_value_heads=None)
        result = cli("inspect", "--config", str(folder / "config.json"), "--format", "json",
                     "--device", "meta")  # fmt: skip
        assert result.exit_code == 0, result.output
        spec = json.loads(result.stdout)["spec"]
        assert spec["kv_heads"] in (None, spec["heads"])


# ---------------------------------------------------------------------------------------------
# 16.6, 16.20: layers counted from the keys present; a layer that lacks a tensor


def test_a_far_layer_index_is_not_counted_up_to(cli, hf_models, tmp_path) -> None:
    folder = copy(hf_models["llama"], tmp_path)
    tensors = load_file(folder / "model.safetensors")
    for key in [k for k in tensors if k.startswith("model.layers.1.")]:
        tensors[key.replace("layers.1.", "layers.100000000.")] = tensors.pop(key)
    save_file(tensors, folder / "model.safetensors")
    (folder / "config.json").unlink()
    for layer in ("all", "0"):
        refused(
            cli("weights", "--weights", str(folder), "--layer", layer, *OPTIONS[:2]),
            r"names attention layers 0, 100000000 of a llama model but not layer 1; the file "
            "is incomplete",
        )


def test_a_layer_without_o_proj_names_the_tensor(cli, hf_models, tmp_path) -> None:
    folder = copy(hf_models["llama"], tmp_path)
    tensors = load_file(folder / "model.safetensors")
    del tensors["model.layers.1.self_attn.o_proj.weight"]
    save_file(tensors, folder / "model.safetensors")
    refused(
        cli("inspect", "--weights", str(folder), "--layer", "1"),
        r"lacks model.layers.1.self_attn.o_proj.weight of layer 1",
    )


# ---------------------------------------------------------------------------------------------
# 16.21: mha weights flags a non-finite head of a Hugging Face model


def test_weights_flags_nan_in_a_model_layer(cli, hf_models, tmp_path) -> None:
    folder = copy(hf_models["llama"], tmp_path)
    tensors = load_file(folder / "model.safetensors")
    tensors["model.layers.0.self_attn.q_proj.weight"][9, 3] = float("nan")  # head 1 (d = 8)
    save_file(tensors, folder / "model.safetensors")
    result = cli("weights", "--weights", str(folder))
    assert result.exit_code == 0, result.output
    assert "flag: non-finite values in the slices of heads 1\n" in result.stdout
    refused(cli("inspect", "--weights", str(folder)), r"q_proj.weight")  # a run still refuses


def test_clip_without_config_is_named_and_asks_for_it(cli, others, tmp_path) -> None:
    """A CLIP tower is read with its config.json (causal or not); the bare weights name CLIP."""
    assert cli("inspect", "--weights", str(others["clip"])).exit_code == 0
    line = refused(cli("inspect", "--weights", str(bare(others["clip"], tmp_path))), "CLIP")
    assert "--config config.json" in line and "not supported" not in line


def test_gpt_bigcode_without_config_is_named_and_asks_for_it(cli, others, tmp_path) -> None:
    """Read with its config.json; the bare weights are never taken for GPT-2's Conv1D."""
    assert cli("inspect", "--weights", str(others["gpt_bigcode"])).exit_code == 0
    bare_path = bare(others["gpt_bigcode"], tmp_path)
    line = refused(cli("inspect", "--weights", str(bare_path)), "GPTBigCode")
    assert "--config config.json" in line and "expected (" not in line
    assert "not supported" not in line


def test_mpt_without_config_is_named_and_asks_for_it(cli, others, tmp_path) -> None:
    assert cli("inspect", "--weights", str(others["mpt"])).exit_code == 0
    line = refused(cli("inspect", "--weights", str(bare(others["mpt"], tmp_path))), "MPT")
    assert "--config config.json" in line and "not supported" not in line
