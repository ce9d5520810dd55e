"""`mha diagram`: files in three formats, shapes read back from the SVG equal to the stage table,
the terminal tree, and the visible effect of every option."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import pytest

SVG = "{http://www.w3.org/2000/svg}"
CONFIGS = {
    "chapter": (),
    "grouped-query": (
        *("--heads", "8", "--kv-heads", "2", "--hiddens", "64", "--rope", "half"),
        *("--qk-norm", "--causal", "--window", "3"),
    ),
    "full-values": ("--value-mode", "full"),
    "additive": ("--score", "additive"),
}
MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Each configuration drawn once in each format through the command line."""
    from typer.testing import CliRunner

    from mha_cli.cli import app

    folder = tmp_path_factory.mktemp("diagrams")
    env = {"COLUMNS": "160", "NO_COLOR": "1", "MHA_DEBUG": ""}
    results = {}
    for name, options in {**CONFIGS, "bert-base": ("--config", "bert-base")}.items():
        formats = ("svg",) if name == "bert-base" else tuple(MAGIC)
        for fmt in formats:
            path = folder / f"{name}.{fmt}"
            # PNGs other than the chapter's at a low resolution: the same drawing, faster
            dpi = ("--dpi", "40") if fmt == "png" and name != "chapter" else ()
            arguments = ["diagram", "--out", str(path), *dpi, *options]
            result = CliRunner().invoke(app, arguments, env=env)
            results[name, fmt] = (result, path)
    return results


def svg_labels(path: Path) -> tuple[dict[str, str], list[str]]:
    """(group id -> its text) for the shape and axes labels, and every text in the picture."""
    root = ET.parse(path).getroot()
    labels, texts = {}, []
    for group in root.iter(f"{SVG}g"):
        words = "".join(t.text or "" for t in group.iter(f"{SVG}text"))
        if group.get("id", "").startswith(("shape-", "axes-")):
            labels[group.get("id")] = words
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    return labels, texts


