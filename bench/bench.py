"""Whole-process benchmark of `mha` against its anchors (issues 2, 3 and 9, "Speed").

Run by hand: `python bench/bench.py [--runs 7 | --quick] [--json FILE]`.

Every case is a fresh subprocess, timed from spawn to exit, and its peak memory is the child's
own maximum resident set size (rusage from `os.wait4`). Each case gets one untimed warm-up run,
then the runs go round-robin over the cases so that a slow drift of the machine touches all of
them alike. Ratios are taken against the median of a bare `python -c "import torch"`.

A separate in-process probe per case (the CLI through `typer.testing.CliRunner`, the Python
snippets with a line appended) reports which of torch, torch._dynamo, sympy and matplotlib
were imported: `mha --help` must not import torch, and the meta-device runs should not pay for
torch._dynamo (and the sympy it pulls in).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from analysis_cases import analysis_cases, analysis_checks, analysis_notes, has_analysis
from rich import box
from rich.console import Console
from rich.table import Table

PYTHON = sys.executable
PROBED = {"torch": "torch", "torch._dynamo": "dynamo", "sympy": "sympy", "matplotlib": "mpl"}
NOISE = 1.05  # "no slower than at 128 tokens" allows 5 % of run-to-run noise
BENCH = Path(__file__).resolve().parent
TESTS = BENCH.parent / "tests"
D2L_TARGET = f"{TESTS / 'd2l_reference.py'}:MultiHeadAttention"  # issue 12: mha trace
TABLE_WIDTH = 200  # wide enough that no column is cut; the table keeps its natural width
HEATMAP_GRID = ("12", "12", "128")  # examples, heads, queries = keys
D2L_FIGSIZE = "20"  # inches, square: about the size of mha's grid image at dpi 100

# d2l's chapter example (num_hiddens 100, 5 heads, batch 2, 4 queries, 6 key-value pairs,
# valid_lens [3, 2]) through torchinfo, with d2l's MultiHeadAttention written out.
TORCHINFO = r"""
import sys
import torch
from torchinfo import summary

sys.path.insert(0, sys.argv[2])  # tests/: d2l's code as the book has it
from d2l_reference import MultiHeadAttention

device = torch.device(sys.argv[1])
with device:
    layer = MultiHeadAttention(100, 100, 100, 100, 5, 0.5).eval()
    X, Y = torch.ones((2, 4, 100)), torch.ones((2, 6, 100))
    valid_lens = torch.tensor([3, 2])
summary(layer, input_data=[X, Y, Y, valid_lens], device=device)
"""

# d2l's show_heatmaps (d2l/torch.py): one subplot and one imshow per panel, one colorbar,
# with the Agg backend and savefig instead of display; weights are softmaxed in torch, as the
# book's attention layers produce them.
D2L_LOOP = r"""
import sys
import torch

sys.path.insert(0, sys.argv[6])  # bench/: d2l's show_heatmaps, shared with heatmap_bench.py
from d2l_show_heatmaps import show_heatmaps

out, (b, h, n), size = sys.argv[1], map(int, sys.argv[2:5]), float(sys.argv[5])
torch.manual_seed(0)
weights = torch.softmax(torch.randn(b, h, n, n), dim=-1)
fig = show_heatmaps(weights.numpy(), xlabel="Keys", ylabel="Queries", figsize=(size, size))
fig.savefig(out, dpi=100)
"""

# The floor for any typer command line with rich help: one command, options in rich panels,
# `--help` printed. `mha --help` should cost at most 1.3 times this (issue 7).
TYPER_FLOOR = r"""
from typing import Annotated
import typer

app = typer.Typer()


@app.command()
def inspect(
    batch: Annotated[int, typer.Option(help="batch size", rich_help_panel="Sizes")] = 2,
    heads: Annotated[int, typer.Option(help="num_heads", rich_help_panel="Sizes")] = 5,
) -> None:
    "Build the layer, run one forward pass, print every stage."


