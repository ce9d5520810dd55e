"""Every `mha heatmap` option has a visible effect through the command line.

Each test fails if its option were ignored: --dpi (pixels follow), --annotate (the weights are
printed, and they are the exported numbers), --per-head (one panel per file, named once),
--terminal (a picture on stdout that fits the terminal, no file), --image-format and --out (the
file, its folder and its format), --export (the plotted numbers), --scale (the colour scale the
colorbar names).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from svg_text import flat, svg_texts

WEIGHT = re.compile(r"^\d\.\d\d$")  # how --annotate prints a weight


def test_dpi_sets_the_pixels(cli, tmp_path):
    sizes = {}
    for dpi in (50, 100):
        out = tmp_path / f"dpi{dpi}.png"
        assert cli("heatmap", "--dpi", str(dpi), "--out", str(out)).exit_code == 0
        with Image.open(out) as image:
            sizes[dpi] = image.size
    # Twice the dpi, twice the pixels (cells are rounded to whole pixels: within 4 %).
    assert sizes[100][0] == pytest.approx(2 * sizes[50][0], rel=0.04)
    assert sizes[100][1] == pytest.approx(2 * sizes[50][1], rel=0.04)


def test_annotate_prints_every_unmasked_weight(cli, tmp_path):
    plain, annotated, export = tmp_path / "plain.svg", tmp_path / "numbers.svg", tmp_path / "w.pt"
    assert cli("heatmap", "--out", str(plain)).exit_code == 0
    assert (
        cli("heatmap", "--annotate", "--out", str(annotated), "--export", str(export)).exit_code
        == 0
    )
    weights = torch.load(export, weights_only=True)["attention_weights"].numpy()  # (2, 5, 4, 6)
    seen = np.zeros_like(weights, dtype=bool)
    seen[0, :, :, :3] = seen[1, :, :, :2] = True  # valid_lens [3, 2]
    printed = sorted(t for t in svg_texts(annotated) if WEIGHT.match(t))
    assert printed == sorted(f"{w:.2f}" for w in weights[seen])
    assert not [t for t in svg_texts(plain) if WEIGHT.match(t)]


def test_per_head_files_hold_one_panel_named_once(cli, tmp_path):
    out = str(tmp_path / "h")
    result = cli("heatmap", "--per-head", "--heads", "4", "--image-format", "svg", "--out", out)
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "h").iterdir())
    assert [f.name for f in files] == sorted(
        f"example{b}_head{h}.svg" for b in range(2) for h in range(4)
    )
    texts = svg_texts(tmp_path / "h" / "example1_head3.svg")
    # the title, one line, with the head's role in words
    assert [t for t in texts if t.startswith("example 1, head 3")] == ["example 1, head 3: spread"]
    # Said once: no "head 3" over the panel, no "example 1" beside it, no other head.
    assert sum(bool(re.search(r"\bhead \d", t)) for t in texts) == 1
    assert sum(bool(re.search(r"\bexample \d", t)) for t in texts) == 1


def _largest_image_share(svg: Path) -> float:
    """Area of the largest raster (the panel) over the picture's area, from the SVG."""
    root = ET.parse(svg).getroot()
    area = 0.0
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "image":
            scale = re.match(r"matrix\(([\d.]+) 0 0 ([\d.]+)", el.get("transform", ""))
            sx, sy = (float(scale[1]), float(scale[2])) if scale else (1.0, 1.0)
            area = max(area, float(el.get("width")) * sx * float(el.get("height")) * sy)
    return area / (float(root.get("width").rstrip("pt")) * float(root.get("height").rstrip("pt")))


def test_per_head_file_is_mostly_panel(cli, tmp_path):
    """The panel, not the margins, fills a one-panel file (it was 155 x 105 pixels of 600 x 395)."""
    out = str(tmp_path / "h")
    result = cli("heatmap", "--per-head", "--heads", "1", "--image-format", "svg", "--out", out)
    assert result.exit_code == 0
    assert _largest_image_share(tmp_path / "h" / "example0_head0.svg") > 0.25


def _grid_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "│" in line]


@pytest.mark.parametrize("columns", [80, 120])
def test_terminal_fits_the_terminal(cli_columns, tmp_path, monkeypatch, columns):
    monkeypatch.chdir(tmp_path)
    # Ten heads of six keys: 10 x 14 characters, wider than either terminal in one line.
    result = cli_columns(columns, "heatmap", "--terminal", "--heads", "10")
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []  # a look in the terminal writes no file
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    rows = _grid_lines(result.stdout)
    # Every grid line is whole: a label (or its blank), then panels; none wrapped into the next.
    assert all(re.match(r"^(example \d|         ) │.*│$", line) for line in rows), rows
    assert "head 9" in result.stdout
    panels_per_line = {line.count("│") - 1 for line in rows}
    assert len(panels_per_line) <= 2 and max(panels_per_line) < 10  # heads moved to more lines


