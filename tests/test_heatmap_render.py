"""The heatmap renderers: files that open, the numbers plotted, masked cells, atomic writes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from mha_cli.errors import MhaError
from mha_cli.heatmaps import image as heatmap
from mha_cli.heatmaps.data import (
    HeatmapData,
    annotate_allowed,
    compose_grid,
    panel_slices,
    separator_cells,
)
from mha_cli.heatmaps.image import render_grid, render_per_head
from mha_cli.heatmaps.terminal import MASK_GLYPH, SHADES, terminal_grid


def chapter_data(seed: int = 0) -> HeatmapData:
    """The chapter's shape: 2 examples, 5 heads, 4 queries, 6 keys, valid_lens [3, 2]."""
    rng = np.random.default_rng(seed)
    masked = np.zeros((2, 5, 4, 6), dtype=bool)
    masked[0, :, :, 3:] = True
    masked[1, :, :, 2:] = True
    scores = np.where(masked, -1e6, rng.normal(size=masked.shape))
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)  # (b, h, q, k)
    return HeatmapData(weights.astype(np.float32), masked, "chapter example")


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_compose_grid_holds_each_panel_exactly() -> None:
    data = chapter_data()
    grid = compose_grid(data)
    for b in range(2):
        for h in range(5):
            rows, cols = panel_slices(data, b, h)
            block = grid[rows, cols]
            np.testing.assert_array_equal(block.data, data.weights[b, h])
            np.testing.assert_array_equal(np.ma.getmaskarray(block), data.masked[b, h])


def test_compose_grid_masks_the_separators() -> None:
    data = chapter_data()
    grid = compose_grid(data)
    inside = np.zeros(grid.shape, dtype=bool)
    for b in range(2):
        for h in range(5):
            inside[panel_slices(data, b, h)] = True
    assert np.ma.getmaskarray(grid)[~inside].all()
    gap = separator_cells(data)
    assert grid.shape == (2 * 4 + gap, 5 * 6 + 4 * gap)


def test_causal_mask_broadcasts_to_every_panel() -> None:
    causal = np.triu(np.ones((3, 3), dtype=bool), 1)[None, None]  # (1, 1, q, k)
    data = HeatmapData(np.full((2, 2, 3, 3), 0.5), causal, "causal")
    assert data.masked.shape == (2, 2, 3, 3)
    assert np.ma.getmaskarray(compose_grid(data)[panel_slices(data, 1, 1)]).tolist() == (
        causal[0, 0].tolist()
    )


@pytest.mark.parametrize("dpi", [50, 100])
def test_png_opens_with_a_size_that_follows_the_dpi(tmp_path: Path, dpi: int) -> None:
    from PIL import Image

    path = render_grid(chapter_data(), tmp_path / "grid.png", dpi=dpi)
    assert path == tmp_path / "grid.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert 14 * dpi > width > 9 * dpi and 6 * dpi > height > 3 * dpi  # inches = pixels / dpi
    with Image.open(render_grid(chapter_data(), tmp_path / "ref.png", dpi=2 * dpi)) as image:
        # Twice the dpi, twice the pixels, give or take the rounding of cells to whole pixels.
        assert image.size[0] == pytest.approx(2 * width, rel=0.04)
        assert image.size[1] == pytest.approx(2 * height, rel=0.04)
    assert files_in(tmp_path) == ["grid.png", "ref.png"]  # no temporary file left behind


