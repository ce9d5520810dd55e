"""Every mistake gets a clear answer: the catalogue of bad input, through the real command line.

Each case: the exit code (2 for a mistake, 1 for a failed --expect), exactly one line on stderr
that names the option or file and says what was expected, and never a traceback.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch


class Hostile:
    """A pickle that would write a marker file if anything ran it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "code ran"))


def make_files(folder: Path) -> None:
    (folder / "garbage.pt").write_bytes(b"this is not a checkpoint")
    (folder / "garbage.safetensors").write_bytes(b"\x00\x01 nope")
    with open(folder / "hostile.pt", "wb") as f:
        pickle.dump({"W_q.weight": Hostile(folder / "marker.txt")}, f)
    torch.save({"encoder.linear.weight": torch.zeros(3, 3)}, folder / "unknown_layout.pt")
    torch.save(torch.nn.MultiheadAttention(100, 5).state_dict(), folder / "mha100.pt")
    torch.save(torch.nn.MultiheadAttention(64, 4).state_dict(), folder / "mha64.pt")
    torch.save(
        {"queries": torch.zeros(2, 4, 100), "keys": torch.zeros(2, 6, 100)}, folder / "no_values.pt"
    )
    torch.save(
        {
            "queries": torch.zeros(2, 4, 100),
            "keys": torch.zeros(2, 6, 100),
            "values": torch.zeros(2, 6, 100),
        },
        folder / "inputs100.pt",
    )
    torch.save({"querys": torch.zeros(2, 4, 100)}, folder / "typo.pt")
    (folder / "bad.toml").write_text("heads = = 5\n")
    (folder / "unknown_key.toml").write_text("num_heads = 5\n")
    (folder / "wrong_type.toml").write_text('heads = "five"\n')
    (folder / "folder.pt").mkdir()


