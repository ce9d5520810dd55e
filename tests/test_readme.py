"""The README shows the tool's real output: every generated block must match what it prints now.

`python scripts/readme.py` regenerates the blocks and images; this test fails when a table, a
stage name, a message or a picture changed without the README being regenerated.
"""

from __future__ import annotations

import functools
import importlib.util
import re
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
    """Exactly, except rounding noise and torch's version (`comparable`): they differ between
    CPUs, BLAS kernels and thread counts, and the README was generated on one machine."""
    script = readme_script()
    text = script.README.read_text(encoding="utf-8")
    fresh = script.comparable_text(script.regenerate(text, images=False))
    committed = script.comparable_text(text)
    if fresh != committed:
        stale = [
            f"{old!r} -> {new!r}" for old, new in zip(committed, fresh, strict=False) if old != new
        ]
        pytest.fail("README.md is out of date (python scripts/readme.py): " + "; ".join(stale[:3]))


# `mha compare`'s table and verdicts as two machines print them: other rounding, other places.
HERE = """\
│ masked_softmax  attention weights        │        8.3e-08 │               6.0e-08 │
│ (batch, heads, queries, kv pairs)        │   (0, 1, 2, 2) │          (0, 2, 3, 0) │
│ W_q  self.W_q(queries)                   │        5.8e-07 │                     0 │
│    0 │ 6.0e-08 masked_softmax │ 6.0e-08 weighted_sum │
  ✓ SDPA math agrees: largest error against float64 3.9e-07 at weighted_sum, allowed 1.0e-05
d2l's layer against torch: float32 on cpu, torch 2.13.0+cpu"""
THERE = """\
│ masked_softmax  attention weights        │         9.1e-08 │               6.0e-08 │
│ (batch, heads, queries, kv pairs)        │    (1, 0, 2, 1) │         (1, 2, 3, 10) │
│ W_q  self.W_q(queries)                   │         3.0e-08 │               1.2e-08 │
│    0 │ 1.2e-07 weighted_sum │ 0 masked_softmax │
  ✓ SDPA math agrees: largest error against float64 2.8e-07 at W_o, allowed 1.0e-05
d2l's layer against torch: float32 on cpu, torch 2.13.0"""


def test_rounding_noise_and_its_places_are_not_compared():
    comparable = readme_script().comparable
    assert comparable(HERE.splitlines()) == comparable(THERE.splitlines())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("allowed 1.0e-05", "allowed 2.0e-05"),  # a tolerance is no noise
        ("✓ SDPA math agrees", "✗ SDPA math disagrees"),  # nor a verdict
        ("masked_softmax  attention", "weighted_sum  attention"),  # nor a stage's name
        ("against float64 3.9e-07", "against float64 3.9e-02"),  # nor a real difference
    ],
)
def test_what_is_not_noise_is_still_compared(old, new):
    comparable = readme_script().comparable
    assert comparable(HERE.splitlines()) != comparable(HERE.replace(old, new).splitlines())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("output: (2, 4, 100)", "output: (2, 4, 99)"),  # shapes, where nothing is noise
        ("range -3.15 .. 2.92", "range -3.15 .. 2.93"),
        ("largest difference 0.556", "largest difference 0.557"),
        ("keys 3..5 masked", "keys 2..5 masked"),
    ],
)
def test_blocks_without_noise_are_compared_exactly(old, new):
    comparable = readme_script().comparable
    text = "output: (2, 4, 100) range -3.15 .. 2.92 largest difference 0.556; keys 3..5 masked"
    assert comparable([text]) != comparable([text.replace(old, new)])


def test_every_relative_link_resolves_to_a_file_in_the_repository():
    """Links and images a reader follows on GitHub or in a clone: never outside the repository
    (`../shared/...`), never to a file that is not there."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)
    targets += re.findall(r'(?:src|href)="([^"]+)"', text)
    relative = [t for t in targets if not re.match(r"[a-z]+:|#", t)]
    assert relative, "the README links no file: the pattern above is wrong"
    for target in relative:
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{target} points outside the repository"
        assert path.is_file(), f"{target} is not a file in the repository"


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


def test_set_up_commands_are_the_ones_ci_runs_and_the_cpu_hint_holds_on_pypi():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)
    assert "pip install . && mha inspect --heads 5 --queries 4 --kv 6" in commands
    test_command = 'pip install -e ".[test]" && ruff check . && pytest'
    assert test_command in commands
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
    # the public index's torch is the CUDA build on Linux: the CPU wheels are on PyTorch's index
    cpu = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    assert cpu in commands
    assert commands.index(cpu) < commands.index(test_command)
    assert (
        text.index("## Install") < text.index("## The readers' questions") < text.index("### In CI")
    )


def test_the_summary_under_the_table_is_shown_whole_once():
    """Blocks show the part of the output that answers their question, not the same ten lines
    of totals under every table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert sum(line.startswith("memory: activations") for line in text.splitlines()) <= 2
    assert sum(line.startswith("FLOPs: ") for line in text.splitlines()) <= 2
