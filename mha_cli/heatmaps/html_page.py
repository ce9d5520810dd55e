"""`--out view.html`: the attention on a text as one self-contained interactive page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError

if TYPE_CHECKING:
    from mha_cli.heatmaps.data import HeatmapData


def is_page(out: str | os.PathLike[str] | None) -> bool:
    return out is not None and os.fspath(out).lower().endswith(".html")


def check_page(path: Path, per_head: bool, options: dict[str, Any]) -> None:
    """Before the run: a page needs a text, holds every head, and goes into a folder that is."""
    if not any(options.get(name) for name in ("text", "text_file")):
        raise MhaError(
            f"--out {path}: the interactive page shows a model's attention on a text; give "
            "--text and --weights MODEL (or an image file: .png, .svg, .pdf)"
        )
    if per_head:
        raise MhaError(f"--out {path}: the page holds every head already; drop --per-head")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MhaError(f"cannot write {path}: folder {folder} does not exist; create it first")


def write_page(path: Path, report: Any, data: HeatmapData) -> Path:
    """The page of the run's attention, its tokens and what each head does, written whole."""
    from mha_cli.files.atomic import write_atomically
    from mha_cli.heatmaps.html_view import html_view

    text = getattr(report, "text", None)
    page = html_view(data, list(text.heads) if text is not None else [])

    def write(tmp: Path) -> None:
        tmp.write_text(page, encoding="utf-8")

    write_atomically(path, write)
    return path
