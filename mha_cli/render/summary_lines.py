"""The lines below the stage table, shared by the table and markdown renderers."""

from __future__ import annotations

from mha_cli.layer.records import RunRecord, Source
from mha_cli.messages import listing, shape_text
from mha_cli.render import numbers
from mha_cli.spec.axes import legend
from mha_cli.spec.spec import FinalSpec

FLOP_CONVENTION = (
    "matmuls only, a multiply-add = 2 FLOPs (torch.utils.flop_counter's convention); "
    "softmax, scaling and masking are not counted"
)


def summary_lines(report: RunRecord) -> list[str]:
    spec, summary = report.spec, report.summary
    lines = [""]
    if spec.score != "additive":
        heads = f"{summary.num_heads} heads"
        if summary.num_kv_heads != summary.num_heads:
            group = summary.num_heads // summary.num_kv_heads
            kv = f"{summary.num_kv_heads} key-value head{'s' if summary.num_kv_heads > 1 else ''}"
            heads += f" sharing {kv} ({group} query heads each)"
        d2l_dim = spec.hiddens / summary.num_heads
        if summary.head_dim == d2l_dim:
            lines.append(
                f"head dim: num_hiddens / num_heads = {spec.hiddens} / {summary.num_heads} = "
                f"{summary.head_dim}  ({heads})"
            )
        else:
            lines.append(
                f"head dim: {summary.head_dim}, set on its own (num_hiddens / num_heads would be "
                f"{d2l_dim:g}), so W_q has num_heads x head dim = "
                f"{summary.num_heads * summary.head_dim} outputs  ({heads})"
            )
        lines.append(_notation_line(report))
        for name, shape, where in summary.head_slices:
            lines.append(f"  head i uses {name}[{where}]: {shape_text(shape)}")
    lines.append(_params_line(report))
    lines.append(f"FLOPs: {numbers.count(summary.total_flops)} ({FLOP_CONVENTION})")
    lines.append(
        f"memory: activations {numbers.size(summary.activation_bytes)} (stage outputs that are "
        f"not views), parameters {numbers.size(summary.parameter_bytes)}"
    )
    lines.extend(_mask_lines(report))
    out = report.stages[-1]
    lines.append(f"output: {shape_text(out.shape)} = ({', '.join(out.axes)}): one row per query")
    lines.append(legend([axis for stage in report.stages for axis in stage.axes]))
    sequences = _sequences_line(spec)
    if sequences:
        lines.append(sequences)
    if report.source is not None:
        lines.extend(source_lines(report.source))
    lines.extend(f"note: {note}" for note in summary.notes)
    return lines


def source_lines(source: Source) -> list[str]:
    """Which file, which layout, and which of its tensors were read, shard by shard."""
    lines = [f"weights: {source.path} ({source.layout})"]
    if not source.keys:
        return lines
    by_shard: dict[str, list[str]] = {}
    for key, shard in zip(source.keys, source.shards or ("",) * len(source.keys), strict=True):
        by_shard.setdefault(shard, []).append(key)
    for shard, keys in by_shard.items():
        where = f" from {shard}" if shard else ""
        lines.append(
            f"  read {len(keys)} tensor{'s' if len(keys) > 1 else ''}{where}: {listing(keys)}"
        )
    return lines


def _notation_line(report: RunRecord) -> str:
    """The book's names for the same numbers: h heads, each p_q = p_k = p_v = p_o / h wide."""
    spec, summary = report.spec, report.summary
    h, p_o, p = summary.num_heads, spec.hiddens, summary.head_dim
    book = f"  in the book's notation: h = {h} heads"
    if p * h != p_o:
        return book + f", p_q = p_k = p_v = {p} (set on its own; p_o / h would be {p_o / h:g})"
    if spec.value_mode == "full":
        return (
            book + f", p_q = p_k = p_o / h = {p_o} / {h} = {p}, but p_v = p_o = {p_o}: "
            "values kept whole"
        )
    return book + f", p_q = p_k = p_v = p_o / h = {p_o} / {h} = {p} (p_o = num_hiddens)"


def _sequences_line(spec: FinalSpec) -> str | None:
    """How many sequences the queries and the key-value pairs come from: one (self-attention)
    or two (cross-attention), as far as their lengths tell."""
    queries, kv = spec.queries, spec.kv
    if queries == kv:
        return None
    both = (
        f"{queries} queries and {kv} key-value pairs: cross-attention, the queries come from one "
        "sequence and the keys and values from another; self-attention has one sequence, so as "
        "many queries as key-value pairs"
    )
    if queries < kv and (spec.causal or spec.rope != "none"):
        both += (
            f", unless, as here with positions, the {queries} queries are the last positions of "
            "that one sequence (decoding with a cache)"
        )
    return both


def _params_line(report: RunRecord) -> str:
    summary = report.summary
    parts = " + ".join(f"{s.name} {numbers.count(s.params)}" for s in report.stages if s.params)
    line = f"parameters: {numbers.count(summary.total_params)} ({parts})"
    if report.spec.score == "additive":
        return line
    if not summary.params_depend_on_heads:
        return line + "; the same for any number of heads that divides num_hiddens"
    if report.spec.value_mode == "full":
        return (
            line
            + f"; full values make W_o {summary.num_heads} times wider (one H-wide block per head)"
        )
    return line + (
        "; W_k and W_v have kv_heads x head_dim = "
        f"{summary.num_kv_heads * summary.head_dim} outputs, "
        "so fewer key-value heads mean fewer parameters"
    )


def _mask_lines(report: RunRecord) -> list[str]:
    masked = report.summary.masked_keys
    if not masked:
        return ["masked keys: none (no valid_lens, not causal)"]
    lines = ["masked keys (by position: padding and future keys, never by score):"]
    lines.extend(f"  example {m.example}: {m.description}" for m in masked)
    return lines
