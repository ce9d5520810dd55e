"""The text of `mha compare` that the table and Markdown renderers share: cells, verdicts, the
fully masked rows, and the notes. Plain strings from plain records."""

from __future__ import annotations

from mha_cli.comparison.records import ComparisonRecord, ImplementationResult, StageDifference

PASS, FAIL = "✓", "✗"


def number(value: float) -> str:
    """`1.2e-07`; `0` for an exact match; `NaN`."""
    if value != value:
        return "NaN"
    return "0" if value == 0 else f"{value:.1e}"


def cell(found: StageDifference | None) -> tuple[str, str]:
    """(difference, where) of one implementation at one stage; `where` is empty for an exact
    match, as there is no largest difference to point at."""
    if found is None:
        return "", ""
    mark = "" if found.agrees else f" {FAIL}"
    where = "" if found.difference == 0 else found.where.short()
    return number(found.difference) + mark, where


def title(record: ComparisonRecord) -> str:
    spec = record.spec
    layer = "AdditiveAttention" if spec.score == "additive" else "MultiHeadAttention"
    return (
        f"d2l's {layer} against torch: batch {spec.batch}, queries {spec.queries}, "
        f"kv pairs {spec.kv}, hiddens {spec.hiddens}, heads {spec.heads}; "
        f"{spec.dtype} on {spec.device}, torch {record.torch_version}"
    )


def cell_legend(record: ComparisonRecord) -> str:
    return (
        f"cells: largest |implementation - d2l|, both in {record.tolerance.dtype}, at (index "
        "along each axis); d2l vs float64: d2l's own error, the basis of the tolerance"
    )


def verdict(result: ImplementationResult) -> str:
    if not result.compared:
        return f"- {result.name}: not run: {result.reason}"
    failure = result.first_failure()
    if failure is None:
        worst = result.worst()
        if worst is None:
            return f"{PASS} {result.name} agrees"
        return (
            f"{PASS} {result.name} agrees: largest error against float64 {number(worst.error)} "
            f"at {worst.stage}, allowed {number(worst.bound)}"
        )
    heads = ""
    if failure.heads_beyond:
        which = ", ".join(map(str, failure.heads_beyond))
        heads = f", head{'s' if len(failure.heads_beyond) > 1 else ''} {which}"
    return (
        f"{FAIL} {result.name} disagrees at {failure.stage}{heads}: "
        f"{number(failure.difference)} from d2l at {failure.where.text()}; error against "
        f"float64 {number(failure.error)} > allowed {number(failure.bound)}"
    )


Section = tuple[str, list[str]]  # a heading and its entries


def verdict_section(record: ComparisonRecord) -> Section:
    entries = [verdict(result) for result in record.implementations]
    if not record.compared:
        entries.append("nothing in torch computes this layer: nothing to disagree with")
    return f"verdict ({record.tolerance.describe()})", entries


def masked_section(record: ComparisonRecord) -> Section | None:
    masked = record.fully_masked
    if masked is None:
        return None
    entries = []
    for entry in masked.values:
        values = ", ".join(f"{stage} {text}" for stage, text in entry.values)
        why = f": {entry.why}" if entry.why else ""
        entries.append(f"{entry.implementation} returns {values}{why}")
    heading = (
        f"rows with no valid key ({masked.description}): left out of the differences and "
        "verdicts above, as each implementation has its own convention there"
    )
    return heading, entries


def note_sections(record: ComparisonRecord) -> list[Section]:
    """How each implementation ran (one entry for those run alike), then the core's notes."""
    ran: dict[str, list[str]] = {}
    for result in record.implementations:
        if result.mapping:
            ran.setdefault(result.mapping, []).append(result.name)
    sections = [("how each ran", [f"{', '.join(names)}: {how}" for how, names in ran.items()])]
    sections += [(heading, entries) for heading, entries in record.notes.items()]
    return [(heading, entries) for heading, entries in sections if entries]


def sections(record: ComparisonRecord) -> list[Section]:
    """Everything below the tables, in order."""
    masked = masked_section(record)
    return [verdict_section(record), *([masked] if masked else []), *note_sections(record)]


def failure_message(record: ComparisonRecord) -> str:
    """One line for stderr when an implementation disagrees (exit code 1)."""
    failed = [i for i in record.compared if not i.agrees]
    return "; ".join(verdict(i).removeprefix(f"{FAIL} ") for i in failed)
