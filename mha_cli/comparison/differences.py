"""Where and by how much two runs of a stage differ, and whether that is within the tolerance.

Every stage is compared in one layout, with the batch first and, where a stage has heads,
the heads second: (b, h, n, d) for projections and weighted sums, (b, h, q, k) for attention
weights, (b, q, H) for the output. Differences are taken in float64. Rows in which every key
is masked are left out (`keep`): there each implementation follows its own convention, shown
apart. A NaN where the reference has a number is the largest difference there is.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mha_cli.comparison.records import ComparedStage, HeadDifference, StageDifference, Where
from mha_cli.tolerance import Tolerance

Stages = Mapping[str, torch.Tensor]


def absolute(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """|a - b| in float64, 0 where `keep` is False; NaN where either is NaN."""
    diff = (a.to(torch.float64) - b.to(torch.float64)).abs()
    return diff if keep is None else torch.where(keep, diff, torch.zeros((), dtype=diff.dtype))


def largest(diff: torch.Tensor) -> tuple[float, tuple[int, ...]]:
    """The largest entry and its index; the first NaN, if there is one."""
    flat = diff.reshape(-1)
    nans = torch.isnan(flat)
    position = int(nans.nonzero()[0, 0]) if bool(nans.any()) else int(flat.argmax())
    return float(flat[position]), unravel(position, tuple(diff.shape))


def unravel(position: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        position, rest = divmod(position, size)
        index.append(rest)
    return tuple(reversed(index))


def per_head(diff: torch.Tensor) -> list[float]:
    """(b, h, ...) -> the largest entry of each head (NaN if it has one)."""
    heads = diff.transpose(0, 1).reshape(diff.shape[1], -1)  # (h, rest)
    return [float(v) for v in heads.amax(dim=1)]  # amax propagates NaN


def reference_stages(
    reference: Stages,
    golden: Stages,
    keeps: Mapping[str, torch.Tensor | None],
    tolerance: Tolerance,
    describe: Mapping[str, tuple[str, tuple[str, ...]]],
) -> list[ComparedStage]:
    """What d2l's layer itself loses in the run's dtype against its float64 run, per stage."""
    stages = []
    for name, tensor in reference.items():
        value, index = largest(absolute(tensor, golden[name], keeps.get(name)))
        what, axes = describe[name]
        stages.append(
            ComparedStage(name, what, axes, value, Where(axes, index), tolerance.bound(value))
        )
    return stages


def compare_stages(
    implementation: Stages,
    reference: Stages,
    golden: Stages,
    keeps: Mapping[str, torch.Tensor | None],
    stages: list[ComparedStage],
    tolerance: Tolerance,
) -> tuple[list[StageDifference], list[HeadDifference]]:
    """One implementation's stages against d2l's (the cells) and against d2l in float64 (the
    verdict: at most the stage's bound); and per head, the largest difference of each."""
    results: list[StageDifference] = []
    head_best: dict[int, tuple[float, str]] = {}
    head_ok: dict[int, bool] = {}
    for stage in stages:
        if stage.name not in implementation:
            continue
        ours, keep = implementation[stage.name], keeps.get(stage.name)
        diff = absolute(ours, reference[stage.name], keep)
        error_map = absolute(ours, golden[stage.name], keep)
        value, index = largest(diff)
        error = largest(error_map)[0]
        beyond: tuple[int, ...] = ()
        if len(stage.axes) == 4:  # (b, h, ., .): a heads axis
            errors = per_head(error_map)
            beyond = tuple(
                h for h, e in enumerate(errors) if not tolerance.agrees(e, stage.reference_error)
            )
            for head, (d, e) in enumerate(zip(per_head(diff), errors, strict=True)):
                ok = tolerance.agrees(e, stage.reference_error)
                head_ok[head] = head_ok.get(head, True) and ok
                best = head_best.get(head)
                if best is None or _larger(d, best[0]):
                    head_best[head] = (d, stage.name)
        results.append(
            StageDifference(
                stage=stage.name,
                difference=value,
                where=Where(stage.axes, index),
                error=error,
                bound=stage.bound,
                agrees=tolerance.agrees(error, stage.reference_error),
                heads_beyond=beyond,
            )
        )
    heads = [
        HeadDifference(head, d, name, head_ok[head])
        for head, (d, name) in sorted(head_best.items())
    ]
    return results, heads


def _larger(a: float, b: float) -> bool:
    """NaN counts as the largest difference."""
    return (a != a and b == b) or a > b


def summarize_values(x: torch.Tensor) -> str:
    """What numbers a tensor holds, in a few characters: `NaN`, `0`, `0.1667`, `-0.3 .. 0.4`."""
    x = x.to(torch.float64).reshape(-1)
    nans = int(torch.isnan(x).sum())
    if nans == x.numel():
        return "NaN"
    finite = x[~torch.isnan(x)]
    low, high = float(finite.min()), float(finite.max())
    text = f"{low:.4g}" if low == high else f"{low:.3g} .. {high:.3g}"
    return text if nans == 0 else f"{text}, NaN in {nans} of {x.numel()}"
