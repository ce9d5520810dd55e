"""The README shows the tool's real output: every generated block must match what it prints now.

`python scripts/readme.py` regenerates the blocks and images; this test fails when a table, a
stage name, a message or a picture changed without the README being regenerated.
"""

from __future__ import annotations

import functools
import importlib.util
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def readme_script():
    spec = importlib.util.spec_from_file_location("readme_script", ROOT / "scripts" / "readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_text_block_is_what_the_tool_prints_now():
    script = readme_script()
    text = script.README.read_text(encoding="utf-8")
    fresh = script.regenerate(text, images=False)
    if fresh != text:
        stale = [
            f"{old!r} -> {new!r}"
            for old, new in zip(text.splitlines(), fresh.splitlines(), strict=False)
            if old != new
        ]
        pytest.fail("README.md is out of date (python scripts/readme.py): " + "; ".join(stale[:3]))


def image_blocks() -> list[str]:
    script = readme_script()
    lines = script.README.read_text(encoding="utf-8").split("\n")
    return [b.argument for b in script.blocks(lines) if b.kind == "mha-image"]


@pytest.mark.parametrize("argument", image_blocks())
def test_every_image_is_what_the_tool_draws_now(tmp_path, argument):
    import matplotlib.image
    import numpy as np

    script = readme_script()
    words = shlex.split(argument)
    option = next(o for o in ("--out", "--render") if o in words)
    committed = ROOT / words[words.index(option) + 1]
    words[words.index(option) + 1] = str(tmp_path / committed.name)
    script.run_mha(shlex.join(words))
    old = matplotlib.image.imread(committed)
    new = matplotlib.image.imread(tmp_path / committed.name)
    assert old.shape == new.shape, f"{committed} changed size: run python scripts/readme.py"
    # Exact pixels would also fail on a font hinting change; a changed picture moves far more.
    assert float(np.abs(old - new).mean()) < 0.005, f"{committed} changed: regenerate it"
