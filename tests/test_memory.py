"""Memory (issue 16, items 4 and 5): the estimate is what each command really holds, a layer
too big is refused before anything is allocated, and an allocation that fails anyway (an
address-space limit) is one line, exit 2, on every command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mha_cli.spec.entry import specification
from mha_cli.spec.memory import estimate_bytes, weights_bytes

MHA = str(Path(sys.executable).parent / "mha")
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160", "OMP_NUM_THREADS": "1"}
ENV.pop("MHA_DEBUG", None)

# Peak resident memory of one run, read from a wrapper process that waits for it.
_PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "assert done.returncode == 0, done.stderr.decode()\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
)


def peak_bytes(args: list[str], cwd: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, MHA, *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def options_of(args: list[str]) -> dict[str, object]:
    """--name value pairs as the Python API's keyword arguments."""
    names = [a.removeprefix("--").replace("-", "_") for a in args[::2]]
    values: list[object] = [int(v) if v.isdigit() else v for v in args[1::2]]
    return dict(zip(names, values, strict=True))


SIZES = {  # each a few hundred MB at its peak
    "inspect": "--batch 1 --heads 4 --hiddens 64 --queries 1500 --kv 1500",
    "heatmap": "--batch 1 --heads 2 --hiddens 16 --queries 1800 --kv 1800",
    "compare": "--batch 1 --heads 4 --hiddens 64 --queries 1200 --kv 1200",
    "heads": "--batch 1 --heads 4 --hiddens 64 --queries 1500 --kv 1500",
    "inspect-wide": "--batch 1 --heads 4 --hiddens 2048 --queries 1000 --kv 1000",
    "compare-wide": "--batch 1 --heads 4 --hiddens 2048 --queries 600 --kv 600",
}
TINY = "--batch 1 --heads 1 --hiddens 16 --queries 4 --kv 4"


@pytest.mark.parametrize("case", list(SIZES))
def test_estimate_is_the_measured_peak_within_one_and_a_half(case: str, tmp_path: Path) -> None:
    command = case.split("-")[0]
    extra = ["--valid-lens", "none"] + (["--out", "x.png"] if command == "heatmap" else [])
    args = SIZES[case].split()
    baseline = peak_bytes([command, *TINY.split(), *extra], tmp_path)
    measured = peak_bytes([command, *args, *extra], tmp_path) - baseline
    spec = specification(None, options_of(args) | {"valid_lens": "none"})
    estimated = estimate_bytes(spec, command)[0]
    assert estimated / 1.5 <= measured <= estimated * 1.5, (measured / 2**20, estimated / 2**20)


def test_weights_estimate_is_the_measured_peak(tmp_path: Path) -> None:
    args = ["--heads", "8", "--hiddens", "3000"]
    baseline = peak_bytes(["weights", "--heads", "1", "--hiddens", "16"], tmp_path)
    measured = peak_bytes(["weights", *args], tmp_path) - baseline
    estimated = weights_bytes(specification(None, options_of(args)))
    assert estimated / 1.5 <= measured <= estimated * 1.5, (measured / 2**20, estimated / 2**20)


def test_weights_too_big_is_refused_with_a_fix_that_runs(cli, monkeypatch) -> None:
    import mha_cli.layer.run as run

    monkeypatch.setattr(run, "available_bytes", lambda: 64 * 2**20)
    result = cli("weights", "--heads", "8", "--hiddens", "50000")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "needs about 74.5 GiB" in lines[0] and "64.0 MiB free" in lines[0]
    fix = lines[0].rsplit("e.g. ", 1)[1].split()
    assert fix[0] == "--hiddens"
    result = cli("weights", "--heads", "8", *fix)
    assert result.exit_code == 0, result.output


# An address-space limit (ulimit -v) with the estimate switched off: the allocation itself fails.
_LIMITED = (
    "import resource, sys\n"
    "limit = 2 * 2**30\n"
    "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "import mha_cli.spec.memory as memory\n"
    "memory.available_bytes = lambda: None  # what is tested is the failure, not the estimate\n"
    "from mha_cli.cli import main\n"
    "sys.argv = ['mha', *sys.argv[1:]]\n"
    "main()\n"
)
LONG = [
    *("--batch", "1", "--heads", "8", "--hiddens", "64"),
    *("--queries", "8000", "--kv", "8000", "--valid-lens", "none"),
]


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", *LONG],
        ["heatmap", *LONG],
        ["compare", *LONG],
        ["heads", *LONG],
        ["weights", "--heads", "8", "--hiddens", "30000"],
    ],
    ids=lambda args: args[0],
)
def test_allocation_failure_is_one_line(args: list[str], tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _LIMITED, *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("mha: out of memory: an allocation failed")
    assert "use smaller sizes" in lines[0]
    assert list(tmp_path.iterdir()) == []


def _limit_address_space() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))


@pytest.mark.parametrize(
    "args", [["weights", "--heads", "8", "--hiddens", "30000"], ["heatmap", *LONG]], ids=str
)
def test_an_address_space_limit_is_counted_as_free_memory(args: list[str], tmp_path) -> None:
    out = subprocess.run(
        [MHA, *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        preexec_fn=_limit_address_space,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs about" in lines[0], out.stderr
    assert "GiB free" in lines[0] and "use smaller sizes" in lines[0]
