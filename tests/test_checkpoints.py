"""load_checkpoint: real checkpoints of each layout map to d2l names unchanged; bad files fail
with one line that names the file."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mha_cli.errors import MhaError
from mha_cli.files.checkpoints import Checkpoint, load_checkpoint
from mha_cli.files.layouts import D2L_ADDITIVE, D2L_MHA, TORCH_PACKED, TORCH_SEPARATE

FORMATS = ["pt", "safetensors"]


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    return path


def fails(path: Path, pattern: str) -> str:
    """Load `path`, expect an MhaError that starts with the file's name and matches `pattern`."""
    with pytest.raises(MhaError, match=pattern) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


class D2lAttention(nn.Module):
    """The parameters of d2l's MultiHeadAttention, with optional variants' sizes."""

    def __init__(
        self, q: int = 6, k: int = 7, v: int = 8, hiddens: int = 12, **sizes: int | bool
    ) -> None:
        super().__init__()
        bias = bool(sizes.get("bias", False))
        self.W_q = nn.Linear(q, hiddens, bias=bias)
        self.W_k = nn.Linear(k, int(sizes.get("k_out", hiddens)), bias=bias)
        self.W_v = nn.Linear(v, int(sizes.get("v_out", hiddens)), bias=bias)
        self.W_o = nn.Linear(int(sizes.get("concat", hiddens)), hiddens, bias=bias)


def d2l_state(**sizes: int | bool) -> dict[str, torch.Tensor]:
    return D2lAttention(**sizes).state_dict()


# ---------------------------------------------------------------------------------------------
# Layouts


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("bias", [True, False])
def test_torch_packed(tmp_path: Path, fmt: str, bias: bool) -> None:
    mha = nn.MultiheadAttention(100, 5, bias=bias)
    original = mha.state_dict()
    checkpoint = load_checkpoint(save(original, tmp_path / f"mha.{fmt}"))

    assert checkpoint.layout == "torch.nn.MultiheadAttention (packed in_proj)" == TORCH_PACKED
    assert sorted(checkpoint.keys_found) == sorted(original)
    weights = original["in_proj_weight"]
    for i, name in enumerate(["W_q", "W_k", "W_v"]):
        assert torch.equal(checkpoint.state[f"{name}.weight"], weights[i * 100 : (i + 1) * 100])
    assert torch.equal(checkpoint.state["W_o.weight"], original["out_proj.weight"])
    if bias:
        for i, name in enumerate(["W_q", "W_k", "W_v"]):
            part = original["in_proj_bias"][i * 100 : (i + 1) * 100]
            assert torch.equal(checkpoint.state[f"{name}.bias"], part)
        assert torch.equal(checkpoint.state["W_o.bias"], original["out_proj.bias"])
        assert len(checkpoint.state) == 8
    else:
        assert sorted(checkpoint.state) == ["W_k.weight", "W_o.weight", "W_q.weight", "W_v.weight"]


def test_torch_packed_projects_like_torch(tmp_path: Path) -> None:
    """The split is the one torch uses: q = x W_q^T + b_q reproduces torch's own projection."""
    mha = nn.MultiheadAttention(100, 5)
    checkpoint = load_checkpoint(save(mha.state_dict(), tmp_path / "mha.pt"))
    x = torch.randn(3, 100)
    w, b = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
    expected_k = nn.functional.linear(x, w, b)[:, 100:200]
    got_k = nn.functional.linear(x, checkpoint.state["W_k.weight"], checkpoint.state["W_k.bias"])
    assert torch.allclose(got_k, expected_k)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("bias", [True, False])