def test_terminal_with_out_writes_the_file_too(cli, tmp_path):
    out = tmp_path / "a.png"
    result = cli("heatmap", "--terminal", "--out", str(out))
    assert result.exit_code == 0 and out.exists()
    assert _grid_lines(result.stdout)


@pytest.mark.parametrize(
    ("fmt", "magic"), [("svg", b"<?xml"), ("pdf", b"%PDF"), ("png", b"\x89PNG")]
)
def test_image_format_with_a_folder_out(cli, tmp_path, fmt, magic):
    result = cli("heatmap", "--out", f"{tmp_path / 'pics'}/", "--image-format", fmt)
    assert result.exit_code == 0, result.output
    written = tmp_path / "pics" / f"attention.{fmt}"
    assert [p.name for p in (tmp_path / "pics").iterdir()] == [written.name]
    assert written.read_bytes().startswith(magic)
    assert result.stderr.strip().splitlines()[-1] == f"wrote {written}"


def test_out_folder_with_a_slash_is_created(cli, tmp_path):
    result = cli("heatmap", "--out", f"{tmp_path / 'new' / 'sub'}/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "sub" / "attention.png").read_bytes().startswith(b"\x89PNG")


def test_out_existing_folder_without_a_slash(cli, tmp_path):
    (tmp_path / "here").mkdir()
    result = cli("heatmap", "--out", str(tmp_path / "here"))
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "here").iterdir()] == ["attention.png"]


def test_out_file_and_a_different_image_format_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("heatmap", "--out", "a.png", "--image-format", "svg")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("mha: --out a.png names a .png file but --image-format is svg")
    assert list(tmp_path.iterdir()) == []


def test_out_names_the_file(cli, tmp_path):
    out = tmp_path / "named.svg"
    result = cli("heatmap", "--out", str(out))
    assert result.exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["named.svg"]
    assert "attention weights" in flat(" ".join(svg_texts(out)))


def test_export_holds_what_the_picture_prints(cli, tmp_path):
    """--export writes the plotted numbers: the same ones --annotate prints in the image."""
    export, out = tmp_path / "w.safetensors", tmp_path / "a.svg"
    assert cli("heatmap", "--annotate", "--out", str(out), "--export", str(export)).exit_code == 0
    from safetensors.torch import load_file

    weights = load_file(export)["attention_weights"]
    assert tuple(weights.shape) == (2, 5, 4, 6)
    printed = {t for t in svg_texts(out) if WEIGHT.match(t)}
    assert f"{float(weights[0, 0, 0, 0]):.2f}" in printed


# Causal over 64 positions: the first query's one weight is 1, the last's are about 1/64.
LONG = ["--causal", "--batch", "1", "--heads", "2", "--queries", "64", "--kv", "64",
        "--valid-lens", "none"]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "log"),
    [
        (LONG, True),  # 90 % of the weights under a quarter of the largest: auto picks log
        ([*LONG, "--scale", "linear"], False),
        ([], False),  # the chapter's weights spread over 0..0.84: linear
        (["--scale", "log"], True),
    ],
)
def test_scale_is_named_on_the_colorbar(cli, tmp_path, options, log):
    out = tmp_path / "a.svg"
    result = cli("heatmap", *options, "--out", str(out))
    assert result.exit_code == 0, result.output
    words = flat(" ".join(svg_texts(out)))
    assert ("attention weight, log scale" in words) is log
    assert ("One log colour scale" in words) is log


def test_the_python_api_takes_the_scale_too():
    import mha_cli
    from mha_cli.errors import MhaError

    with pytest.raises(MhaError, match=r"^--scale 'loud' is not one of auto, linear, log$"):
        mha_cli.heatmap(scale="loud")
    figure = mha_cli.heatmap(scale="log")
    labels = [t.get_text() for ax in figure.axes for t in [ax.yaxis.label]]
    assert any("log scale" in label for label in labels)


def test_rows_whose_heads_differ_label_every_panel(tmp_path):
    """The model view: a head does one thing in layer 0 and another in layer 1, so each panel
    carries its own words; heads that agree on every row keep one label over the column."""
    from mha_cli.heatmaps.data import HeatmapData
    from mha_cli.heatmaps.image import render_grid

    weights = np.full((2, 2, 16, 16), 1 / 16, dtype=np.float32)
    varying = HeatmapData(
        weights, np.zeros(weights.shape, bool), "t", row_name="layer",
        head_words=(("prev 0.91", "spread"), ("sink 0.80", "spread")),
    )  # fmt: skip
    texts = svg_texts(render_grid(varying, tmp_path / "varying.svg"))
    assert "head 0: prev 0.91" in texts and "sink 0.80" in texts  # layer 1's own words
    assert "head 1: spread" in texts and texts.count("spread") == 1  # layer 1's head 1
    same = HeatmapData(
        weights, np.zeros(weights.shape, bool), "t",
        head_words=(("prev 0.91", "spread"), ("prev 0.91", "spread")),
    )  # fmt: skip
    texts = svg_texts(render_grid(same, tmp_path / "same.svg"))
    assert "head 0: prev 0.91" in texts and "prev 0.91" not in texts  # one label a column
