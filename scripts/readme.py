"""Regenerate the README's real output from the tool itself, so the README cannot drift.

The README marks each generated part, and this script rewrites what follows the marker up to
`<!-- end -->`:

    <!-- mha: inspect --heads 5 --queries 4 --kv 6 -->     the command's output, as a text block
    <!-- mha-stderr: inspect --expect output=2,4,99 -->   only what it writes on stderr
    <!-- mha-tail 12: trace FILE.py:NAME --check -->       its last 12 lines, after "..."
    <!-- mha-only table|axes: inspect --stages W_q -->     only the table and the lines that
                                                           start with `axes` ("..." between)
    <!-- mha-image: heatmap --out docs/heatmap.png -->    runs it; the image is linked below
    <!-- python -->                                        runs the Python block above the output

Run `python scripts/readme.py` to rewrite README.md (and the images), or `--check` to fail when
any text block differs from what the tool prints now (tests/test_readme.py does that).

The check compares blocks after `comparable()`: float32 rounding noise (numbers below 1e-5, the
places where they occur, the stage they were found in) depends on the CPU, the BLAS kernels and
the thread count, so it is replaced by placeholders on both sides, never compared digit for
digit; so is the version of torch. Everything else is compared exactly.
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
WIDE = 1000  # for `mha-only` blocks: no line wrapped, so a kept line is whole
MARKER = re.compile(
    r"^<!-- (mha|mha-stderr|mha-tail \d+|mha-only [^:]+|mha-image|python): ?(.*?) -->$"
)
END = "<!-- end -->"
TABLE = "table"  # in `mha-only`: the title line and the table under it


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


def run_mha(argument: str, streams: str = "both", width: int = WIDTH) -> str:
    """`mha ARGUMENT` in-process, as a pipe sees it: stdout, then stderr, one text (or only
    `streams="stderr"`)."""
    from typer.testing import CliRunner

    from mha_cli.cli import app

    env = {"COLUMNS": str(width), "NO_COLOR": "1", "MHA_DEBUG": ""}
    with in_root():
        result = CliRunner().invoke(app, shlex.split(argument), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise RuntimeError(f"mha {argument}: {result.exception!r}")
    text = result.stderr if streams == "stderr" else result.stdout + result.stderr
    return text.rstrip("\n")


def render_mha(block: Block) -> list[str]:
    streams = "stderr" if block.kind == "mha-stderr" else "both"
    lines = run_mha(block.argument, streams).splitlines()
    shown = f"$ mha {block.argument}" + (" > /dev/null" if streams == "stderr" else "")
    if block.kind.startswith("mha-tail"):
        count = int(block.kind.split()[1])
        lines = ["...", *lines[-count:]] if len(lines) > count else lines
    if block.kind.startswith("mha-only"):
        wide = run_mha(block.argument, streams, WIDE).splitlines()
        lines = only_lines(lines, wide, block.kind.split(" ", 1)[1].split("|"))
    return ["```text", shown, *lines, "```"]


def only_lines(lines: list[str], wide: list[str], wanted: list[str]) -> list[str]:
    """The lines an `mha-only` block shows: the table (title to bottom border, as a 160-column
    pipe gets it) if `table` is wanted, then the lines below it that start with one of the other
    prefixes, from a console so wide that none is wrapped; "..." where lines were left out."""
    prefixes = tuple(w.strip() for w in wanted if w.strip() != TABLE) or ("\0",)
    out = lines[: _bottom(lines) + 1] if TABLE in wanted else []
    for line in wide[_bottom(wide) + 1 :]:
        if line.strip().startswith(prefixes):
            out.append(line.rstrip())
        elif not out or out[-1] != "...":
            out.append("...")
    return out


def _bottom(lines: list[str]) -> int:
    """The index of the table's bottom border (-1 when there is no table)."""
    return next((i for i, line in enumerate(lines) if line.startswith(("└", "┗"))), -1)


# float32 rounding noise: a number below 1e-5 in e-notation, with the stage named after it
NOISE = re.compile(
    r"(?<!rtol )(?<![\w.])\d(?:\.\d+)?e-(?:0[6-9]|[1-9]\d)(?: at [\w.]+| [a-z_][\w.]*)?"
)
# an exact 0 in a table (with the stage it was found in): rounding elsewhere may make it 1e-8
ZERO_CELL = re.compile(r"(?<=│) +0(?: [a-z_][\w.]*)? +(?=│)")
INDEX = re.compile(r"\(\d+(?:, \d+)+\)")  # where a largest difference occurs
TORCH_VERSION = re.compile(r"torch \d+\.\d+(?:\.\d+)?(?:\+\w+)?")
LAYOUT = re.compile(r"[\s│┃┏┓┗┛┡┩┣┫┳┻╇╋━─┌┐└┘├┤┬┴┼]+")


def comparable(body: list[str]) -> str:
    """A generated block with what differs between machines made equal: torch's version, and
    in a block that shows rounding noise, the noise itself, the indices where it is largest,
    and the table layout their widths change. Meaningful numbers stay as they are."""
    text = TORCH_VERSION.sub("torch <version>", "\n".join(body))
    if NOISE.search(text):
        text = ZERO_CELL.sub(" <noise> ", text)
        text = INDEX.sub("(<index>)", NOISE.sub("<noise>", text))
        text = LAYOUT.sub(" ", text)
    return text


def comparable_text(text: str) -> list[str]:
    """Every generated block of a README text, made comparable (`comparable`), and the rest of
    the text as it is."""
    lines = text.split("\n")
    parts, position = [], 0
    for block in blocks(lines):
        parts.extend(lines[position : block.start + 1])
        parts.append(comparable(block.body))
        position = block.end
    parts.extend(lines[position:])
    return parts


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
        if block.kind in ("mha", "mha-stderr") or block.kind.startswith(("mha-tail", "mha-only")):
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
        if comparable_text(fresh) != comparable_text(text):
            print("README.md is out of date: run python scripts/readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