def test_torch_separate(tmp_path: Path, fmt: str, bias: bool) -> None:
    mha = nn.MultiheadAttention(100, 5, kdim=30, vdim=40, bias=bias)
    original = mha.state_dict()
    checkpoint = load_checkpoint(save(original, tmp_path / f"mha.{fmt}"))

    assert checkpoint.layout == TORCH_SEPARATE
    assert checkpoint.layout == "torch.nn.MultiheadAttention (separate q/k/v projections)"
    for p in "qkv":
        assert torch.equal(checkpoint.state[f"W_{p}.weight"], original[f"{p}_proj_weight"])
    assert checkpoint.state["W_k.weight"].shape == (100, 30)
    assert checkpoint.state["W_v.weight"].shape == (100, 40)
    assert torch.equal(checkpoint.state["W_o.weight"], original["out_proj.weight"])
    assert ("W_q.bias" in checkpoint.state) is bias
    if bias:
        assert torch.equal(checkpoint.state["W_v.bias"], original["in_proj_bias"][200:])
        assert torch.equal(checkpoint.state["W_o.bias"], original["out_proj.bias"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("bias", [True, False])
def test_d2l(tmp_path: Path, fmt: str, bias: bool) -> None:
    original = d2l_state(bias=bias)
    checkpoint = load_checkpoint(save(original, tmp_path / f"d2l.{fmt}"))

    assert checkpoint.layout == "d2l MultiHeadAttention" == D2L_MHA
    assert sorted(checkpoint.state) == sorted(original)
    for name, tensor in original.items():
        assert torch.equal(checkpoint.state[name], tensor)


@pytest.mark.parametrize(
    "sizes",
    [
        {"k_out": 4, "v_out": 4},  # grouped-query: 3 query heads share each key-value head
        {"k_out": 4, "v_out": 12, "concat": 12 * 3},  # full values: W_o reads heads * hiddens
    ],
    ids=["grouped-query", "full-values"],
)
def test_d2l_variants_are_accepted(tmp_path: Path, sizes: dict[str, int]) -> None:
    original = d2l_state(**sizes)
    checkpoint = load_checkpoint(save(original, tmp_path / "d2l.pt"))
    assert all(torch.equal(checkpoint.state[n], t) for n, t in original.items())


@pytest.mark.parametrize("fmt", FORMATS)
def test_additive(tmp_path: Path, fmt: str) -> None:
    original = {
        "W_q.weight": torch.randn(8, 20),
        "W_k.weight": torch.randn(8, 2),
        "w_v.weight": torch.randn(1, 8),
    }
    checkpoint = load_checkpoint(save(original, tmp_path / f"additive.{fmt}"))
    assert checkpoint.layout == "d2l AdditiveAttention" == D2L_ADDITIVE
    assert sorted(checkpoint.state) == sorted(original)
    assert all(torch.equal(checkpoint.state[n], t) for n, t in original.items())


@pytest.mark.parametrize("fmt", FORMATS)
def test_prefix_is_stripped(tmp_path: Path, fmt: str) -> None:
    original = d2l_state(bias=True)
    prefixed = {f"encoder.attention.{k}": v for k, v in original.items()}
    checkpoint = load_checkpoint(save(prefixed, tmp_path / f"model.{fmt}"))
    assert checkpoint.layout == D2L_MHA
    assert sorted(checkpoint.keys_found) == sorted(prefixed)
    assert all(torch.equal(checkpoint.state[n], t) for n, t in original.items())


def test_layer_inside_a_larger_model(tmp_path: Path) -> None:
    """Other modules' keys beside one attention layer are not in the way."""
    model = nn.ModuleDict({"attn": nn.MultiheadAttention(16, 2), "ffn": nn.Linear(16, 16)})
    checkpoint = load_checkpoint(save(model.state_dict(), tmp_path / "model.pt"))
    assert checkpoint.layout == TORCH_PACKED
    assert checkpoint.keys_found[0] == "attn.in_proj_weight"
    assert torch.equal(checkpoint.state["W_o.weight"], model["attn"].out_proj.weight.detach())


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_wrapped_state_dict(tmp_path: Path, wrapper: str) -> None:
    original = d2l_state()
    path = tmp_path / "train.pt"
    torch.save({wrapper: original, "epoch": 3, "lr": 0.1}, path)
    checkpoint = load_checkpoint(path)
    assert all(torch.equal(checkpoint.state[n], t) for n, t in original.items())


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_dtype_is_kept(tmp_path: Path, dtype: torch.dtype) -> None:
    original = {k: v.to(dtype) for k, v in d2l_state(bias=True).items()}
    checkpoint = load_checkpoint(save(original, tmp_path / "d2l.safetensors"))
    assert all(t.dtype == dtype for t in checkpoint.state.values())
    assert all(torch.equal(checkpoint.state[n], t) for n, t in original.items())


def test_checkpoint_is_frozen(tmp_path: Path) -> None:
    checkpoint = load_checkpoint(save(d2l_state(), tmp_path / "d2l.pt"))
    assert isinstance(checkpoint, Checkpoint)
    with pytest.raises(AttributeError):
        checkpoint.layout = "x"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Files that are not checkpoints


def test_missing_file(tmp_path: Path) -> None:
    fails(tmp_path / "nope.pt", r"nope\.pt: no such file; check the path$")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "run.pt").mkdir()
    fails(tmp_path / "run.pt", r"run\.pt is a folder, not a file; give the path of a \.pt")


@pytest.mark.parametrize("name", ["weights.npz", "weights"])
def test_extension(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"x")
    message = fails(tmp_path / name, r"(unsupported file type '\.npz'|no file extension); give a")
    assert ".pt, .pth (torch.save) or .safetensors" in message


@pytest.mark.parametrize("data", [b"", b"hello, not a checkpoint", bytes(range(256)) * 4])
def test_garbage_pt(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(data)
    fails(path, r"w\.pt is not a file torch\.load can read \(damaged or another format\); save a")


def test_truncated_pt(tmp_path: Path) -> None:
    path = save(d2l_state(), tmp_path / "w.pt")
    path.write_bytes(path.read_bytes()[:300])
    fails(path, r"is not a file torch\.load can read")


def test_garbage_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"hello, not a checkpoint")
    fails(path, r"^.*w\.safetensors is not a safetensors file \(.+\); save it with safetensors")


def test_swapped_extensions_are_recognised(tmp_path: Path) -> None:
    pt_bytes = save(d2l_state(), tmp_path / "a.pt").read_bytes()
    st_bytes = save(d2l_state(), tmp_path / "b.safetensors").read_bytes()
    (tmp_path / "pt.safetensors").write_bytes(pt_bytes)
    (tmp_path / "st.pt").write_bytes(st_bytes)
    fails(tmp_path / "pt.safetensors", r"; it looks like a torch\.save file: rename it to \.pt$")
    fails(tmp_path / "st.pt", r"; it looks like a safetensors file: rename it to \.safetensors$")


class Hostile:
    """Unpickling this creates `marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("how", ["torch.save", "raw pickle"])
def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"W_q.weight": Hostile(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))

    fails(
        path,
        r"evil\.pt refused: it holds Python objects other than tensors \(.*open\), which "
        r"weights-only loading refuses because rebuilding them would run code from the file "
        r"\(nothing from it was run\); save a state_dict: torch\.save\("
        r"layer\.state_dict\(\), path\)$",
    )
    assert not marker.exists()

    # The payload is live: an unsafe load would have run it.
    if how == "torch.save":
        loaded = torch.load(path, weights_only=False)
    else:
        loaded = pickle.loads(path.read_bytes())
    loaded["W_q.weight"].close()
    assert marker.exists()


def test_whole_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(nn.MultiheadAttention(8, 2), path)
    fails(path, r"refused: .*\(torch\.nn\.modules\.activation\.MultiheadAttention\)")


def test_not_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(3), path)
    fails(path, r"t\.pt holds a Tensor, not a state dict; save a state_dict: torch\.save\(")


# ---------------------------------------------------------------------------------------------
# Checkpoints of something else


def test_unknown_layout_lists_keys_and_layouts(tmp_path: Path) -> None:
    state = {f"layer{i}.weight": torch.zeros(2, 2) for i in range(12)}
    message = fails(save(state, tmp_path / "cnn.pt"), r"cnn\.pt: unknown checkpoint layout")
    assert "found keys layer0.weight, layer1.weight," in message
    assert "layer7.weight, ... 4 more;" in message
    assert "layer8.weight" not in message
    assert "d2l MultiHeadAttention: W_q.weight, W_k.weight, W_v.weight, W_o.weight" in message
    assert "d2l AdditiveAttention: W_q.weight, W_k.weight, w_v.weight" in message
    assert "(packed in_proj): in_proj_weight, out_proj.weight" in message
    assert "(separate q/k/v projections): q_proj_weight, k_proj_weight, v_proj_weight" in message


def test_empty_state_dict(tmp_path: Path) -> None:
    fails(save({}, tmp_path / "empty.pt"), r"unknown checkpoint layout; found keys \(none\)")


def test_two_attention_layers(tmp_path: Path) -> None:
    layers = nn.ModuleList([nn.MultiheadAttention(8, 2) for _ in range(3)])
    message = fails(
        save(layers.state_dict(), tmp_path / "model.pt"),
        r"model\.pt holds more than one attention layer \(key prefixes '0\.', '1\.', '2\.'\)",
    )
    assert "not supported yet" not in message  # --layer exists, for Hugging Face models
    assert "mha picks one layer (--layer) out of Hugging Face models" in message


def test_add_bias_kv(tmp_path: Path) -> None:
    state = nn.MultiheadAttention(8, 2, add_bias_kv=True).state_dict()
    fails(save(state, tmp_path / "kv.pt"), r"kv\.pt holds bias_k/bias_v: .*add_bias_kv=True")


def test_missing_key(tmp_path: Path) -> None:
    state = d2l_state()
    del state["W_o.weight"]
    fails(
        save(state, tmp_path / "w.pt"),
        r"w\.pt looks like a d2l MultiHeadAttention checkpoint but lacks W_o\.weight "
        r"\(found W_q\.weight, W_k\.weight, W_v\.weight\)",
    )


def test_mixed_layouts(tmp_path: Path) -> None:
    torch_state = nn.MultiheadAttention(12, 2).state_dict()
    state = d2l_state() | torch_state
    fails(
        save(state, tmp_path / "w.pt"),
        r"w\.pt mixes layouts: W_q\.weight, W_k\.weight, W_v\.weight, W_o\.weight do not belong "
        r"in a torch\.nn\.MultiheadAttention \(packed in_proj\) checkpoint",
    )


def test_partial_biases(tmp_path: Path) -> None:
    state = d2l_state(bias=True)
    del state["W_k.bias"]
    fails(save(state, tmp_path / "w.pt"), r"has W_q\.bias, W_v\.bias, W_o\.bias but no W_k\.bias")


def test_value_not_a_tensor(tmp_path: Path) -> None:
    state: dict[str, object] = dict(d2l_state())
    state["W_q.weight"] = [[1.0, 2.0]]
    path = tmp_path / "w.pt"
    torch.save(state, path)
    fails(path, r"w\.pt: 'W_q\.weight' holds a list, not a tensor")


@pytest.mark.parametrize(
    ("name", "value", "pattern"),
    [
        (
            "W_q.weight",
            torch.zeros(12, 6, 1),
            r"'W_q\.weight' has shape \(12, 6, 1\), expected 2-D",
        ),
        ("W_q.bias", torch.zeros(12, 1), r"'W_q\.bias' has shape \(12, 1\), expected 1-D"),
        (
            "W_k.weight",
            torch.zeros(12, 7, dtype=torch.int64),
            r"holds int64 values, expected float",
        ),
        (
            "W_v.weight",
            torch.zeros(12, 0),
            r"'W_v\.weight' has shape \(12, 0\), with an empty axis",
        ),
    ],
)
def test_bad_tensor(tmp_path: Path, name: str, value: torch.Tensor, pattern: str) -> None:
    state = d2l_state(bias=True) | {name: value}
    fails(save(state, tmp_path / "w.pt"), pattern)


@pytest.mark.parametrize(
    ("sizes", "pattern"),
    [
        ({"k_out": 5}, r"W_q\.weight has 12 outputs and W_k\.weight 5; the query outputs must"),
        ({"k_out": 24}, r"W_q\.weight has 12 outputs and W_k\.weight 24"),
        ({"k_out": 4, "v_out": 6}, r"W_v\.weight has 6 outputs, expected 4 .* or 12"),
        ({"concat": 18}, r"W_o\.weight has 18 inputs, expected a multiple of 12"),
    ],
)
def test_inconsistent_d2l_shapes(tmp_path: Path, sizes: dict[str, int], pattern: str) -> None:
    fails(save(d2l_state(**sizes), tmp_path / "w.pt"), pattern)


def test_w_o_outputs(tmp_path: Path) -> None:
    state = d2l_state() | {"W_o.weight": torch.zeros(10, 12)}
    fails(save(state, tmp_path / "w.pt"), r"W_o\.weight has 10 outputs, expected 12 \(as W_q")


def test_bias_length(tmp_path: Path) -> None:
    state = d2l_state(bias=True) | {"W_k.bias": torch.zeros(5)}
    fails(
        save(state, tmp_path / "w.pt"),
        r"W_k\.bias has 5 entries, expected 12 \(the outputs of W_k\.weight\)",
    )


def test_packed_wrong_shapes(tmp_path: Path) -> None:
    state = nn.MultiheadAttention(8, 2).state_dict()
    bad_weight = state | {"in_proj_weight": torch.zeros(20, 8)}
    fails(
        save(bad_weight, tmp_path / "a.pt"),
        r"'in_proj_weight' has shape \(20, 8\), expected \(24, 8\)",
    )
    bad_bias = state | {"in_proj_bias": torch.zeros(8)}
    fails(save(bad_bias, tmp_path / "b.pt"), r"'in_proj_bias' has shape \(8,\), expected \(24,\)")
    bad_out = state | {"out_proj.bias": torch.zeros(3)}
    fails(save(bad_out, tmp_path / "c.pt"), r"out_proj\.bias has 3 entries, expected 8")


def test_separate_wrong_shapes(tmp_path: Path) -> None:
    state = nn.MultiheadAttention(8, 2, kdim=3, vdim=5).state_dict()
    bad = state | {"k_proj_weight": torch.zeros(4, 3)}
    fails(save(bad, tmp_path / "a.pt"), r"'k_proj_weight' has shape \(4, 3\), expected 8 outputs")


def test_messages_use_the_files_own_key_names(tmp_path: Path) -> None:
    state = {f"enc.attn.{k}": v for k, v in nn.MultiheadAttention(8, 2).state_dict().items()}
    state["enc.attn.out_proj.weight"] = torch.zeros(6, 8)
    message = fails(save(state, tmp_path / "w.pt"), r"enc\.attn\.out_proj\.weight has 6 outputs")
    assert re.search(r"\(as enc\.attn\.in_proj_weight\[0:8\]\)", message)


def test_additive_wrong_shapes(tmp_path: Path) -> None:
    base = {
        "W_q.weight": torch.zeros(8, 20),
        "W_k.weight": torch.zeros(8, 2),
        "w_v.weight": torch.zeros(1, 8),
    }
    fails(
        save(base | {"W_k.weight": torch.zeros(4, 2)}, tmp_path / "a.pt"),
        r"W_k\.weight has 4 outputs, expected 8 \(as W_q\.weight\)",
    )
    fails(
        save(base | {"w_v.weight": torch.zeros(2, 8)}, tmp_path / "b.pt"),
        r"w_v\.weight has shape \(2, 8\), expected \(1, 8\)",
    )
    fails(
        save(base | {"W_o.weight": torch.zeros(8, 8)}, tmp_path / "c.pt"),
        r"mixes layouts: W_o\.weight do not belong in a d2l AdditiveAttention checkpoint",
    )