app(standalone_mode=False)
"""

# Appended to a Python snippet (or run with the CLI's arguments) to list the heavy imports.
MODULES_TAIL = f"""
import json as _json, sys as _sys
print(_json.dumps({{m: m in _sys.modules for m in {list(PROBED)!r}}}))
"""

CLI_PROBE = f"""
import sys
from typer.testing import CliRunner
from mha_cli.cli import app
import os
result = CliRunner().invoke(app, sys.argv[1:])
if result.exit_code != int(os.environ.get("MHA_BENCH_EXIT", "0")):
    sys.exit(f"exit {{result.exit_code}}: {{result.output[-300:]}} {{result.exception!r}}")
{MODULES_TAIL}
"""


@dataclass
class Case:
    """One whole-process command, its in-process module probe, and what it must meet."""

    key: str
    label: str
    argv: list[str]
    probe: list[str]
    target: str = "anchor"
    exit_code: int = 0  # 2 for the refusals that are timed


@dataclass
class Result:
    """Raw numbers of one case."""

    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)
    modules: dict[str, bool] = field(default_factory=dict)
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def peak(self) -> float:
        return max(self.peak_mib) if self.peak_mib else float("nan")


def mha_executable() -> str:
    """The `mha` console script next to this Python, else the one on PATH."""
    beside = Path(PYTHON).parent / "mha"
    found = str(beside) if beside.exists() else shutil.which("mha")
    if found is None:
        sys.exit("bench: no `mha` executable; install the package (pip install -e .)")
    return found


def snippet(key: str, label: str, code: str, args: list[str], target: str = "anchor") -> Case:
    """A `python -c` case; its probe runs the same code with the module report appended."""
    return Case(
        key, label, [PYTHON, "-c", code, *args], [PYTHON, "-c", code + MODULES_TAIL, *args], target
    )


def cli(key: str, label: str, mha: str, args: list[str], target: str, exit_code: int = 0) -> Case:
    """An `mha` case; its probe runs the same arguments in-process through CliRunner."""
    return Case(key, label, [mha, *args], [PYTHON, "-c", CLI_PROBE, *args], target, exit_code)


def mha_help(mha: str) -> str:
    return subprocess.run([mha, "--help"], capture_output=True, text=True, check=False).stdout


def has_heatmap(mha: str) -> bool:
    return "heatmap" in mha_help(mha)


def build_cases(mha: str, tmp: Path) -> list[Case]:
    """Issues 2, 3 and 9's cases, anchors first (the ratios need `import torch`)."""
    gqa = ["inspect", "--config", "gqa-long"]
    cases = [
        snippet("import-torch", 'python -c "import torch"', "import torch", []),
        snippet("import-typer", 'python -c "import typer"', "import typer", []),
        snippet("typer-floor", "one-command typer app --help", TYPER_FLOOR, ["--help"]),
        cli("help", "mha --help", mha, ["--help"], "<= 1.3x typer floor, no torch"),
        cli(
            "heads-7",
            "mha inspect --heads 7 (refused)",
            mha,
            ["inspect", "--heads", "7"],
            "<= 1.3x typer floor, no torch",
            exit_code=2,
        ),
        cli(
            "huge",
            "mha inspect --queries 1e7 --kv 1e7 (refused)",
            mha,
            ["inspect", "--queries", "10000000", "--kv", "10000000"],
            "report",
            exit_code=2,
        ),
        cli("presets", "mha presets", mha, ["presets"], "<= 0.15 s, no torch"),
        cli("inspect", "mha inspect (chapter)", mha, ["inspect"], "<= 1.25x"),
        cli("compare", "mha compare (chapter)", mha, ["compare"], "<= 1.5x mha inspect"),
        cli(
            "trace",
            "mha trace d2l's layer (chapter)",
            mha,
            ["trace", D2L_TARGET],
            "<= 1.3x inspect",
        ),
        cli(
            "gqa-long",
            "mha inspect -c gqa-long (131072 tok)",
            mha,
            gqa,
            "<= 1.5x, <= 400 MiB, <= 128-tok",
        ),
        cli(
            "gqa-128",
            "  same, --queries 128 --kv 128",
            mha,
            [*gqa, "--queries", "128", "--kv", "128"],
            "reference",
        ),
        snippet("torchinfo-cpu", "torchinfo.summary, cpu", TORCHINFO, ["cpu", str(TESTS)]),
        snippet("torchinfo-meta", "torchinfo.summary, meta", TORCHINFO, ["meta", str(TESTS)]),
    ]
    if has_analysis(mha_help(mha)):
        cases.extend(analysis_cases(mha, cli))
    if has_heatmap(mha):
        b, h, n = HEATMAP_GRID
        grid = [
            "heatmap",
            "--batch",
            b,
            "--heads",
            h,
            "--queries",
            n,
            "--kv",
            n,
            "--hiddens",
            "768",
            "--valid-lens",
            "none",
            "--out",
        ]
        cases.append(
            Case(
                "heatmap",
                f"mha heatmap {b}x{h} of {n}x{n}",
                [mha, *grid, str(tmp / "grid.png")],
                [PYTHON, "-c", CLI_PROBE, *grid, str(tmp / "probe.png")],
                "d2l loop >= 5x",
            )
        )
        cases.append(
            snippet(
                "d2l-loop",
                "d2l show_heatmaps loop",
                D2L_LOOP,
                [str(tmp / "d2l.png"), *HEATMAP_GRID, D2L_FIGSIZE, str(BENCH)],
            )
        )
    return cases


