"""Hostile files, full disks, closed pipes and signals (issue 16): one line and a meaningful exit
code, never a traceback; files whole or not at all."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

MHA = str(Path(sys.executable).parent / "mha")
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160", "OMP_NUM_THREADS": "1"}
ENV.pop("MHA_DEBUG", None)
COMMANDS_WITH_WEIGHTS = ["inspect", "heatmap", "compare", "weights", "heads", "variants"]


def one_line(result, code: int = 2) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def layer_state(hiddens: int = 8) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {f"W_{n}.weight": torch.randn(hiddens, hiddens, generator=generator) for n in "qkvo"}


# ---------------------------------------------------------------------------------------------
# 16.8: an output that is a symbolic link is written through


@pytest.mark.parametrize("what", ["export", "heatmap"])
def test_symlinked_output_is_written_through(cli, tmp_path: Path, what: str) -> None:
    real_folder = tmp_path / "real"
    real_folder.mkdir()
    name = "out.pt" if what == "export" else "grid.png"
    target = real_folder / name
    target.write_bytes(b"old")
    link = tmp_path / name
    link.symlink_to(target)
    if what == "export":
        result = cli("inspect", "--export", str(link))
    else:
        result = cli("heatmap", "--out", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() != b"old"
    if what == "export":
        assert set(torch.load(link, weights_only=True)) >= {"output"}
    assert sorted(p.name for p in real_folder.iterdir()) == [name]  # no temporary left
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, "real"]


# ---------------------------------------------------------------------------------------------
# 16.13: a full disk on export


def _raises_like_a_full_disk(fmt: str):  # type: ignore[no-untyped-def]
    """The writers' own errors on a full disk, after writing part of the file."""

    def write(tensors: object, target: object) -> None:
        Path(str(target)).write_bytes(b"part of a file")
        if fmt == "pt":
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 2752 vs 2646"
            )
        raise safetensors.SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    return write


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_export_on_a_full_disk_is_one_line(cli, tmp_path: Path, monkeypatch, fmt: str) -> None:
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(b"the old file")
    monkeypatch.setattr(torch, "save", _raises_like_a_full_disk(fmt))
    monkeypatch.setattr(safetensors.torch, "save_file", _raises_like_a_full_disk(fmt))
    usage = shutil.disk_usage(tmp_path)
    full = type(usage)(usage.total, usage.total, 0)  # torch's message says nothing of the disk
    monkeypatch.setattr(shutil, "disk_usage", lambda _: full)
    line = one_line(cli("inspect", "--export", str(path)))
    assert line.startswith(f"mha: cannot write {path}: no space left on device")
    assert path.read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_export_enospc_oserror_is_one_line(cli, tmp_path: Path, monkeypatch) -> None:
    def full(tensors: object, target: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    line = one_line(cli("inspect", "--export", str(tmp_path / "x.pt")))
    assert "no space left on device" in line
    assert list(tmp_path.iterdir()) == []


def _tmpfs_shell(script: str) -> subprocess.CompletedProcess[str] | None:
    """Run `script` with a 64 KiB tmpfs at $FULL, in a user namespace; None where impossible."""
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return None
    full = "/mnt"
    command = f"mount -t tmpfs -o size=64k tmpfs {full} && FULL={full}; {script}"
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, env=ENV
    )


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_export_on_a_real_full_file_system(fmt: str) -> None:
    out = _tmpfs_shell(
        f"echo old > $FULL/x.{fmt}; {MHA} inspect --heads 4 --hiddens 64 --queries 40 --kv 40 "
        f"--export $FULL/x.{fmt} >/dev/null; echo rc=$?; ls -A $FULL; cat $FULL/x.{fmt}"
    )
    if out is None:
        pytest.skip("no user namespaces here to mount a small tmpfs")
    stderr = out.stderr.strip().splitlines()
    assert len(stderr) == 1 and "no space left on device" in stderr[0], out.stderr
    assert out.stdout.split() == ["rc=2", f"x.{fmt}", "old"]


# ---------------------------------------------------------------------------------------------
# 16.19: a code payload is refused, and the message says why


class Payload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo ran",))


@pytest.mark.parametrize("option", ["--weights", "--inputs"])
def test_code_payload_is_explained(cli, tmp_path: Path, option: str) -> None:
    path = tmp_path / "payload.pt"
    torch.save({"W_q.weight": Payload()}, path)
    line = one_line(cli("inspect", option, str(path)))
    assert "damaged" not in line
    assert "Python objects" in line and "weights-only" in line
    assert "would run code from the file" in line


# ---------------------------------------------------------------------------------------------
# 16.10, 16.15: float8, sparse and meta tensors


def _odd(kind: str, tensor: torch.Tensor) -> torch.Tensor:
    if kind == "sparse":
        return tensor.to_sparse()
    if kind == "meta":
        return torch.empty(tensor.shape, device="meta")
    return tensor.to(torch.float8_e4m3fn)


REASONS = {"sparse": "is a sparse tensor", "meta": "is a meta tensor", "float8": "float8_e4m3fn"}


@pytest.mark.parametrize("kind", list(REASONS))
@pytest.mark.parametrize("command", COMMANDS_WITH_WEIGHTS)
def test_odd_tensor_in_a_layer_file(cli, tmp_path: Path, kind: str, command: str) -> None:
    state = layer_state()
    state["W_k.weight"] = _odd(kind, state["W_k.weight"])
    path = tmp_path / "layer.pt"
    torch.save(state, path)
    line = one_line(cli(command, "--weights", str(path), "--heads", "2"))
    assert "'W_k.weight'" in line and REASONS[kind] in line


