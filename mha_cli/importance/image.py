"""`mha heads --out`: the greedy pruning curve above, one bar chart per measure below.
matplotlib's object API only: no pyplot, no global state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mha_cli.importance.records import Z95, HeadsRecord
from mha_cli.importance.text import MEASURE_LABELS, title_parts

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BAR = "#4c72b0"
FIRST = "#dd8452"  # the head(s) that could go first, when they stand out
PANEL_HINTS = {
    "ablation": " (%)",
    "entropy": "\nlow: focused on few keys",
    "confidence": "\nmean largest weight per row",
    "gradient": "\nagainst --targets (Michel et al.)",
}
LABELLED_STEPS = 24  # heads up to which each curve point names the head removed


def heads_figure(report: HeadsRecord) -> Figure:
    from matplotlib.figure import Figure

    measures = report.measures
    h = len(report.heads)
    width = max(9.0, min(16.0, 2.2 + 0.35 * h * len(measures) / 2))
    fig = Figure(figsize=(width, 7.2), dpi=100, layout="constrained")
    grid = fig.add_gridspec(2, len(measures), height_ratios=(1.15, 1))
    _curve(fig.add_subplot(grid[0, :]), report)
    chosen = set(report.candidates)
    for column, measure in enumerate(measures):
        ax = fig.add_subplot(grid[1, column])
        values = [head.value(measure) for head in report.heads]
        errors = [Z95 * getattr(head, f"{measure}_se", 0.0) for head in report.heads]
        if measure == "ablation":
            values = [100 * v for v in values]
            errors = [100 * e for e in errors]
        colours = [FIRST if head.head in chosen else BAR for head in report.heads]
        shown = None if measure == "gradient" else [e if e == e else 0.0 for e in errors]
        ax.bar(range(h), values, color=colours, yerr=shown, ecolor="#333333", capsize=2)
        label = MEASURE_LABELS[measure] + PANEL_HINTS[measure]
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("head")
        step = max(1, h // 12)
        ax.set_xticks(range(0, h, step))
        ax.grid(axis="y", alpha=0.3)
    layer, run = title_parts(report)
    if chosen:
        names = ", ".join(str(i) for i in sorted(chosen))
        which = "head" if len(chosen) == 1 else "heads"
        verdict = f"orange: {which} {names}, separated from the others beyond noise: could go first"
    else:
        verdict = f"no head stands out (bars: ± {Z95} standard errors over the rows)"
    fig.suptitle(
        f"How much each head matters ({report.ablation_mode} ablation)\n{layer}; {run}\n{verdict}",
        fontsize=10,
    )
    return fig


def _curve(ax, report: HeadsRecord) -> None:  # type: ignore[no-untyped-def]
    steps = [0] + [s.step for s in report.pruning]
    changes = [0.0] + [100 * s.change for s in report.pruning]
    ax.plot(steps, changes, marker="o", color=BAR)
    if len(report.pruning) <= LABELLED_STEPS:
        for step in report.pruning:
            ax.annotate(
                f"head {step.head}" if len(report.pruning) <= 12 else str(step.head),
                (step.step, 100 * step.change),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
            )
    ax.set_xlabel(
        "heads removed (greedily: each step the head whose removal changes the output least)"
    )
    ax.set_ylabel("output change (%)\n||y − y_pruned||_F / ||y||_F")
    ax.set_title(
        "greedy pruning curve: each point names the head removed at that step", fontsize=10
    )
    top = max(changes)
    ax.set_ylim(0, top * 1.12 if top > 0 else 1)
    ax.set_xticks(steps if len(steps) <= 33 else steps[:: max(1, len(steps) // 16)])
    ax.set_xlim(-0.4, steps[-1] + 0.6)
    ax.grid(alpha=0.3)
