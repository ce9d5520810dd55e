"""`mha_cli.compare(...)`: d2l's layer against torch's own attention, with the same weights."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from mha_cli.comparison.records import Comparison
from mha_cli.spec.entry import load_heavy, specification

if TYPE_CHECKING:
    from mha_cli.comparison.torch_mapping import WeightMapping


def compare(
    *, config: Any = None, mapping: WeightMapping | None = None, **options: Any
) -> Comparison:
    """Run the layer the options describe (the command line's names: `heads=5,
    valid_lens="0,2", dtype="float16"`, ...) through d2l's code, `torch.nn.MultiheadAttention`
    and `scaled_dot_product_attention` (every backend the device has), and compare them stage
    by stage and head by head.

    Returns a `Comparison` (the tables when printed; `agrees` is False when one implementation
    disagrees beyond the tolerance). `mapping` replaces the function that maps d2l's weights
    onto nn.MultiheadAttention's (for testing a mapping of one's own)."""
    spec = specification(config, options)
    load_heavy("mha_cli.comparison.runs")
    from mha_cli.comparison.runs import compare_attention

    record = compare_attention(spec, mapping)
    return Comparison(**{f.name: getattr(record, f.name) for f in fields(record)})
