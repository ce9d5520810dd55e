"""The factored circuits of `mha weights` against the dense SVD of every full circuit (issue 10).

Run by hand: `python bench/circuits_bench.py [--runs 5] [--hiddens 768 --heads 12]`.

In one process, on the seeded random layer of the given size (float32 weights, float64 maths):
- `mha weights`' whole per-layer computation (`layer_weights`, similarity off: slice norms,
  both circuits of every head, flags), the figure the issue's target is about;
- the dense reference: form each head's W_QK = W_q_iᵀ W_k_i and W_OV = W_o_i W_v_i
  (D x D, float64) and take `torch.linalg.svdvals` of each;
- TransformerLens' factoring for comparison: a QR of each factor and the SVD of the core.
It prints the median seconds of each, the ratios, and the largest difference between the
factored and the dense singular values, relative to each circuit's largest.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from mha_cli.circuits.head_slices import slice_heads
from mha_cli.circuits.head_weights import layer_weights
from mha_cli.layer.loading import layer_parameters
from mha_cli.spec.entry import specification


def timed(run: Callable[[], object], runs: int) -> tuple[float, object]:
    run()  # warm-up: first LAPACK calls load and size their workspaces
    seconds, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def dense(state: dict[str, torch.Tensor], heads: int) -> dict[str, torch.Tensor]:
    """svdvals of every full circuit, formed explicitly in float64: (h, D) per circuit."""
    s = slice_heads(state, heads, heads, False)
    qk, ov = [], []
    for i in range(heads):
        q, k = s.q[i].double(), s.k[i].double()  # (d, D)
        o, v = s.o[i].double(), s.v[i].double()  # (H, d), (d, D)
        qk.append(torch.linalg.svdvals(q.T @ k))  # (D, D) formed
        ov.append(torch.linalg.svdvals(o @ v))
    return {"qk": torch.stack(qk), "ov": torch.stack(ov)}


def qr_factored(state: dict[str, torch.Tensor], heads: int) -> dict[str, torch.Tensor]:
    """TransformerLens-style: QR of both factors, SVD of the d x d core."""
    s = slice_heads(state, heads, heads, False)

    def spectrum(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        r_left = torch.linalg.qr(left.double(), mode="r")[1]  # (h, d, d)
        r_right = torch.linalg.qr(right.double().transpose(1, 2), mode="r")[1]
        return torch.linalg.svdvals(r_left @ r_right.transpose(1, 2))

    return {"qk": spectrum(s.q.transpose(1, 2), s.k), "ov": spectrum(s.o, s.v)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hiddens", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--no-dense", action="store_true", help="skip the dense SVDs (big sizes)")
    args = parser.parse_args()
    spec = specification(None, {"hiddens": args.hiddens, "heads": args.heads})
    params = layer_parameters(spec)
    state, h = params.state, args.heads

    factored_s, layer = timed(lambda: layer_weights(params.spec, state, 0, False), args.runs)
    qr_s, _ = timed(lambda: qr_factored(state, h), args.runs)
    print(
        f"{args.hiddens} hiddens, {h} heads, float32 weights; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; median of {args.runs} runs"
    )
    print(f"  mha weights per layer (factored, Gram + eigh):   {factored_s:8.3f} s")
    print(
        f"  factored with QR of each factor (TransformerLens): {qr_s:8.3f} s "
        f"({qr_s / factored_s:.1f}x mha's)"
    )
    if args.no_dense:
        return
    dense_s, reference = timed(lambda: dense(state, h), max(1, args.runs // 2))
    worst = 0.0
    for name in ("qk", "ov"):
        ours = torch.tensor([getattr(head, name).singular_values for head in layer.heads])
        full = reference[name][:, : ours.shape[1]]  # type: ignore[index]
        worst = max(worst, float(((ours - full).abs() / full[:, :1]).max()))
    print(f"  dense SVD of every full circuit (D x D formed):  {dense_s:8.3f} s")
    print(f"  dense / factored: {dense_s / factored_s:.0f}x (target >= 20x)")
    print(f"  largest singular-value difference, relative to sigma_1: {worst:.1e} (target <= 1e-4)")


if __name__ == "__main__":
    main()
