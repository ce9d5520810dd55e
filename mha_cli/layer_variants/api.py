"""`mha_cli.variants(...)`: variants of one layer side by side, every number from a
recorded run of each variant on the meta device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mha_cli.layer_variants.choose import (
    REFERENCE,
    Variant,
    apply,
    default_variants,
    parse_variant,
)
from mha_cli.layer_variants.compare import Column, VariantsComparison
from mha_cli.spec.entry import load_heavy, specification
from mha_cli.spec.validation import validate_early


def variants(
    *, config: Any = None, variant: Sequence[str] | None = None, **options: Any
) -> VariantsComparison:
    """Run the layer the options describe in several variants and compare them.

    Without `variant`: values split (d2l) against values kept whole per head, and multi-head
    against grouped-query (about heads / 4 kv heads) and multi-query attention, each sentence
    comparing with d2l's layer. With `variant` (`"kv-heads=2"`, `"value-mode=full"`, settings
    separated by spaces): the layer as given, then one column per variant, compared with it.
    """
    base = specification(config, options)
    chosen = [parse_variant(text) for text in variant or []]  # mistakes before the runs
    load_heavy("mha_cli.layer.run")
    from mha_cli.files.sources import resolve, resolve_sources
    from mha_cli.layer.run import run_attention

    if base.weights is not None or base.inputs_file is not None:
        # sizes read from the files; the variants then change them, so no file is loaded
        base = replace(resolve_sources(base).spec, weights=None, inputs="randn")
    if chosen:
        notes: list[str] = []
        columns_wanted, reference = [Variant("as given"), *chosen], 0
    else:
        columns_wanted, notes = default_variants(base)
        reference = next(i for i, v in enumerate(columns_wanted) if v.label == REFERENCE)
    columns = []
    for wanted in columns_wanted:
        resolved = resolve(validate_early(apply(base, wanted)))
        record = run_attention(resolved, value_ranges=False)
        columns.append(Column(wanted.label, dict(wanted.settings), record))
    return VariantsComparison(base.final(), columns, reference, notes)