# (arguments, exit code, a fragment the one line must contain)
CATALOGUE: list[tuple[list[str], int, str]] = [
    # sizes: zero, negative, not numbers
    (["inspect", "--batch", "0"], 2, "--batch 0 must be a positive whole number"),
    (["inspect", "--queries", "-1"], 2, "--queries -1 must be a positive whole number"),
    (["inspect", "--kv", "six"], 2, "--kv 'six' is not a whole number; e.g. --kv 6"),
    (["inspect", "--hiddens", "1e2"], 2, "--hiddens '1e2' is not a whole number"),
    (["inspect", "--query-size", "0"], 2, "--query-size 0 must be a positive whole number"),
    (["inspect", "--heads", "0"], 2, "--heads 0 must be a positive whole number"),
    # heads
    (["inspect", "--heads", "7"], 2, "heads that divide it: 1, 2, 4, 5, 10, 20, 25, 50, 100"),
    (
        ["inspect", "--kv-heads", "2"],
        2,
        "--kv-heads 2: heads (5) is not a multiple of kv heads (2)",
    ),
    (
        ["inspect", "--kv-heads", "1", "--value-mode", "full"],
        2,
        "drop --kv-heads or use --value-mode split",
    ),
    (
        ["inspect", "--score", "additive", "--heads", "5"],
        2,
        "d2l's AdditiveAttention is single-head; use --heads 1",
    ),
    # valid_lens
    (
        ["inspect", "--valid-lens", "3"],
        2,
        "--valid-lens 3 has 1 entries but the batch has 2 examples",
    ),
    (["inspect", "--batch", "3"], 2, "the default --valid-lens 3,2 (the chapter's) has 2 entries"),
    (["inspect", "--valid-lens", "3,-1"], 2, "length -1 is outside 0..6"),
    (["inspect", "--valid-lens", "3,x"], 2, "--valid-lens '3,x' is not a list of whole numbers"),
    (
        ["inspect", "--valid-lens", "1,2;3,4"],
        2,
        "2-D valid_lens must have 2 rows (batch) of 4 lengths",
    ),
    (
        ["inspect", "--valid-lens", "7,2"],
        2,
        "length 7 is outside 0..6 (there are 6 key-value pairs)",
    ),
    # dropout and choices
    (["inspect", "--dropout", "1"], 2, "--dropout 1.0 is outside [0, 1)"),
    (["inspect", "--dropout", "-0.1"], 2, "--dropout -0.1 is outside [0, 1)"),
    (["inspect", "--dropout", "half"], 2, "--dropout 'half' is not a number"),
    (["inspect", "--score", "dotproduct"], 2, "--score 'dotproduct' is not one of dot, additive"),
    (["inspect", "--value-mode", "whole"], 2, "--value-mode 'whole' is not one of split, full"),
    (
        ["inspect", "--dtype", "int8"],
        2,
        "--dtype 'int8' is not one of float32, float64, float16, bfloat16",
    ),
    (["inspect", "--device", "gpu"], 2, "--device 'gpu' is not one of cpu, meta, cuda"),
    (["inspect", "--format", "yaml"], 2, "'yaml' is not one of 'table', 'json', 'markdown'"),
    (["inspect", "--hedas", "5"], 2, "No such option"),
    (["frobnicate"], 2, "No such command 'frobnicate'"),
    # expectations
    (
        ["inspect", "--expect", "output=2,4,99"],
        1,
        "expectation failed: output expected (2, 4, 99), got (2, 4, 100)",
    ),
    (["inspect", "--expect", "params=1"], 1, "params expected 1, got 40000"),
    (["inspect", "--expect", "output"], 2, "should be NAME=VALUE"),
    (["inspect", "--expect", "scorse=10,4,6"], 2, "did you mean 'scores'?"),
    (["inspect", "--expect", "output=2,x"], 2, "is not a shape"),
    # configs and presets
    (["inspect", "--config", "gpt3"], 2, "is neither a file nor a preset"),
    (["inspect", "--config", "{d}/missing.toml"], 2, "no such file"),
    (["inspect", "--config", "{d}/bad.toml"], 2, "is not valid TOML"),
    (
        ["inspect", "--config", "{d}/unknown_key.toml"],
        2,
        "unknown key 'num_heads'; did you mean 'heads'?",
    ),
    (["inspect", "--config", "{d}/wrong_type.toml"], 2, "heads = 'five' should be a whole number"),
    # checkpoints
    (["inspect", "--weights", "{d}/missing.pt"], 2, "--weights {d}/missing.pt: no such file"),
    (["inspect", "--weights", "{d}/folder.pt"], 2, "holds none of model.safetensors"),
    (["inspect", "--weights", "{d}/garbage.pt"], 2, "is not a file torch.load can read"),
    (["inspect", "--weights", "{d}/garbage.safetensors"], 2, "is not a safetensors file"),
    (["inspect", "--weights", "{d}/hostile.pt"], 2, "rebuilding them would run code"),
    (
        ["inspect", "--weights", "{d}/unknown_layout.pt"],
        2,
        "no attention layer of a known layout; found keys encoder.linear.weight",
    ),
    (["inspect", "--weights", "{d}/mha100.pt", "--hiddens", "64"], 2, "--hiddens 64 contradicts"),
    (["inspect", "--weights", "{d}/mha100.pt", "--heads", "3"], 2, "--heads 3 does not fit"),
    (["inspect", "--weights", "{d}/notes.txt"], 2, "unsupported file type '.txt'"),
    # inputs files
    (["inspect", "--inputs", "{d}/no_values.pt"], 2, "no tensor 'values'"),
    (["inspect", "--inputs", "{d}/typo.pt"], 2, "did you mean 'queries'?"),
    (
        ["inspect", "--inputs", "{d}/inputs100.pt", "--weights", "{d}/mha64.pt", "--heads", "4"],
        2,
        "contradicts",
    ),
    # outputs
    (
        ["inspect", "--export", "{d}/out.npz"],
        2,
        "--export {d}/out.npz: unsupported file type '.npz'",
    ),
    (["inspect", "--export", "{d}/nowhere/out.pt"], 2, "folder {d}/nowhere does not exist"),
    (["inspect", "--device", "meta", "--export", "{d}/out.pt"], 2, "use --device cpu"),
    (["heatmap", "--out", "{d}/grid.jpg"], 2, "use .png, .svg or .pdf"),
    (["heatmap", "--out", "{d}/nowhere/grid.png"], 2, "does not exist"),
    (
        ["heatmap", "--device", "meta"],
        2,
        "heatmaps need computed values, and --device meta computes none; use --device cpu",
    ),
    (["heatmap", "--dpi", "0"], 2, "--dpi"),
    (["compare", "--device", "meta"], 2, "--device meta computes none; use --device cpu"),
    (["compare", "--train", "--dropout", "0.1"], 2, "drop --train (compare runs in eval mode)"),
    (["compare", "--heads", "7"], 2, "num_hiddens (100) is not divisible by heads (7)"),
    (["compare", "--weights", "{d}/garbage.pt"], 2, "--weights"),
    # reshapes
    (
        ["reshape", "--shape", "2,1,10", "--to", "1,1,3,10"],
        2,
        "cannot reshape (2, 1, 10) (20 elements) to (1, 1, 3, 10) (30 elements)",
    ),
    (["reshape", "--to", "1,-1,-1,10"], 2, "more than one -1"),
    (["reshape", "--shape", "2,1,x"], 2, "--shape '2,1,x' is not a shape"),
    # too large for real tensors
    (["inspect", "--config", "gqa-long", "--device", "cpu"], 2, "add --device meta"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalogue")
    make_files(path)
    (path / "notes.txt").write_text("not a checkpoint")
    return path


@pytest.mark.parametrize(
    ("args", "code", "fragment"), CATALOGUE, ids=[" ".join(c[0]) for c in CATALOGUE]
)
def test_catalogue(cli, folder, args, code, fragment):
    args = [a.replace("{d}", str(folder)) for a in args]
    result = cli(*args)
    lines = result.stderr.splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mha")
    assert fragment.replace("{d}", str(folder)) in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == "" or code == 1  # a failed --expect still prints its report


def test_hostile_pickle_runs_no_code(cli, folder):
    cli("inspect", "--weights", str(folder / "hostile.pt"))
    assert not (folder / "marker.txt").exists()


def test_a_failed_run_leaves_no_partial_files(cli, tmp_path, monkeypatch):
    """The export is written through a temporary file; if saving fails, nothing is left."""
    import mha_cli.files.tensor_files as tensor_files

    def broken(tmp, tensors, suffix, target):
        tmp.write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensor_files, "_write", broken)
    result = cli("inspect", "--export", str(tmp_path / "out.pt"))
    assert result.exit_code == 2
    assert "No space left on device" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_interrupted_heatmap_leaves_no_partial_image(cli, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def interrupted(self, *args, **kwargs):
        if isinstance(args[0], (str, Path)):
            Path(args[0]).write_bytes(b"half an image")
        else:  # a PNG is drawn into memory first, then written by `render.png`
            args[0].write(b"half an image")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    result = cli("heatmap", "--out", str(tmp_path / "grid.png"))
    assert result.exit_code == 130
    assert list(tmp_path.iterdir()) == []


def test_installed_command_prints_one_line_and_no_traceback(tmp_path):
    mha = Path(sys.executable).parent / "mha"
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("MHA_DEBUG", None)
    out = subprocess.run(
        [str(mha), "inspect", "--heads", "7"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    debug = subprocess.run(
        [str(mha), "inspect", "--heads", "7"],
        capture_output=True,
        text=True,
        env={**env, "MHA_DEBUG": "1"},
    )
    assert "Traceback" in debug.stderr  # tracebacks stay available for real bugs
