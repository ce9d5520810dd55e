"""`mha reshape --render` draws what the text says, reads at its size, and hatches masked keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from svg_text import flat, svg_texts

ISSUE = ["--shape", "10,4,6", "--axes", "(batch heads),queries,keys", "--batch", "2"]


def _words_of_the_explanation(cli, *args: str) -> list[str]:
    """What the text output must say, from the JSON document (not from either renderer)."""
    doc = json.loads(cli("reshape", *args, "--format", "json").stdout)
    words = [
        f"source axes: {doc['source_pattern']}",
        f"{doc['verdict']}: {doc['message']}",
        *(f"{t['role']} = {t['made_of']}" for t in doc["target"]),
    ]
    return words + ([f"fix: {doc['suggestion']}"] if doc["suggestion"] else [])


def _says_what_the_text_says(cli, args: list[str], out: Path) -> None:
    result = cli("reshape", *args, "--render", str(out))
    assert result.exit_code == 0, result.output
    drawn, printed = flat(" ".join(svg_texts(out))), flat(result.stdout)
    for words in _words_of_the_explanation(cli, *args):
        assert flat(words) in drawn, words
        if " = " not in words:  # the text shows the axes as a table, not as "role = made of"
            assert flat(words) in printed, words


@pytest.mark.parametrize(
    "args",
    [
        ["--shape", "2,1,10", "--to", "1,1,2,10"],  # folded: the book's question
        [*ISSUE, "--to", "2,5,4,6"],  # ok
    ],
)
def test_the_render_says_what_the_text_says(cli, tmp_path, args):
    _says_what_the_text_says(cli, args, tmp_path / "r.svg")


def test_the_issue_render_says_what_the_text_says_and_shows_the_fix(cli, tmp_path):
    out = tmp_path / "r.svg"
    _says_what_the_text_says(cli, [*ISSUE, "--to", "5,2,4,6"], out)  # mixed
    texts = svg_texts(out)
    assert "(10, 4, 6) -> (5, 2, 4, 6): mixed" in texts
    assert "(10, 4, 6) -> (2, 5, 4, 6): ok" in texts
    # The mixed grid's panels say what they hold: panel [0, 1] is example 0, head 1.
    assert texts.count("example 0, head 1") == 2  # once in each layout
    assert "<pattern" in out.read_text()  # masked keys are hatched


def test_both_layouts_use_the_picture(cli, tmp_path):
    """No large empty corner: the captions fill the space beside the short layout."""
    out = tmp_path / "r.png"
    assert cli("reshape", *ISSUE, "--to", "5,2,4,6", "--render", str(out)).exit_code == 0
    with Image.open(out) as image:
        ink = np.asarray(image.convert("L")) < 200  # (height, width)
        width, height = image.size
    assert width < 2000 and height < 1200  # 2040 x 1090 before, at 100 dpi
    quarter = ink[height // 2 :, width // 2 :]  # the bottom right
    assert quarter.mean() > 0.01


def test_render_to_a_missing_folder_is_one_line(cli, tmp_path):
    result = cli("reshape", "--render", str(tmp_path / "no" / "r.png"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert not Path(tmp_path / "no").exists()
