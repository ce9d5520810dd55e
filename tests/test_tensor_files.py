"""load_inputs and save_tensors: round trips in both formats, one-line errors, whole files."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch

from mha_cli.errors import MhaError
from mha_cli.files.tensor_files import load_inputs, save_tensors

FORMATS = ["pt", "safetensors"]


def qkv(batch: int = 2, queries: int = 4, kv: int = 6) -> dict[str, torch.Tensor]:
    return {
        "queries": torch.randn(batch, queries, 20),
        "keys": torch.randn(batch, kv, 2),
        "values": torch.randn(batch, kv, 3),
    }


def write(tensors: dict[str, object], path: Path) -> Path:
    if path.suffix == ".safetensors":
        safetensors.torch.save_file(tensors, path)  # type: ignore[arg-type]
    else:
        torch.save(tensors, path)
    return path


def fails(path: Path, pattern: str) -> str:
    with pytest.raises(MhaError, match=pattern) as info:
        load_inputs(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("lens", [None, torch.tensor([3, 2]), torch.tensor([[1, 2, 3, 4]] * 2)])
def test_round_trip(tmp_path: Path, fmt: str, lens: torch.Tensor | None) -> None:
    tensors = qkv() | ({} if lens is None else {"valid_lens": lens})
    path = tmp_path / f"inputs.{fmt}"
    save_tensors(path, tensors)
    loaded = load_inputs(path)
    assert sorted(loaded) == sorted(tensors)
    assert all(torch.equal(loaded[n], t) for n, t in tensors.items())
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_views_and_shared_tensors(tmp_path: Path, fmt: str) -> None:
    """An export holds views and the same tensor twice (output is also the last stage)."""
    big = torch.randn(1000, 100)
    output = torch.randn(2, 4, 8, requires_grad=True) * 2
    tensors = {"slice": big[:2], "column": big[:, 0], "W_o": output, "output": output}
    path = tmp_path / f"export.{fmt}"
    save_tensors(path, tensors)
    if fmt == "pt":
        loaded = torch.load(path, weights_only=True)
        assert path.stat().st_size < big.numel() * 4 / 10  # the 400 kB storage is not saved
    else:
        loaded = safetensors.torch.load_file(path)
    assert sorted(loaded) == sorted(tensors)
    assert all(torch.equal(loaded[n], t.detach()) for n, t in tensors.items())


def test_dtype_kept(tmp_path: Path) -> None:
    tensors = {k: v.to(torch.bfloat16) for k, v in qkv().items()}
    path = tmp_path / "inputs.safetensors"
    save_tensors(path, tensors)
    assert all(t.dtype == torch.bfloat16 for t in load_inputs(path).values())


# ---------------------------------------------------------------------------------------------
# load_inputs errors


def test_missing_file(tmp_path: Path) -> None:
    fails(tmp_path / "in.pt", r"in\.pt: no such file; check the path$")


def test_bad_extension(tmp_path: Path) -> None:
    (tmp_path / "in.npy").write_bytes(b"x")
    fails(tmp_path / "in.npy", r"in\.npy: unsupported file type '\.npy'; give a \.pt, \.pth")


def test_garbage(tmp_path: Path) -> None:
    (tmp_path / "in.pt").write_bytes(b"garbage")
    fails(tmp_path / "in.pt", r"in\.pt is not a file torch\.load can read .*; save a dict of")


def test_hostile_pickle(tmp_path: Path) -> None:
    path = tmp_path / "in.pt"
    torch.save({"queries": torch.nn.Linear(2, 2)}, path)
    fails(path, r"in\.pt refused: .*; save a dict of tensors: torch\.save\(\{'queries': q, ")


def test_not_a_dict(tmp_path: Path) -> None:
    fails(write(torch.zeros(2), tmp_path / "in.pt"), r"in\.pt holds a Tensor, not named tensors")  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_typo_is_caught_with_a_suggestion(tmp_path: Path, fmt: str) -> None:
    tensors = qkv()
    tensors["querys"] = tensors.pop("queries")
    fails(
        write(tensors, tmp_path / f"in.{fmt}"),  # type: ignore[arg-type]
        r"unknown tensor 'querys'; did you mean 'queries'\?; an inputs file holds only "
        r"queries, keys, values, hidden_states, valid_lens$",
    )


def test_several_unknown_names(tmp_path: Path) -> None:
    tensors = qkv() | {"valid_len": torch.tensor([1, 2]), "mask": torch.zeros(2)}
    fails(
        write(tensors, tmp_path / "in.pt"),  # type: ignore[arg-type]
        r"unknown tensors 'valid_len', 'mask'; did you mean 'valid_lens'\?;",
    )


def test_missing_tensor(tmp_path: Path) -> None:
    tensors = qkv()
    del tensors["values"]
    fails(write(tensors, tmp_path / "in.pt"), r"in\.pt: no tensor 'values'; an inputs file must")  # type: ignore[arg-type]


def test_not_a_tensor(tmp_path: Path) -> None:
    tensors: dict[str, object] = dict(qkv()) | {"valid_lens": [3, 2]}
    fails(write(tensors, tmp_path / "in.pt"), r"'valid_lens' holds a list, not a tensor")


QKV_ERRORS = [
    ({"queries": torch.randn(2, 20)}, r"'queries' has shape \(2, 20\), expected 3-D \(batch, q"),
    (
        {"keys": torch.randn(2, 6, 2, 1)},
        r"'keys' has shape \(2, 6, 2, 1\), expected 3-D \(batch, k",
    ),
    (
        {"values": torch.ones(2, 6, 3, dtype=torch.int64)},
        r"'values' holds int64 values, expected f",
    ),
    ({"queries": torch.randn(2, 0, 20)}, r"'queries' has shape \(2, 0, 20\), with an empty axis"),
    ({"keys": torch.randn(3, 6, 2)}, r"'keys' has shape \(3, 6, 2\), expected batch 2 as in 'q"),
    ({"values": torch.randn(2, 5, 3)}, r"'values' has shape \(2, 5, 3\), expected 6 key-value p"),
]


@pytest.mark.parametrize(("change", "pattern"), QKV_ERRORS)
def test_bad_qkv(tmp_path: Path, change: dict[str, torch.Tensor], pattern: str) -> None:
    fails(write(qkv() | change, tmp_path / "in.pt"), pattern)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lens", "pattern"),
    [
        (torch.tensor([3.0, 2.0]), r"'valid_lens' holds float32 values, expected integers"),
        (torch.tensor([True, False]), r"'valid_lens' holds bool values, expected integers"),
        (torch.tensor([3, 2, 1]), r"'valid_lens' has shape \(3,\), expected \(2,\) \(batch\) or"),
        (torch.tensor([[1, 2]] * 2), r"'valid_lens' has shape \(2, 2\), expected"),
        (torch.tensor([3, -1]), r"'valid_lens' holds -1, outside 0\.\.6; a valid length counts"),
        (torch.tensor([7, 1]), r"'valid_lens' holds 7, outside 0\.\.6"),
    ],
)
def test_bad_valid_lens(tmp_path: Path, lens: torch.Tensor, pattern: str) -> None:
    fails(write(qkv() | {"valid_lens": lens}, tmp_path / "in.pt"), pattern)  # type: ignore[arg-type]


def test_valid_lens_bounds_are_inclusive(tmp_path: Path) -> None:
    path = write(qkv() | {"valid_lens": torch.tensor([0, 6])}, tmp_path / "in.pt")  # type: ignore[arg-type]
    assert load_inputs(path)["valid_lens"].tolist() == [0, 6]


# ---------------------------------------------------------------------------------------------
# save_tensors errors and atomicity


@pytest.mark.parametrize("name", ["out.npz", "out"])
def test_save_bad_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(MhaError, match=r"^--export .*; use a \.pt or \.safetensors file$"):
        save_tensors(tmp_path / name, qkv())
    assert list(tmp_path.iterdir()) == []


def test_save_meta_tensors(tmp_path: Path) -> None:
    tensors = {"output": torch.empty(2, 4, 8, device="meta")}
    with pytest.raises(
        MhaError,
        match=r"^cannot export to .*meta device .*export needs real tensors, run with --device cpu",
    ):
        save_tensors(tmp_path / "out.pt", tensors)
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(MhaError, match=r"folder .* does not exist; create it first"):
        save_tensors(tmp_path / "no" / "out.pt", qkv())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("disk")])
def test_failing_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, error: Exception
) -> None:
    def half_write(tensors: object, target: object) -> None:
        Path(str(target)).write_bytes(b"half a file")  # some bytes land, then the write fails
        raise error

    monkeypatch.setattr(torch, "save", half_write)
    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    fix = "free some space or choose another folder" if isinstance(error, OSError) else "choose"
    with pytest.raises(MhaError, match=rf"^cannot write .*out\.\w+: .*; {fix}.*$"):
        save_tensors(tmp_path / f"out.{fmt}", qkv())
    assert list(tmp_path.iterdir()) == []


def test_failing_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.pt"
    save_tensors(path, qkv())
    before = path.read_bytes()

    def broken(tensors: object, target: object) -> None:
        raise RuntimeError("PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(MhaError, match="PytorchStreamWriter failed writing file"):
        save_tensors(path, qkv())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt"]
