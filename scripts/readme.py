"""Regenerate the README's real output from the tool itself, so the README cannot drift.

The README marks each generated part, and this script rewrites what follows the marker up to
`<!-- end -->`:

    <!-- mha: inspect --heads 5 --queries 4 --kv 6 -->     the command's output, as a text block
    <!-- mha-stderr: inspect --expect output=2,4,99 -->   only what it writes on stderr
    <!-- mha-image: heatmap --out docs/heatmap.png -->    runs it; the image is linked below
    <!-- python -->                                        runs the Python block above the output

Run `python scripts/readme.py` to rewrite README.md (and the images), or `--check` to fail when
any text block differs from what the tool prints now (tests/test_readme.py does that).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
WIDTH = 160  # what a pipe or CI log gets
MARKER = re.compile(r"^<!-- (mha|mha-stderr|mha-image|python): ?(.*?) -->$")
END = "<!-- end -->"


@dataclass
class Block:
    kind: str  # "mha", "mha-image" or "python"
    argument: str  # the command line after `mha`, or "" for python
    start: int  # line index of the marker
    end: int  # line index of the END line
    body: list[str]  # the lines between marker and END, as they are now


def blocks(lines: list[str]) -> Iterator[Block]:
    index = 0
    while index < len(lines):
        match = MARKER.match(lines[index])
        if not match:
            index += 1
            continue
        end = lines.index(END, index + 1)
        yield Block(match.group(1), match.group(2), index, end, lines[index + 1 : end])
        index = end + 1


@contextlib.contextmanager
def in_root() -> Iterator[None]:
    before = Path.cwd()
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(before)


def run_mha(argument: str, streams: str = "both") -> str:
    """`mha ARGUMENT` in-process, as a pipe sees it: stdout, then stderr, one text (or only
    `streams="stderr"`)."""
    from typer.testing import CliRunner

    from mha_cli.cli import app

    env = {"COLUMNS": str(WIDTH), "NO_COLOR": "1", "MHA_DEBUG": ""}
    with in_root():
        result = CliRunner().invoke(app, shlex.split(argument), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise RuntimeError(f"mha {argument}: {result.exception!r}")
    text = result.stderr if streams == "stderr" else result.stdout + result.stderr
    return text.rstrip("\n")


def render_mha(block: Block) -> list[str]:
    streams = "stderr" if block.kind == "mha-stderr" else "both"
    output = run_mha(block.argument, streams)
    shown = f"$ mha {block.argument}" + (" > /dev/null" if streams == "stderr" else "")
    return ["```text", shown, *output.splitlines(), "```"]


def render_image(block: Block) -> list[str]:
    """Runs the command (which writes the image) and links the image it names with --out."""
    run_mha(block.argument)
    words = shlex.split(block.argument)
    option = next(o for o in ("--out", "--render") if o in words)
    path = words[words.index(option) + 1]
    alt = next((line for line in block.body if line.startswith("![")), None)
    text = alt[2 : alt.index("]")] if alt else f"mha {block.argument}"
    return [f"![{text}]({path})"]


def python_code(lines: list[str], marker: int) -> str:
    """The ```python block right above the marker."""
    end = marker - 1
    while not lines[end].startswith("```"):
        end -= 1
    start = end - 1
    while not lines[start].startswith("```python"):
        start -= 1
    return "\n".join(lines[start + 1 : end])


def render_python(block: Block, lines: list[str]) -> list[str]:
    code = python_code(lines, block.start)
    output = io.StringIO()
    with in_root(), contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    return ["```text", *output.getvalue().rstrip("\n").splitlines(), "```"]


def regenerate(text: str, *, images: bool) -> str:
    lines = text.split("\n")
    out: list[str] = []
    position = 0
    for block in blocks(lines):
        out.extend(lines[position : block.start + 1])
        if block.kind in ("mha", "mha-stderr"):
            out.extend(render_mha(block))
        elif block.kind == "python":
            out.extend(render_python(block, lines))
        else:
            out.extend(render_image(block) if images else block.body)
        position = block.end
    out.extend(lines[position:])
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md would change")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    fresh = regenerate(text, images=not args.check)
    if args.check:
        if fresh != text:
            print("README.md is out of date: run python scripts/readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