def test_svg_and_pdf_are_what_they_claim(tmp_path: Path) -> None:
    svg = render_grid(chapter_data(), tmp_path / "grid.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    assert render_grid(chapter_data(), tmp_path / "grid.PDF").read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize("name", ["grid.jpg", "grid", "grid.png.bak"])
def test_bad_extension_is_one_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(MhaError, match=r"^cannot write heatmap .*; use \.png, \.svg or \.pdf$"):
        render_grid(chapter_data(), tmp_path / name)
    assert files_in(tmp_path) == []


def test_per_head_writes_one_file_per_example_and_head(tmp_path: Path) -> None:
    messages: list[str] = []
    paths = render_per_head(chapter_data(), tmp_path / "heads", fmt="svg", progress=messages.append)
    expected = sorted(f"example{b}_head{h}.svg" for b in range(2) for h in range(5))
    assert sorted(p.name for p in paths) == expected
    assert files_in(tmp_path / "heads") == expected
    assert all(p.read_text().startswith("<?xml") for p in paths)
    assert messages == []  # ten small files: quick, so quiet


def test_per_head_rejects_a_bad_format_and_a_file_as_folder(tmp_path: Path) -> None:
    with pytest.raises(MhaError, match=r"^--image-format 'gif' is not one of png, svg, pdf"):
        render_per_head(chapter_data(), tmp_path, fmt="gif")
    (tmp_path / "taken").write_text("")
    with pytest.raises(MhaError, match=r"^cannot write per-head heatmaps into .*taken"):
        render_per_head(chapter_data(), tmp_path / "taken")


@pytest.mark.parametrize("failing", ["savefig", "write_png"])
def test_a_failed_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Whether matplotlib fails while drawing or the PNG fails half written, no file is left
    and an old file of that name is kept."""
    from matplotlib.figure import Figure

    from mha_cli.render import png

    def broken(*args: object, **kwargs: object) -> None:
        target = args[1] if failing == "savefig" else args[0]  # (figure, fname) or (out, ...)
        if isinstance(target, (str, Path)):
            Path(target).write_bytes(b"half an image")  # a partial file, then the failure
        else:
            target.write(b"half an image")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    if failing == "savefig":
        monkeypatch.setattr(Figure, "savefig", broken)
    else:
        monkeypatch.setattr(png, "write_png", broken)
    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        render_grid(chapter_data(), tmp_path / "grid.png")
    with pytest.raises(RuntimeError, match="disk full"):
        render_grid(chapter_data(), tmp_path / "old.png")
    assert files_in(tmp_path) == ["old.png"]
    assert (tmp_path / "old.png").read_bytes() == b"old"


def test_annotate_only_for_small_panels(tmp_path: Path) -> None:
    assert annotate_allowed(chapter_data())
    big = HeatmapData(np.full((1, 1, 17, 4), 0.25), np.zeros((1, 1, 17, 4), bool), "tall")
    assert not annotate_allowed(big)
    # Asked for anyway on a big panel: ignored, the file is still written.
    assert render_grid(big, tmp_path / "big.png", annotate=True).exists()
    assert render_grid(chapter_data(), tmp_path / "small.png", annotate=True).exists()


def test_large_grids_report_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heatmap, "LARGE_CELLS", 100)
    messages: list[str] = []
    render_grid(chapter_data(), tmp_path / "grid.png", progress=messages.append)
    assert messages[0].startswith("drawing 10 panels") and "grid.png" in messages[-1]


def test_nothing_to_draw_is_an_error(tmp_path: Path) -> None:
    empty = HeatmapData(np.zeros((1, 1, 0, 6)), np.zeros((1, 1, 0, 6), bool), "empty")
    with pytest.raises(MhaError, match=r"^nothing to draw"):
        render_grid(empty, tmp_path / "grid.png")


def render_text(data: HeatmapData, width: int = 120) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(terminal_grid(data, max_width=width))
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def test_terminal_grid_shows_the_mask_glyph_exactly_at_masked_cells() -> None:
    weights = np.array([[[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], [[0.3, 0.3, 0.4], [0.9, 0.1, 0.0]]]])
    masked = np.array(
        [
            [
                [[False, False, True], [False, True, True]],
                [[False, False, False], [False, False, True]],
            ]
        ]
    )  # (1, 2, 2, 3)
    lines = render_text(HeatmapData(weights, masked, "hand-made"))
    assert lines[0] == "hand-made"
    assert "head 0" in lines[1] and "head 1" in lines[1]
    rows = [line for line in lines if "│" in line]
    assert rows[0].startswith("example 0")
    for query, line in enumerate(rows):
        panels = line.split("│")[1:-1]
        assert len(panels) == 2
        for head, panel in enumerate(panels):
            cells = [panel[i : i + 2] for i in range(0, len(panel), 2)]
            for key, cell in enumerate(cells):
                assert (cell == MASK_GLYPH * 2) == masked[0, head, query, key]
                if not masked[0, head, query, key]:
                    assert cell[0] == cell[1] and cell[0] in SHADES
    assert rows[1].split("│")[1][:2] == "██"  # the largest weight, 1.0, is the darkest shade
    assert any("masked (padding / causal)" in line for line in lines)


def test_terminal_grid_crops_big_panels_and_says_so() -> None:
    shape = (2, 12, 128, 128)
    data = HeatmapData(np.full(shape, 1 / 128), np.zeros(shape, bool), "big")
    lines = render_text(data)
    assert all(len(line) <= 120 for line in lines)
    assert "showing queries 0-23 of 128 and keys 0-" in " ".join(lines)
    assert sum("head 11" in line for line in lines) == 1


def test_importing_the_renderers_pulls_in_neither_matplotlib_nor_numpy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mha_cli.heatmaps.data, mha_cli.heatmaps.terminal; "
        "print(sorted(m for m in ('matplotlib', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_png_writer_round_trips_pixels_dpi_and_text(tmp_path: Path) -> None:
    """`render.png` writes what Pillow reads back byte for byte, over several row pieces."""
    from PIL import Image

    from mha_cli.render import png

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(png.ROWS_PER_PIECE * 2 + 7, 33, 4), dtype=np.uint8)
    pixels[:5, :, 3] = 0  # transparent rows stay transparent, colours kept (straight alpha)
    with open(tmp_path / "x.png", "wb") as out:
        png.write_png(out, pixels, 72, {"Software": "mha test"})
    with Image.open(tmp_path / "x.png") as image:
        assert image.mode == "RGBA" and image.size == (33, png.ROWS_PER_PIECE * 2 + 7)
        assert image.info["dpi"] == pytest.approx((72, 72), abs=0.01)
        assert image.info["Software"] == "mha test"
        np.testing.assert_array_equal(np.asarray(image), pixels)


def matplotlib_png(fig: object) -> np.ndarray:
    """The figure as matplotlib itself writes a PNG (Pillow), its image resampled by matplotlib
    from float32 colours: the reference for the fast path's pixels."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)  # type: ignore[attr-defined]
    with Image.open(buffer) as image:
        return np.asarray(image).copy()


@pytest.mark.parametrize(
    ("shape", "dpi"),
    [((12, 12, 128, 128), 100), ((2, 5, 4, 6), 100), ((1, 3, 9, 9), 72), ((3, 16, 40, 40), 50)],
)
def test_png_pixels_are_matplotlibs_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], dpi: int
) -> None:
    """The heatmap PNG (cells of one pixel and of many, masked cells, NaN) is drawn without
    matplotlib's float32 resampling, and has exactly the pixels that resampling and savefig
    give for the same figure."""
    from matplotlib import image as mpl_image
    from PIL import Image

    rng = np.random.default_rng(4)
    weights = rng.random(shape).astype(np.float32)
    masked = rng.random(shape) < 0.1
    weights[0, 0, 0, 0] = np.nan
    data = HeatmapData(weights, masked, "reference")
    resampled = []
    resample = mpl_image._ImageBase._make_image

    def counted(self: object, *args: object, **kwargs: object) -> object:
        resampled.append(args[0].shape)  # type: ignore[attr-defined]
        return resample(self, *args, **kwargs)

    monkeypatch.setattr(mpl_image._ImageBase, "_make_image", counted)
    path = render_grid(data, tmp_path / "fast.png", dpi=dpi)
    assert resampled == []  # whole pixels per cell: each cell repeated, nothing resampled
    reference = heatmap.grid_figure(data, dpi=dpi)
    drawn = reference.axes[0].images[0]
    del drawn.make_image  # matplotlib's own resampling of the float32 colours
    grid = compose_grid(data, heatmap.compute_layout(data, dpi, False, "").plan)
    drawn.set_data(heatmap._rgba(grid, heatmap.colour_scale(data, "auto")))
    with Image.open(path) as image:
        np.testing.assert_array_equal(np.asarray(image), matplotlib_png(reference))
