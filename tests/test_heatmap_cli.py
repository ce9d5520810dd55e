"""`mha heatmap` and `mha reshape` through the command line: files, numbers, messages."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
import torch
from oracles import einsum_attention

from mha_cli.files.sources import resolve
from mha_cli.heatmaps.data import compose_grid
from mha_cli.heatmaps.plot_data import heatmap_data
from mha_cli.layer.run import run_attention
from mha_cli.spec.spec import AttentionSpec


def test_no_options_writes_one_png_here_and_prints_its_path(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("heatmap")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # written files are reported on stderr, as by every command
    assert result.stderr.splitlines()[-1] == "wrote attention.png"
    image = matplotlib.image.imread(tmp_path / "attention.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 200
    assert [p.name for p in tmp_path.iterdir()] == ["attention.png"]  # no temporary file left


@pytest.mark.parametrize(("name", "magic"), [("grid.svg", b"<?xml"), ("grid.pdf", b"%PDF")])
def test_format_follows_the_extension(cli, tmp_path, name, magic):
    assert cli("heatmap", "--out", str(tmp_path / name)).exit_code == 0
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_per_head_writes_one_file_per_example_and_head(cli, tmp_path):
    result = cli("heatmap", "--per-head", "--out", str(tmp_path / "heads"))
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "heads").iterdir())
    assert len(files) == 2 * 5
    written = [line.removeprefix("wrote ") for line in result.stderr.splitlines()]
    assert sorted(written) == sorted(str(f) for f in files)


def test_plotted_numbers_are_the_layer_weights_and_the_oracle_weights():
    spec = AttentionSpec(valid_lens=((1, 2, 3, 4), (6, 5, 4, 3)), causal=True, bias=True)
    trace = run_attention(resolve(spec))
    data = heatmap_data(trace)
    grid = compose_grid(data)
    # The oracle: an einsum computation from the run's inputs and the layer's weights.
    state = trace.parameters
    lens = torch.tensor(spec.valid_lens)
    _, expected = einsum_attention(
        trace.tensors["queries"],
        trace.tensors["keys"],
        trace.tensors["values"],
        state,
        5,
        5,
        lens,
        causal=True,
    )
    np.testing.assert_allclose(data.weights, expected.numpy(), atol=1e-6)
    expected_mask = (np.arange(6)[None, None, :] >= lens.numpy()[:, :, None]) | (
        np.arange(6)[None, None, :] > np.arange(4)[None, :, None] + 2  # queries: positions 2..5
    )
    assert np.array_equal(data.masked, np.broadcast_to(expected_mask[:, None], (2, 5, 4, 6)))
    assert (
        grid.mask.sum() > data.masked.sum()
    )  # masked cells and separators are masked in the image


def test_ones_inputs_say_why_every_head_looks_the_same(cli, tmp_path):
    result = cli("heatmap", "--inputs", "ones", "--out", str(tmp_path / "ones.png"))
    assert result.exit_code == 0
    assert "all 5 heads have the same attention weights" in result.stderr
    assert "--inputs ones" in result.stderr


def test_export_saves_the_plotted_numbers(cli, tmp_path):
    export = tmp_path / "weights.pt"
    assert cli("heatmap", "--out", str(tmp_path / "a.png"), "--export", str(export)).exit_code == 0
    exported = torch.load(export, weights_only=True)["attention_weights"]
    np.testing.assert_array_equal(
        exported.numpy(), heatmap_data(run_attention(resolve(AttentionSpec()))).weights
    )


def test_terminal_rendering_needs_no_file(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("heatmap", "--terminal")
    assert result.exit_code == 0
    assert "head 4" in result.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "meta"], "heatmaps need computed values"),
        (["--out", "nowhere/x.png"], "does not exist"),
        (["--out", "grid.bmp"], ".bmp"),
    ],
)
def test_mistakes_exit_2_and_write_nothing(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = cli("heatmap", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_reshape_answers_the_book_question(cli):
    folded = cli("reshape", "--shape", "2,1,10", "--to", "1,1,2,10")
    assert folded.exit_code == 0
    assert "folded" in folded.stdout and "use (2, 1, 1, 10)" in folded.stdout
    ok = json.loads(
        cli("reshape", "--shape", "2,1,10", "--to", "2,1,1,10", "--format", "json").stdout
    )
    assert (ok["schema"], ok["verdict"]) == ("mha.reshape", "ok")


def test_reshape_flags_the_wrong_head_unfold(cli):
    wrong = json.loads(
        cli(
            "reshape",
            "--shape",
            "10,4,6",
            "--axes",
            "(batch heads),queries,keys",
            "--batch",
            "2",
            "--to",
            "5,2,4,6",
            "--format",
            "json",
        ).stdout
    )
    right = json.loads(
        cli(
            "reshape",
            "--shape",
            "10,4,6",
            "--axes",
            "(batch heads),queries,keys",
            "--heads",
            "5",
            "--to",
            "2,5,4,6",
            "--format",
            "json",
        ).stdout
    )
    assert wrong["verdict"] == "mixed" and wrong["suggested_shape"] == [2, 5, 4, 6]
    assert right["verdict"] == "ok"


def test_reshape_with_a_different_element_count_exits_2(cli):
    result = cli("reshape", "--shape", "2,1,10", "--to", "1,1,3,10")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "mha: cannot reshape (2, 1, 10) (20 elements) to (1, 1, 3, 10) (30 elements)"
    )


def test_reshape_render_draws_both_layouts(cli, tmp_path):
    out = tmp_path / "layouts.png"
    assert cli("reshape", "--render", str(out)).exit_code == 0
    assert matplotlib.image.imread(out).shape[1] > 400
