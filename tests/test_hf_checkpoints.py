"""load_hf_layer: one attention layer out of a real transformers model, read from a folder, a
single file, a sharded index and torch files, equals the model's own parameters; the config is
read as the model's own modules were built; bad input fails with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hf_models import HFModel, straddling_layer

from mha_cli.errors import MhaError
from mha_cli.hf.checkpoint import load_hf_layer
from mha_cli.layer.rope import inverse_frequencies

FAMILIES = ["bert", "roberta", "vit", "gpt2", "opt", "llama", "mistral", "qwen2", "qwen3"]
FAMILIES += ["gpt_neox", "gptj"]


def expected(hf: HFModel, layer: int) -> dict[str, torch.Tensor]:
    """d2l-named tensors taken from the in-memory module, split here independently."""
    att, family = hf.attention(layer), hf.family
    if family == "gpt2":  # Conv1D (in, out); c_attn's columns are q | k | v
        weight, bias, size = att.c_attn.weight, att.c_attn.bias, att.c_attn.weight.shape[0]
        state = {
            f"W_{p}.weight": weight[:, i * size : (i + 1) * size].T for i, p in enumerate("qkv")
        }
        state |= {f"W_{p}.bias": bias[i * size : (i + 1) * size] for i, p in enumerate("qkv")}
        return state | {"W_o.weight": att.c_proj.weight.T, "W_o.bias": att.c_proj.bias}
    if family == "gpt_neox":  # rows of head j: q_j (d rows), k_j, v_j
        weight, bias, d = att.query_key_value.weight, att.query_key_value.bias, att.head_size
        heads = weight.shape[0] // (3 * d)
        state = {}
        for i, p in enumerate("qkv"):
            rows = [j * 3 * d + i * d + r for j in range(heads) for r in range(d)]
            state |= {f"W_{p}.weight": weight[rows], f"W_{p}.bias": bias[rows]}
        return state | {"W_o.weight": att.dense.weight, "W_o.bias": att.dense.bias}
    if family in ("bert", "roberta"):
        parts = {"q": att.self.query, "k": att.self.key, "v": att.self.value}
        parts["o"] = att.output.dense
    else:
        parts = {p: getattr(att, f"{p}_proj") for p in "qkv"}
        parts["o"] = getattr(att, "o_proj", None) or att.out_proj
    state = {}
    for p, linear in parts.items():
        state[f"W_{p}.weight"] = linear.weight
        if linear.bias is not None:
            state[f"W_{p}.bias"] = linear.bias
    if family == "qwen3":
        state |= {"q_norm.weight": att.q_norm.weight, "k_norm.weight": att.k_norm.weight}
    return state


def assert_same(loaded: dict[str, torch.Tensor], hf: HFModel, layer: int) -> None:
    wanted = expected(hf, layer)
    assert sorted(loaded) == sorted(wanted)
    for name, tensor in wanted.items():
        assert torch.equal(loaded[name], tensor.detach()), name
        assert loaded[name].is_contiguous() or hf.family == "gpt_neox", name


def layers(hf: HFModel) -> list[int]:
    return [0, hf.num_layers - 1]


# ---------------------------------------------------------------------------------------------
# The model's own parameters, from every kind of file


@pytest.mark.parametrize("family", FAMILIES)
def test_from_the_folder(hf_models: dict[str, HFModel], family: str) -> None:
    hf = hf_models[family]
    for layer in layers(hf):
        loaded = load_hf_layer(hf.folder, layer)
        assert_same(loaded.state, hf, layer)
        assert loaded.config == hf.folder / "config.json"
        assert set(loaded.files.values()) == {hf.folder / "model.safetensors"}
        assert all(f".{layer}." in key for key in loaded.files)  # only this layer's keys


@pytest.mark.parametrize("family", FAMILIES)
def test_from_the_weights_file(hf_models: dict[str, HFModel], family: str) -> None:
    hf = hf_models[family]
    loaded = load_hf_layer(hf.folder / "model.safetensors", hf.num_layers - 1)
    assert_same(loaded.state, hf, hf.num_layers - 1)
    assert loaded.config == hf.folder / "config.json"  # the one beside the file


def test_from_a_sharded_index_where_a_layer_straddles_two_shards(
    hf_models: dict[str, HFModel],
) -> None:
    hf = hf_models["llama_sharded"]
    split = straddling_layer(hf.folder)
    assert split is not None
    index = hf.folder / "model.safetensors.index.json"
    for layer in {0, split, hf.num_layers - 1}:
        loaded = load_hf_layer(index, layer)
        assert_same(loaded.state, hf, layer)
    loaded = load_hf_layer(hf.folder, split)
    assert len(set(loaded.files.values())) == 2
    assert set(loaded.files) == {f"model.layers.{split}.self_attn.{p}_proj.weight" for p in "qkvo"}


def test_only_the_shards_of_the_layer_are_opened(
    hf_models: dict[str, HFModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors

    folder = shutil.copytree(hf_models["llama_sharded"].folder, tmp_path / "m")
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    needed = {weight_map[f"model.layers.1.self_attn.{p}_proj.weight"] for p in "qkvo"}
    for shard in set(weight_map.values()) - needed:
        (folder / shard).unlink()  # a partial download: the other layers' shards are absent
    opened: list[str] = []
    real = safetensors.safe_open

    def spy(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(safetensors, "safe_open", spy)
    assert_same(load_hf_layer(folder, 1).state, hf_models["llama_sharded"], 1)
    assert set(opened) == needed


@pytest.mark.parametrize("family", ["gpt2", "llama", "vit", "gpt_neox"])
def test_from_torch_files(hf_models: dict[str, HFModel], tmp_path: Path, family: str) -> None:
    # state_dict() has the in-memory names (ViT's differ from those on disk) and GPT-2's buffers
    hf = hf_models[family]
    state = dict(hf.model.state_dict())
    if family == "gpt2":  # older GPT-2 checkpoints also hold these mask buffers
        state["transformer.h.0.attn.bias"] = torch.ones(1, 1, 64, 64, dtype=torch.bool)
        state["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)
    shutil.copy(hf.folder / "config.json", tmp_path / "config.json")
    torch.save(state, tmp_path / "pytorch_model.bin")
    assert_same(load_hf_layer(tmp_path, 0).state, hf, 0)
    torch.save({"state_dict": state}, tmp_path / "model.pt")  # a training script's wrapper
    assert_same(load_hf_layer(tmp_path / "model.pt", 1).state, hf, 1)


def test_from_a_sharded_torch_index(hf_models: dict[str, HFModel], tmp_path: Path) -> None:
    # pytorch_model.bin.index.json, as older save_pretrained wrote: layer 0's q/k in one shard
    hf = hf_models["qwen3"]
    state = dict(hf.model.state_dict())
    keys = list(state)
    middle = keys.index("model.layers.0.self_attn.v_proj.weight")
    shards = {"pytorch_model-1.bin": keys[:middle], "pytorch_model-2.bin": keys[middle:]}
    for name, part in shards.items():
        torch.save({key: state[key] for key in part}, tmp_path / name)
    weight_map = {key: name for name, part in shards.items() for key in part}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    shutil.copy(hf.folder / "config.json", tmp_path / "config.json")
    loaded = load_hf_layer(tmp_path, 0)
    assert_same(loaded.state, hf, 0)
    assert {path.name for path in loaded.files.values()} == set(shards)


# What the keys leave unknown, given as options (a rotary layout also needs the rope's).
GIVEN = {"causal": True, "rope": "half", "rope_theta": 1e4, "rotary_dim": None, "window": None}
GIVEN |= {"norm_eps": 1e-6}


def test_without_a_config_the_keys_tell_the_family(
    hf_models: dict[str, HFModel], tmp_path: Path
) -> None:
    for family in ["qwen3", "qwen2", "gpt2", "gpt_neox"]:
        hf = hf_models[family]
        path = shutil.copy(hf.folder / "model.safetensors", tmp_path / f"{family}.safetensors")
        loaded = load_hf_layer(Path(path), 1, heads=4, given=GIVEN)
        assert (loaded.config, loaded.attention.family) == (None, family)
        assert loaded.assumed[0].startswith(f"the family: {family} (")
        kv_heads = hf.config.num_key_value_heads if family.startswith("qwen") else 4
        assert (loaded.attention.heads, loaded.attention.kv_heads) == (4, kv_heads)
        assert_same(loaded.state, hf, 1)


# ---------------------------------------------------------------------------------------------
# The config read as transformers built the modules


@pytest.mark.parametrize("family", FAMILIES)
def test_the_config_agrees_with_the_models_modules(
    hf_models: dict[str, HFModel], family: str
) -> None:
    hf = hf_models[family]
    buffers = dict(hf.model.named_buffers())
    for layer in layers(hf):
        a = load_hf_layer(hf.folder, layer).attention
        att = hf.attention(layer)
        head_dim = getattr(att, "head_dim", None) or getattr(att, "head_size", None)
        assert a.head_dim == (head_dim or att.self.attention_head_size), family
        assert a.heads * a.head_dim == expected(hf, layer)["W_q.weight"].shape[0]
        assert a.heads // a.kv_heads == getattr(att, "num_key_value_groups", 1)
        assert a.window == getattr(att, "sliding_window", None) or family == "mistral"
        causal = att.self.is_causal if family in ("bert", "roberta") else att.is_causal
        assert a.causal == causal
        inv_freq = next((b for n, b in buffers.items() if n.endswith("rotary_emb.inv_freq")), None)
        if inv_freq is not None:
            mine = inverse_frequencies(a.rotary_dim, a.rope_theta, a.rope_scaling)
            # a power computed by other code (and SIMD kernels): equal up to rounding
            torch.testing.assert_close(mine, inv_freq, rtol=1e-6, atol=0, msg=family)
    if family in ("gpt_neox", "gptj"):
        rotary = att.rotary_ndims if family == "gpt_neox" else att.rotary_dim
        assert a.rotary_dim == rotary
    if family == "mistral":
        assert a.window == hf.config.sliding_window == 3
    if family == "qwen2":
        windows = [load_hf_layer(hf.folder, i).attention.window for i in range(3)]
        assert windows == [att.sliding_window for att in map(hf.attention, range(3))]
        assert windows == [None, 3, 3]


# ---------------------------------------------------------------------------------------------
# Bad input: one line each


def fails(pattern: str, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(MhaError, match=pattern) as info:
        load_hf_layer(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def copy(hf: HFModel, tmp_path: Path) -> Path:
    return shutil.copytree(hf.folder, tmp_path / hf.family)


def edit_config(folder: Path, **changes: object) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def test_layer_beyond_the_model(hf_models: dict[str, HFModel], tmp_path: Path) -> None:
    hf = hf_models["llama"]
    fails(
        r"^--layer 2 is beyond the model: \S+config.json gives 2 layers; pick a layer from 0 to 1$",
        hf.folder,
        2,
    )
    bare = Path(shutil.copy(hf.folder / "model.safetensors", tmp_path / "bare.safetensors"))
    fails(r"^--layer 7 is beyond the model: \S+bare.safetensors has 2 layers; pick", bare, 7)


def test_missing_shard(hf_models: dict[str, HFModel], tmp_path: Path) -> None:
    folder = copy(hf_models["llama_sharded"], tmp_path)
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    shard = weight_map["model.layers.2.self_attn.q_proj.weight"]
    (folder / shard).unlink()
    message = fails(rf"^\S+index.json: shard {shard} \(holding model.layers.2", folder, 2)
    assert "download every shard" in message


def test_unsupported_family(hf_models: dict[str, HFModel], tmp_path: Path) -> None:
    folder = copy(hf_models["llama"], tmp_path)
    edit_config(folder, model_type="mamba")
    message = fails(
        r"^\S+config.json: model_type 'mamba' is not supported \(a state-space model: it has no "
        r"attention layer\); supported families: bert",
        folder,
    )
    assert "gpt_neox, gptj" in message


def test_unknown_rope_scaling(hf_models: dict[str, HFModel], tmp_path: Path) -> None:
    folder = copy(hf_models["llama"], tmp_path)
    edit_config(folder, rope_parameters={"rope_type": "ntk", "factor": 4.0, "rope_theta": 1e4})
    fails(
        r"^\S+config.json: rope scaling 'ntk' is not supported; supported: linear, llama3",
        folder,
    )


def test_truncated_and_malformed_headers_load_nothing(
    hf_models: dict[str, HFModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a tensor was read from a broken file")

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    original = (hf_models["gpt2"].folder / "model.safetensors").read_bytes()
    path = tmp_path / "model.safetensors"
    path.write_bytes(original[:100])  # cut inside the header
    fails(
        r"^\S+model.safetensors is not a valid safetensors file: it is truncated: its header", path
    )
    path.write_bytes(original[:-1000])  # cut inside the data
    fails(r"^\S+model.safetensors is truncated: its header places tensor data up to byte", path)
    path.write_bytes(len(b"{oops").to_bytes(8, "little") + b"{oops")
    fails(
        r"^\S+model.safetensors is not a valid safetensors file: its header is not valid JSON", path
    )
    path.write_bytes(b"\x80\x02abc")
    fails(r"^\S+ is not a valid safetensors file: it has 5 bytes", path)
    header = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    fails(r"^\S+ is not a valid safetensors file: its header entry for 'x' has data_offsets", path)


def test_config_contradicting_the_weights(hf_models: dict[str, HFModel], tmp_path: Path) -> None:
    folder = copy(hf_models["llama"], tmp_path)
    edit_config(folder, num_key_value_heads=4)
    fails(
        r"^model.layers.0.self_attn.k_proj.weight has shape \(16, 32\) but \S+config.json "
        r"implies \(32, 32\) \(kv_heads 4 x head_dim 8",
        folder,
    )
    edit_config(folder, num_key_value_heads=2, num_hidden_layers=5)
    fails(r"^\S+config.json gives 5 layers but \S+ holds 2; use the config.json saved", folder)
    edit_config(folder, num_hidden_layers=2, attention_bias=True)
    fails(
        r"^\S+config.json describes a llama layer with W_q bias, but the weights have none", folder
    )
    edit_config(folder, attention_bias=False, model_type="gpt2", n_embd=32, n_head=4, n_layer=2)
    fails(
        r"^config.json says gpt2, but \S+ holds no gpt2 attention keys "
        r"\(h.N.attn.c_attn.weight\); they look like llama",
        folder,
    )
    qwen2 = copy(hf_models["qwen2"], tmp_path)
    edit_config(qwen2, model_type="llama")  # the weights have q/k/v biases, llama's config none
    fails(
        r"^the weights hold model.layers.0.self_attn.k_proj.bias but \S+ describes a llama", qwen2
    )


def test_other_paths(hf_models: dict[str, HFModel], tmp_path: Path) -> None:
    fails(r"^\S+nowhere: no such file or folder", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    fails(
        r"^\S+empty holds none of model.safetensors, model.safetensors.index.json",
        tmp_path / "empty",
    )
    (tmp_path / "model.h5").write_bytes(b"x")
    fails(r"^\S+model.h5: unsupported file type '.h5'; give a model folder", tmp_path / "model.h5")
    legacy = tmp_path / "legacy.bin"
    torch.save(hf_models["gpt2"].model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    fails(
        r"^\S+legacy.bin is in torch's legacy \(pre-1.6\) format, which cannot be memory-mapped",
        legacy,
    )
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(2, 2)}, other)
    fails(
        r"^\S+other.safetensors: no attention layer of a known layout; found keys encoder.weight; "
        r"give a Hugging Face model of a supported family \(bert, roberta, vit, gpt2",
        other,
    )
    fails(
        r"^\S+m.safetensors has no config.json beside it: mha takes it for llama because its "
        r"keys have the llama layout .* so the number of heads, the causal mask, the rotary "
        r"embedding .* are unknown; give --config config.json \(the model's own\), or set them "
        r"with --heads --causal/--no-causal --rope --rope-theta --rotary-dim --window$",
        shutil.copy(hf_models["llama"].folder / "model.safetensors", tmp_path / "m.safetensors"),
    )