def child_env(tmp: Path, inherit: bool) -> dict[str, str]:
    """The children's environment: bytecode cached under `tmp`, as on a user's machine.

    With PYTHONDONTWRITEBYTECODE set (as in some sandboxes) an editable install recompiles
    its own sources in every process; a pycache prefix keeps the repository clean instead.
    """
    env = dict(os.environ)
    if not inherit:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def run_once(
    argv: list[str], cwd: Path, env: dict[str, str], expect: int = 0
) -> tuple[float, float, str | None]:
    """(wall seconds, peak RSS in MiB, error or None) of one fresh child process."""
    with tempfile.TemporaryFile(dir=cwd) as errors:
        start = time.perf_counter()
        child = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != expect:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-3:]
            return wall, 0.0, f"exit {child.returncode}: " + " | ".join(tail)
    kib = usage.ru_maxrss / 1024 if sys.platform == "darwin" else usage.ru_maxrss  # bytes on macOS
    return wall, kib / 1024, None


def probe_modules(case: Case, cwd: Path, env: dict[str, str]) -> tuple[dict[str, bool], str | None]:
    env = {**env, "MHA_BENCH_EXIT": str(case.exit_code)}
    done = subprocess.run(case.probe, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {}, f"probe failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def measure(cases: list[Case], runs: int, cwd: Path, env: dict[str, str]) -> dict[str, Result]:
    """Probe each case, warm it up once, then time `runs` rounds over all cases."""
    results = {case.key: Result() for case in cases}
    for case in cases:
        result = results[case.key]
        result.modules, result.error = probe_modules(case, cwd, env)
        warm_up = run_once(case.argv, cwd, env, case.exit_code)  # not counted
        result.error = result.error or warm_up[2]
    for round_no in range(1, runs + 1):
        log(f"round {round_no}/{runs}")
        for case in cases:
            result = results[case.key]
            if result.error is None:
                wall, peak, result.error = run_once(case.argv, cwd, env, case.exit_code)
                if result.error is None:
                    result.seconds.append(wall)
                    result.peak_mib.append(peak)
    return results


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def verdicts(results: dict[str, Result]) -> dict[str, bool]:
    """Which targets hold; cases without a target are left out."""
    torch_s = results["import-torch"].median
    floor = results["typer-floor"].median
    checks: dict[str, Callable[[Result], bool]] = {
        "help": lambda r: r.median <= 1.3 * floor and not r.modules.get("torch", True),
        "heads-7": lambda r: r.median <= 1.3 * floor and not r.modules.get("torch", True),
        "presets": lambda r: r.median <= 0.15 and not r.modules.get("torch", True),
        "inspect": lambda r: r.median <= 1.25 * torch_s,
        "compare": lambda r: r.median <= 1.5 * results["inspect"].median,
        "trace": lambda r: r.median <= 1.3 * results["inspect"].median,
        "gqa-long": lambda r: (
            r.median <= 1.5 * torch_s
            and r.peak <= 400
            and r.median <= NOISE * results["gqa-128"].median
        ),
        "heatmap": lambda r: "d2l-loop" in results and results["d2l-loop"].median >= 5 * r.median,
        **analysis_checks(results),
    }
    return {
        key: check(results[key])
        for key, check in checks.items()
        if key in results and results[key].error is None
    }


def loads(modules: dict[str, bool]) -> str:
    names = [short for name, short in PROBED.items() if modules.get(name)]
    return ", ".join(names) if names else "none" if modules else "?"


def table(cases: list[Case], results: dict[str, Result]) -> Table:
    torch_s = results["import-torch"].median
    verdict = verdicts(results)
    grid = Table(box=box.ASCII, header_style="bold")
    for name in ("case", "median s", "spread s", "peak MiB", "x import torch"):
        grid.add_column(name, justify="left" if name == "case" else "right", no_wrap=True)
    for name in ("target", "verdict", "imports (probe)"):
        grid.add_column(name, no_wrap=True)
    for case in cases:
        r = results[case.key]
        if r.error is not None and not r.seconds:
            grid.add_row(case.label, "-", "-", "-", "-", case.target, "error", loads(r.modules))
            continue
        mark = "-" if case.key not in verdict else "meets" if verdict[case.key] else "misses"
        grid.add_row(
            case.label,
            f"{r.median:.3f}",
            f"{min(r.seconds):.3f}-{max(r.seconds):.3f}",
            f"{r.peak:.0f}",
            f"{r.median / torch_s:.2f}",
            case.target,
            mark,
            loads(r.modules),
        )
    return grid


def notes(results: dict[str, Result]) -> list[str]:
    """The ratios behind the relative targets, the machine, and any errors."""
    lines = []
    if results["typer-floor"].seconds and results["help"].seconds:
        ratio = results["help"].median / results["typer-floor"].median
        lines.append(f"mha --help / a one-command typer app's --help: {ratio:.2f}x (target <= 1.3)")
    if "gqa-long" in results and results["gqa-128"].seconds and results["gqa-long"].seconds:
        ratio = results["gqa-long"].median / results["gqa-128"].median
        lines.append(
            f"gqa-long at 131072 tokens / at 128 tokens: {ratio:.2f}x "
            f"(target <= 1, {NOISE - 1:.0%} noise allowed)"
        )
    if results["compare"].seconds and results["inspect"].seconds:
        ratio = results["compare"].median / results["inspect"].median
        lines.append(f"compare / inspect on the chapter's example: {ratio:.2f}x (target <= 1.5x)")
    if "trace" in results and results["trace"].seconds and results["inspect"].seconds:
        ratio = results["trace"].median / results["inspect"].median
        lines.append(
            f"trace / inspect, the chapter's example (whole processes): {ratio:.2f}x (<= 1.3)"
        )
    if "heatmap" in results and results["heatmap"].seconds and results["d2l-loop"].seconds:
        ratio = results["d2l-loop"].median / results["heatmap"].median
        lines.append(
            f"heatmap, d2l loop / mha heatmap (whole processes): {ratio:.1f}x (target >= 5x)"
        )
    lines.extend(analysis_notes(results))
    lines.extend(f"error in {key}: {r.error}" for key, r in results.items() if r.error)
    lines.append(machine_line())
    return lines


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    names = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")
    ]
    return names[0] if names else platform.machine()