def test_float8_in_a_safetensors_layer_and_model(cli, tmp_path: Path) -> None:
    state = layer_state()
    state["W_v.weight"] = state["W_v.weight"].to(torch.float8_e5m2)
    safetensors.torch.save_file(state, tmp_path / "layer.safetensors")
    line = one_line(cli("weights", "--weights", str(tmp_path / "layer.safetensors")))
    assert "'W_v.weight' holds float8_e5m2 values" in line

    folder = tmp_path / "llama"
    folder.mkdir()
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 32,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 1,
        "intermediate_size": 64,
        "vocab_size": 10,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "max_position_embeddings": 64,
    }
    (folder / "config.json").write_text(json.dumps(config))
    prefix = "model.layers.0.self_attn."
    sizes = {"q": 32, "k": 16, "v": 16, "o": 32}
    tensors = {f"{prefix}{n}_proj.weight": torch.randn(s, 32) for n, s in sizes.items()}
    tensors[f"{prefix}k_proj.weight"] = tensors[f"{prefix}k_proj.weight"].to(torch.float8_e4m3fn)
    safetensors.torch.save_file(tensors, folder / "model.safetensors")
    for command in COMMANDS_WITH_WEIGHTS:
        line = one_line(cli(command, "--weights", str(folder), "--queries", "4", "--kv", "4"))
        assert f"'{prefix}k_proj.weight' holds float8_e4m3fn values" in line, command


@pytest.mark.parametrize("kind", list(REASONS))
@pytest.mark.parametrize("name", ["queries", "valid_lens"])
def test_odd_tensor_in_inputs(cli, tmp_path: Path, kind: str, name: str) -> None:
    inputs = {n: torch.randn(2, 4, 8) for n in ("queries", "keys", "values")}
    inputs["valid_lens"] = torch.tensor([2, 3])
    if name == "valid_lens" and kind == "float8":
        inputs[name] = inputs[name].float()
    inputs[name] = _odd(kind, inputs[name])
    path = tmp_path / "in.pt"
    torch.save(inputs, path)
    for command in ("inspect", "heads"):
        line = one_line(cli(command, "--inputs", str(path)))
        assert f"'{name}'" in line and REASONS[kind] in line


@pytest.mark.parametrize("kind", list(REASONS))
def test_odd_tensor_in_targets(cli, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "targets.pt"
    torch.save({"output": _odd(kind, torch.randn(2, 4, 100))}, path)
    line = one_line(cli("heads", "--targets", str(path)))
    assert "'output'" in line and REASONS[kind] in line


# ---------------------------------------------------------------------------------------------
# 16.22: broken pipes, with real pipes


def _piped(args: list[str], read: int) -> tuple[int, str]:
    """Run mha with stdout a pipe whose reader takes `read` bytes and closes it."""
    process = subprocess.Popen(
        [MHA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )
    assert process.stdout is not None and process.stderr is not None
    if read:
        process.stdout.read(read)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    return process.wait(timeout=120), stderr


def test_large_answer_cut_short_is_141() -> None:
    code, stderr = _piped(["weights", "--heads", "50", "--format", "json"], read=100)
    assert code == 141
    assert stderr.strip().splitlines() == [
        "mha: standard output was closed before the output was written (broken pipe)"
    ]


@pytest.mark.parametrize(
    "args", [["inspect", "--help"], ["--help"], ["--version"], []], ids=" ".join
)
@pytest.mark.parametrize("read", [0, 10])
def test_help_and_version_cut_short_are_silent(args: list[str], read: int) -> None:
    code, stderr = _piped(args, read)
    assert (code, stderr) == (0, "")


# ---------------------------------------------------------------------------------------------
# 16.7: SIGTERM cleans up as Ctrl-C does; per-head files are bounded


def test_sigterm_during_per_head_leaves_no_temporary_files(tmp_path: Path) -> None:
    folder = tmp_path / "heads"
    args = ["heatmap", "--per-head", "--batch", "4", "--heads", "16", "--hiddens", "64"]
    args += ["--queries", "48", "--kv", "48", "--valid-lens", "none", "--out", f"{folder}/"]
    process = subprocess.Popen(
        [MHA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if folder.is_dir() and any(p.name.endswith(".tmp") for p in folder.iterdir()):
            break  # caught in the middle of writing one file
        time.sleep(0.002)
    assert process.poll() is None, "the command ended before a file was being written"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr.strip().splitlines()[-1] == "mha: terminated"
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    for image in folder.iterdir():  # every file there is whole
        assert image.read_bytes().startswith(b"\x89PNG")


def test_too_many_per_head_files_need_force(cli, tmp_path: Path, monkeypatch) -> None:
    import mha_cli.heatmaps.image as image

    folder = tmp_path / "heads"
    args = ["heatmap", "--per-head", "--batch", "20", "--heads", "16", "--hiddens", "64"]
    args += ["--queries", "2", "--kv", "2", "--valid-lens", "none", "--out", f"{folder}/"]
    line = one_line(cli(*args))
    assert "would write 320 files" in line and "--force" in line
    assert not folder.exists()

    saved: list[Path] = []
    monkeypatch.setattr(image, "save_figure", lambda fig, path, dpi: saved.append(path))
    monkeypatch.setattr(image, "_figure", lambda *a, **k: None)
    result = cli(*args, "--force")
    assert result.exit_code == 0, result.output
    assert len(saved) == 320


def test_the_per_head_limit_leaves_small_runs_alone(cli, tmp_path: Path) -> None:
    folder = tmp_path / "heads"
    result = cli("heatmap", "--per-head", "--batch", "2", "--heads", "2", "--out", f"{folder}/")
    assert result.exit_code == 0, result.output
    assert len(list(folder.iterdir())) == 4
