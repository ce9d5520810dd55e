"""Issue 20: `mha heatmap` at long context against a bare per-head torch loop, in one run.

Run by hand: `python bench/long_context_bench.py [--tokens 2048] [--hiddens 4096 --heads 32]
[--runs 1]`. Each case is a fresh process timed from spawn to exit; its peak memory is the
child's maximum resident set size (`os.wait4`). Printed: `import torch` alone, the bare loop
(the same projections, then per head softmax(q k^T / sqrt(d)) v with the causal mask), and
`mha heatmap --batch 1 --valid-lens none --causal` of the same sizes; the ratio of times, and
each peak above `import torch`; with --with-heads also `mha heads` of the same layer (target
<= 2x the loop). Targets (issue 20, at 8192 tokens): time <= 1.5x the loop,
peak <= the loop's + 512 MiB; at 32768 tokens peak <= 2 GiB above `import torch`.
The machine's load average is printed with the figures: on a shared machine they move.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOP = """
import math, sys, torch
n, hiddens, heads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
d = hiddens // heads
g = torch.Generator().manual_seed(0)
x_q, x_k, x_v = (torch.randn(1, n, hiddens, generator=g) for _ in range(3))
w = [torch.randn(hiddens, hiddens, generator=g) / math.sqrt(hiddens) for _ in range(4)]
with torch.no_grad():
    q, k, v = x_q @ w[0].T, x_k @ w[1].T, x_v @ w[2].T  # (1, n, hiddens)
    future = torch.ones(n, n, dtype=torch.bool).triu_(1)
    out = torch.empty(1, n, hiddens)
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        s = (q[0, :, cols] @ k[0, :, cols].T) / math.sqrt(d)
        s.masked_fill_(future, -1e6)
        out[0, :, cols] = torch.softmax(s, dim=-1) @ v[0, :, cols]
    y = out @ w[3].T
print(float(y[0, 0, 0]))
"""


def timed(command: list[str]) -> tuple[float, int, int, float]:
    """(wall seconds, peak RSS bytes, exit status, CPU seconds) of one child process. The CPU
    time (user + system, all threads) moves less than the wall time on a shared machine."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and child.stderr is not None:
        sys.stderr.write(child.stderr.read().decode(errors="replace")[-2000:])
    cpu = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss * 1024, code, cpu  # ru_maxrss is in KiB on Linux


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--hiddens", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-loop", action="store_true", help="time mha heatmap only")
    parser.add_argument(
        "--with-heads", action="store_true", help="also `mha heads` (target <= 2x the loop)"
    )
    args = parser.parse_args()
    mha = shutil.which("mha") or str(Path(sys.executable).with_name("mha"))
    n, hid, heads = str(args.tokens), str(args.hiddens), str(args.heads)
    with tempfile.TemporaryDirectory() as folder:
        cases = {
            "import torch": [sys.executable, "-c", "import torch"],
            "bare loop": [sys.executable, "-c", LOOP, n, hid, heads],
            "mha heatmap": [
                mha, "heatmap", "--hiddens", hid, "--heads", heads, "--queries", n, "--kv", n,
                "--batch", "1", "--valid-lens", "none", "--causal",
                "--out", str(Path(folder) / "x.png"),
            ],
        }  # fmt: skip
        if args.with_heads:
            cases["mha heads"] = [
                mha, "heads", "--hiddens", hid, "--heads", heads, "--queries", n, "--kv", n,
                "--batch", "1", "--valid-lens", "none", "--causal",
            ]  # fmt: skip
        if args.no_loop:
            del cases["bare loop"]
        results: dict[str, list[tuple[float, int, int, float]]] = {name: [] for name in cases}
        load_before = os.getloadavg()
        for _ in range(args.runs):
            for name, command in cases.items():
                results[name].append(timed(command))
        load_after = os.getloadavg()
    print(
        f"{args.tokens} tokens, {args.hiddens} hiddens, {args.heads} heads, batch 1, causal; "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after; {args.runs} run(s), median"
    )
    summary = {}
    cpu_of = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        ok = all(r[2] == 0 for r in runs)
        cpu_of[name] = statistics.median(r[3] for r in runs)
        summary[name] = (wall, peak)
        print(
            f"  {name:13} {wall:8.2f} s   peak {gib(peak)}   cpu {cpu_of[name]:.1f} s"
            f"{'' if ok else '   FAILED'}"
        )
    base = summary["import torch"][1]
    heat_t, heat_p = summary["mha heatmap"]
    print(f"  mha heatmap peak above import torch: {gib(heat_p - base)}")
    if "bare loop" in summary:
        loop_t, loop_p = summary["bare loop"]
        print(
            f"  ratio mha heatmap / bare loop: time {heat_t / loop_t:.2f}x (target <= 1.5x), "
            f"peak {gib(heat_p - loop_p)} over the loop's (target <= 0.50 GiB); "
            f"cpu {cpu_of['mha heatmap'] / cpu_of['bare loop']:.2f}x"
        )
        if "mha heads" in summary:
            heads_t, heads_p = summary["mha heads"]
            print(
                f"  ratio mha heads / bare loop: time {heads_t / loop_t:.2f}x (target <= 2x), "
                f"peak {gib(heads_p - loop_p)} over the loop's; "
                f"cpu {cpu_of['mha heads'] / cpu_of['bare loop']:.2f}x"
            )


if __name__ == "__main__":
    main()