def machine_line() -> str:
    return (
        f"machine: Python {platform.python_version()}, torch {version('torch')}, "
        f"{os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.machine()}"
    )


def write_json(path: Path, cases: list[Case], results: dict[str, Result], runs: int) -> None:
    torch_s = results["import-torch"].median
    entries = [
        {
            **asdict(results[c.key]),
            "key": c.key,
            "label": c.label,
            # inline code makes argv long: keep the arguments, not the code
            "argv": [a if "\n" not in a else "<inline code>" for a in c.argv[1:]],
            "target": c.target,
            "median_s": results[c.key].median,
            "peak_mib_max": results[c.key].peak,
            "x_import_torch": results[c.key].median / torch_s,
        }
        for c in cases
    ]
    payload = {
        "runs": runs,
        "machine": machine_line(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "cpu_count": os.cpu_count(),
        "verdicts": verdicts(results),
        "cases": entries,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (default 7)")
    parser.add_argument("--quick", action="store_true", help="3 runs per case")
    parser.add_argument(
        "--inherit-env",
        action="store_true",
        help="run the children in this environment as is (no pycache prefix)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the raw numbers here")
    parser.add_argument(
        "--only",
        metavar="KEYS",
        help="time only these cases (comma-separated keys, e.g. heatmap,d2l-loop), with "
        "`import torch`",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 3
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tty = sys.stdout.isatty()
    console = Console(
        width=None if tty else TABLE_WIDTH,
        color_system="auto" if tty else None,
        highlight=False,
        markup=False,
    )
    with tempfile.TemporaryDirectory(prefix="mha-bench-") as tmp:
        cases = build_cases(mha_executable(), Path(tmp))
        if args.only:
            keys = {"import-torch", *args.only.split(",")}
            unknown = keys - {case.key for case in cases}
            if unknown:
                sys.exit(f"bench: no case {', '.join(sorted(unknown))}")
            cases = [case for case in cases if case.key in keys]
        env = child_env(Path(tmp), args.inherit_env)
        # cases left out read as never run: no figures, no verdict, no note
        results = defaultdict(Result, measure(cases, args.runs, Path(tmp), env))
    console.print(
        f"{args.runs} whole-process runs per case after one warm-up; peak = max RSS "
        "of the child; x import torch = median / median of bare import torch; bytecode "
        + ("as the environment says" if args.inherit_env else "cached (temporary pycache prefix)")
    )
    console.print(table(cases, results))
    for line in notes(results):
        console.print(line)
    if args.json:
        write_json(args.json, cases, results, args.runs)


if __name__ == "__main__":
    main()
