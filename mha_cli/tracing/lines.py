"""The lines below the traced table, shared by the table and markdown renderers: sizes and
guesses, totals, the attention weights found, and what `--check` found."""

from __future__ import annotations

from mha_cli.messages import shape_text
from mha_cli.render import numbers
from mha_cli.render.summary_lines import FLOP_CONVENTION
from mha_cli.tracing.records import CheckResult, TensorAgreement, TraceRecord


def trace_lines(record: TraceRecord) -> list[str]:
    summary = record.summary
    sizes = ", ".join(f"{name} {size}" for name, size in summary.sizes)
    lines = ["", f"axes named from the sizes: {sizes}"]
    if any(any(step.guessed) for step in record.steps):
        lines.append("  a name ending in ? is a guess: another axis has the same size")
    lines.append(
        f"{summary.operations} tensor operations recorded in forward; parameters "
        f"{numbers.count(summary.total_params)}; FLOPs {numbers.count(summary.total_flops)} "
        f"({FLOP_CONVENTION}); activations {numbers.size(summary.activation_bytes)}"
    )
    if summary.attention_step is not None:
        step = record.step(summary.attention_step)
        lines.append(
            f"attention weights: #{step.index} {step.stage.name} at {step.location}, "
            f"{shape_text(step.stage.shape)} = ({', '.join(step.axis_labels())})"
        )
    if summary.output_shape is not None:
        lines.append(f"output: {shape_text(summary.output_shape)}")
    if not summary.computed:
        lines.append("note: meta device: shapes only, no values were computed")
    lines.extend(f"note: {note}" for note in summary.notes)
    if record.check is not None:
        lines.extend(check_lines(record, record.check))
    if record.failure is not None:
        lines.append(f"stopped: {record.failure}")
    return lines


def check_lines(record: TraceRecord, check: CheckResult) -> list[str]:
    verdict = "MATCHES" if check.agrees else "DIFFERS from"
    lines = [
        f"check: your module {verdict} the reference: {check.reference}",
        f"  weights read as: {check.layout}",
    ]
    if check.weights is not None:
        lines.append("  " + _comparison(check.weights))
    lines.append("  " + _comparison(check.output))
    if check.divergence is not None:
        step = record.step(check.divergence)
        lines.append(
            f"  first step that stops matching: #{step.index} {step.stage.name} at "
            f"{step.location} ({step.stage.code})"
        )
    lines.extend(f"  why: {reason}" for reason in check.explanations)
    lines.extend(f"  note: {note}" for note in check.notes)
    lines.append(f"  agreement rule: {check.tolerance}")
    return lines


def _comparison(c: TensorAgreement) -> str:
    """`attention weights (2, 5, 4, 6) match: largest difference ...`, or where they differ."""
    difference = f"largest difference {c.error:.3g}"
    singular = c.what == "output"
    if c.agrees:
        verb = "matches" if singular else "match"
        return f"{c.what} {shape_text(c.shape)} {verb}: {difference} (allowed {c.bound:.3g})"
    worst = ", ".join(f"{axis} {i}" for axis, i in zip(_AXES[c.what], c.worst, strict=False))
    verb = "differs" if singular else "differ"
    return (
        f"{c.what} {shape_text(c.shape)} {verb} in {_differing(c)}: {difference} at {worst} "
        f"(allowed {c.bound:.3g})"
    )


_AXES = {
    "attention weights": ("example", "head", "query", "key"),
    "output": ("example", "query", "feature"),
}


def _differing(c: TensorAgreement) -> str:
    if c.what == "output":
        examples = sorted({b for b, _ in c.differing})
        return "example" + ("s " if len(examples) > 1 else " ") + ", ".join(map(str, examples))
    by_example: dict[int, list[int]] = {}
    for b, h in c.differing:
        by_example.setdefault(b, []).append(h)
    parts = []
    for b, heads in sorted(by_example.items()):
        label = "head" if len(heads) == 1 else "heads"
        parts.append(f"example {b} ({label} {', '.join(map(str, sorted(heads)))})")
    return ", ".join(parts) or "no single head"