def stage_table(cli, *options: str) -> list[dict]:
    result = cli("inspect", "--format", "json", *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["stages"]


@pytest.mark.parametrize("name", [*CONFIGS, "bert-base"])
def test_svg_shapes_and_axes_are_the_stage_table(cli, drawn, name):
    result, path = drawn[name, "svg"]
    assert result.exit_code == 0, result.output
    options = (
        ("--config", "bert-base", "--device", "meta") if name == "bert-base" else CONFIGS[name]
    )
    stages = stage_table(cli, *options)  # the table as `mha inspect` prints it (cpu run)
    labels, _ = svg_labels(path)
    shapes = {k.removeprefix("shape-"): v for k, v in labels.items() if k.startswith("shape-")}
    axes = {k.removeprefix("axes-"): v for k, v in labels.items() if k.startswith("axes-")}
    assert shapes == {s["name"]: str(tuple(s["shape"])) for s in stages}
    assert axes == {s["name"]: ", ".join(s["axes"]) for s in stages}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("fmt", MAGIC)
def test_every_format_is_written_whole_and_reported(drawn, name, fmt):
    result, path = drawn[name, fmt]
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the answer is the file; its path goes to stderr
    assert result.stderr.splitlines() == [f"wrote {path}"]
    assert path.read_bytes().startswith(MAGIC[fmt])
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []
    if fmt == "png" and name == "chapter":
        height, width, _ = matplotlib.image.imread(path).shape
        assert width > 900 and height > 900  # a page, not a thumbnail, at the default dpi


def texts_of(drawn, name: str) -> str:
    return "\n".join(svg_labels(drawn[name, "svg"][1])[1])


def test_the_chapter_shows_heads_as_stacks_and_d2l_functions(drawn):
    text = texts_of(drawn, "chapter")
    for words in (
        "split into heads",
        "fold heads into batch",
        "unfold heads from batch",
        "concatenate heads",
        "transpose_qkv",
        "transpose_output",
        "×5 heads",
        "×5 heads in batch",
        "100 → 5 × 20",  # the split: hiddens into heads x head dim
        "2 × 5 → 10",  # the fold: (batch heads)
        "10,000 params",
        "bmm(Q, Kᵀ) / √20",
        "padding beyond valid_lens [3, 2]",
        "masked softmax",
        "parameters 40,000",
    ):
        assert words in text, words
    assert text.count("W_q") == 1 and text.count("W_o") == 1


def test_grouped_query_rope_norm_window_are_drawn(drawn):
    text = texts_of(drawn, "grouped-query")
    assert "MultiHeadAttention (grouped-query)" in text
    assert "×2 kv heads" in text and "×8 heads" in text
    assert text.count("share kv heads") == 2  # keys and values
    assert "kv head j → query heads 4j..4j+3" in text
    assert "kv head 0 → query heads 0..3, kv head 1 → query heads 4..7" in text
    assert text.count("rotary embedding") == 2  # queries and keys, never values
    assert text.count("RMSNorm per head") == 2
    assert "causal: keys after the query" in text and "window 3: keys 3+ back" in text


def test_full_values_are_expanded_to_every_head(drawn):
    text = texts_of(drawn, "full-values")
    assert "expand to every head" in text
    assert "split into heads" in text and text.count("split into heads") == 2  # not values
    assert "5 × 100 → 500" in text  # the concatenation
    assert "Linear 500 → 100" in text and "50,000 params" in text
    assert "values kept whole: every head" in text


def test_additive_scoring_has_its_own_steps(drawn):
    text = texts_of(drawn, "additive")
    assert "AdditiveAttention" in text
    assert "tanh(q + k): every query with every key" in text
    assert "w_v" in text and "Linear 8 → 1" in text
    assert "W_o" not in text and "transpose_qkv" not in text and "split into heads" not in text
    assert "×" not in text  # one head: nothing is drawn as a stack


def test_no_mask_box_without_valid_lens_or_causal(drawn):
    text = texts_of(drawn, "bert-base")
    assert "mask" not in text.split("\n") and "masked softmax" not in text
    assert "softmax" in text and "Linear 768 → 768 + bias" in text and "×12 heads" in text


def test_default_out_is_diagram_png_here(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("diagram", "--dpi", "40")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["wrote diagram.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["diagram.png"]


def test_dpi_scales_the_png(cli, drawn, tmp_path):
    small = tmp_path / "small.png"
    assert cli("diagram", "--dpi", "50", "--out", str(small)).exit_code == 0
    full_height, full_width, _ = matplotlib.image.imread(drawn["chapter", "png"][1]).shape
    height, width, _ = matplotlib.image.imread(small).shape
    assert abs(width - full_width / 2) <= 1 and abs(height - full_height / 2) <= 1


def test_an_existing_folder_gets_diagram_png(cli, tmp_path):
    result = cli("diagram", "--dpi", "40", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "diagram.png").read_bytes().startswith(MAGIC["png"])


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("picture.txt", "'.txt' is not an image format; use .png, .svg or .pdf"),
        ("missing/picture.png", "folder missing does not exist; create it first"),
    ],
)
def test_a_bad_out_is_one_line_before_anything_runs(cli, tmp_path, monkeypatch, out, message):
    monkeypatch.chdir(tmp_path)
    result = cli("diagram", "--out", out)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_bad_spec_is_one_line(cli):
    result = cli("diagram", "--heads", "3")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "not divisible by heads (3)" in result.stderr


def test_terminal_tree_shows_every_stage_shape_and_writes_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = ("--kv-heads", "1", "--valid-lens", "3,2")
    result = cli("diagram", "--terminal", *options)
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []
    for stage in stage_table(cli, *options):
        assert f"→ {tuple(stage['shape'])}  {', '.join(stage['axes'])}" in result.stdout
    for words in ("share kv heads", "kv head 0 → all 5 query heads", "×1 kv head", "[3, 2]"):
        assert words in result.stdout
    assert "← queries.fold, keys.fold" in result.stdout and "← mask" in result.stdout
    assert "multi-query: all 5 query heads share one kv head" in result.stdout
    assert "\x1b[" not in result.stdout


def test_terminal_tree_of_a_training_run_with_per_query_lengths(cli):
    options = ("--dropout", "0.1", "--train", "--valid-lens", "1,2,3,4;4,3,2,1", "--bias")
    result = cli("diagram", "--terminal", *options)
    assert result.exit_code == 0, result.output
    for stage in stage_table(cli, *options):
        assert f"→ {tuple(stage['shape'])}  {', '.join(stage['axes'])}" in result.stdout
    assert "dropout                  p = 0.1 (training)" in result.stdout
    assert "one length per query, 2 × 4" in result.stdout
    assert "padding beyond each query's valid_len" in result.stdout
    assert "Linear 100 → 100 + bias" in result.stdout


def test_terminal_with_out_does_both(cli, tmp_path):
    path = tmp_path / "d.svg"
    result = cli("diagram", "--terminal", "--out", str(path))
    assert result.exit_code == 0 and path.exists()
    assert "(10, 4, 6)" in result.stdout and result.stderr.splitlines() == [f"wrote {path}"]


def test_python_api_returns_a_figure_with_the_shapes():
    from matplotlib.figure import Figure

    import mha_cli

    figure = mha_cli.diagram(kv_heads=1)
    assert isinstance(figure, Figure)
    shapes = {t.get_gid(): t.get_text() for t in figure.axes[0].texts if t.get_gid()}
    assert shapes["shape-keys.share"] == "(2, 5, 6, 20)"
    assert shapes["shape-W_k"] == "(2, 6, 20)"


def test_help_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys; from mha_cli.cli import app; from typer.testing import CliRunner; "
        "CliRunner().invoke(app, ['diagram', '--help']); "
        "CliRunner().invoke(app, ['variants', '--help']); "
        "print(sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
