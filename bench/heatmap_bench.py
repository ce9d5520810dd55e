"""Time d2l's `show_heatmaps` loop against `mha_cli.heatmaps.image.render_grid`.

Run by hand: `python bench/heatmap_bench.py [--runs 3] [--examples 12] [--heads 12] [--size 128]`.
Each run is a fresh subprocess, so matplotlib's import and first-draw costs count for both
sides alike. The time is measured inside the child from just before matplotlib is imported
to the moment the PNG is on disk (the random weights are made before the clock starts).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np

which, out, b, h, n = sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:6])
d2l_figsize = float(sys.argv[6])
rng = np.random.default_rng(0)
scores = rng.normal(size=(b, h, n, n)).astype(np.float32)
weights = np.exp(scores - scores.max(-1, keepdims=True))
weights /= weights.sum(-1, keepdims=True)  # (b, h, q, k) random softmax weights

start = time.perf_counter()
if which == "d2l":
    sys.path.insert(0, sys.argv[7])  # bench/: d2l's show_heatmaps, shared with bench.py
    from d2l_show_heatmaps import show_heatmaps

    fig = show_heatmaps(weights, xlabel="Keys", ylabel="Queries",
                        figsize=(d2l_figsize, d2l_figsize))
    fig.savefig(out, dpi=100)
else:
    from mha_cli.heatmaps.image import HeatmapData, render_grid

    data = HeatmapData(weights, np.zeros(weights.shape, bool), f"{b} x {h} heads of {n} x {n}")
    render_grid(data, out, dpi=100)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def one_run(
    which: str, out: Path, shape: tuple[int, int, int], figsize: float
) -> tuple[float, float]:
    """(seconds inside the child, seconds of the whole child process)."""
    bench = str(Path(__file__).resolve().parent)
    argv = [sys.executable, "-c", CHILD, which, str(out), *map(str, shape), str(figsize), bench]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"], wall


def summary(name: str, times: list[float]) -> str:
    med = statistics.median(times)
    return (
        f"{name:<26} median {med:6.2f} s   min {min(times):6.2f}   max {max(times):6.2f}   "
        f"({', '.join(f'{t:.2f}' for t in times)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--examples", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--size", type=int, default=128, help="queries = keys")
    # d2l's default is 2.5 inches for the whole grid; 20 is about the size of mha's image, at
    # which every panel is legible. Both are slow: the cost is per Axes, not per pixel.
    parser.add_argument("--d2l-figsize", type=float, default=20.0, help="inches, square")
    args = parser.parse_args()
    shape = (args.examples, args.heads, args.size, args.size)
    print(
        f"heatmap grid {shape}, PNG at dpi 100, {args.runs} fresh subprocesses each, "
        f"d2l figsize {args.d2l_figsize} in"
    )
    results: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for which in ("d2l", "mha"):
            runs = [
                one_run(which, Path(tmp) / f"{which}{i}.png", shape[:3], args.d2l_figsize)
                for i in range(args.runs)
            ]
            results[which] = ([r[0] for r in runs], [r[1] for r in runs])
    for which, label in (("d2l", "d2l show_heatmaps loop"), ("mha", "mha render_grid")):
        print(summary(label + " (render)", results[which][0]))
        print(summary(label + " (process)", results[which][1]))
    ratio = statistics.median(results["d2l"][0]) / statistics.median(results["mha"][0])
    ratio_wall = statistics.median(results["d2l"][1]) / statistics.median(results["mha"][1])
    print(f"speed-up (median): render {ratio:.1f}x, whole process {ratio_wall:.1f}x")


if __name__ == "__main__":
    main()
