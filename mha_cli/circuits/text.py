"""`mha weights` as text: the per-head table (rich) and the same rows as Markdown.

One set of rows (`head_rows`, `similarity_rows`, `layer_lines`) feeds both renderers, so the
terminal and the Markdown show the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mha_cli.circuits.records import LayerWeights, WeightsRecord, stat_label
from mha_cli.render.markdown import markdown_table

SIGMAS_SHOWN = 3  # leading singular values in the table; JSON holds them all
FULL_MATRIX = 12  # heads up to which the similarity matrix is printed whole


def number(x: float, digits: int = 4) -> str:
    """`digits` significant digits, trailing zeros kept (2.60, 19.0); exactly 0 as `0`."""
    if math.isnan(x):
        return "nan"
    return "0" if x == 0 else f"{x:#.{digits}g}".rstrip(".")


def cosine_text(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:+.3f}"


def title(report: WeightsRecord) -> str:
    spec = report.spec
    where = "seeded random weights" if report.source is None else report.source.path
    if spec.score == "additive":
        return f"AdditiveAttention, {spec.hiddens} hiddens ({where})"
    kv = f", {spec.kv_heads} key-value heads" if spec.kv_heads != spec.heads else ""
    return (
        f"{spec.heads} heads{kv}, head dim {spec.head_dim}, {spec.hiddens} hiddens "
        f"({where}, {report.dtype}; figures computed in float64)"
    )


def head_columns(layer: LayerWeights) -> list[str]:
    first = layer.heads[0]
    kv = ["kv\nhead"] if any(h.kv_head != h.head for h in layer.heads) else []
    norms = [f"‖{name}‖" for name in first.norms]
    circuit = ["σ₁ σ₂ σ₃", "‖·‖_F", "stable\nrank", "eff.\nrank"]
    nearest = ["W_QK\nmost alike", "W_OV\nmost alike"] if _nearest_columns(layer) else []
    return [
        "head",
        *kv,
        *norms,
        *(f"W_QK\n{c}" for c in circuit),
        *(f"W_OV\n{c}" for c in circuit),
        *nearest,
        "flags",
    ]


def _nearest_columns(layer: LayerWeights) -> bool:
    """Many heads: each head's most alike other head in its row, instead of h x h matrices."""
    return layer.similarity is not None and len(layer.heads) > FULL_MATRIX


def most_alike(layer: LayerWeights, circuit: str, i: int) -> str:
    """`j (+0.021)`: the other head whose circuit has the largest |cosine| with head i's."""
    assert layer.similarity is not None
    row = layer.similarity[circuit][i]
    others = [(abs(v), j) for j, v in enumerate(row) if j != i and not math.isnan(v)]
    if not others:
        return "-"
    _, j = max(others)
    return f"{j} ({cosine_text(row[j])})"


def head_rows(layer: LayerWeights) -> list[list[str]]:
    show_kv = any(h.kv_head != h.head for h in layer.heads)
    rows = []
    for head in layer.heads:
        cells = [str(head.head)] + ([str(head.kv_head)] if show_kv else [])
        cells += [number(v, 3) for v in head.norms.values()]
        for circuit in (head.qk, head.ov):
            sigmas = " ".join(number(s, 3) for s in circuit.singular_values[:SIGMAS_SHOWN])
            cells += [
                sigmas,
                number(circuit.frobenius, 3),
                number(circuit.stable_rank, 3),
                number(circuit.effective_rank, 3),
            ]
        if _nearest_columns(layer):
            cells += [most_alike(layer, circuit, head.head) for circuit in ("qk", "ov")]
        cells.append(head_flags(head_index=head.head, layer=layer))
        rows.append(cells)
    return rows


def head_flags(head_index: int, layer: LayerWeights) -> str:
    head = layer.heads[head_index]
    flags = []
    if head.non_finite:
        flags.append(f"{head.non_finite} non-finite values")
    if head.dead:
        flags.append("dead: writes nothing")
    if head.zero_slices:
        flags.append(f"zero {'/'.join(head.zero_slices)}")
    if head.identical_to is not None:
        flags.append(f"identical to head {head.identical_to}")
    for circuit, side in head.beyond_spread.items():
        flags.append(standing_text(layer, head_index, circuit, side))
    return "; ".join(flags)


def standing_text(layer: LayerWeights, head_index: int, circuit: str, side: str) -> str:
    """`‖W_OV‖_F 0.0102, far below the other heads' 0.981 to 1.07`."""
    value = getattr(layer.heads[head_index], circuit).frobenius
    others = [
        getattr(h, circuit).frobenius
        for h in layer.heads
        if h.head != head_index and not math.isnan(getattr(h, circuit).frobenius)
    ]
    span = f"{number(min(others), 3)} to {number(max(others), 3)}" if others else "nan"
    return f"‖W_{circuit.upper()}‖_F {number(value, 3)}, far {side} the other heads' {span}"


def similarity_rows(layer: LayerWeights, circuit: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows): the heads x heads cosine matrix of one circuit."""
    assert layer.similarity is not None
    matrix = layer.similarity[circuit]
    header = ["head", *map(str, range(len(matrix)))]
    return header, [[str(i), *(cosine_text(v) for v in row)] for i, row in enumerate(matrix)]


def matrices_shown(layer: LayerWeights) -> bool:
    return layer.similarity is not None and not _nearest_columns(layer)


def similarity_summary(layer: LayerWeights, circuit: str) -> str:
    assert layer.similarity is not None
    matrix = layer.similarity[circuit]
    pairs = [
        (abs(matrix[i][j]), i, j)
        for i in range(len(matrix))
        for j in range(i + 1, len(matrix))
        if not math.isnan(matrix[i][j])
    ]
    if not pairs:
        return f"W_{circuit.upper()}: one head, nothing to compare"
    mean = sum(p[0] for p in pairs) / len(pairs)
    _, i, j = max(pairs)
    return (
        f"W_{circuit.upper()} cosine between different heads: mean |cos| {mean:.3f}, "
        f"largest {cosine_text(matrix[i][j])} (heads {i} and {j})"
    )


def legend(layer: LayerWeights) -> str:
    head = layer.heads[0]
    widths = {len(head.qk.singular_values), len(head.ov.singular_values)}
    rank = " / ".join(str(w) for w in sorted(widths))
    return (
        f"σ: singular values, the largest {SIGMAS_SHOWN} of {rank} (all in --format json); "
        f"stable rank ‖M‖_F²/σ₁² and effective rank exp(entropy of σ/Σσ) are at most {rank}"
    )


def layer_lines(layer: LayerWeights) -> list[str]:
    lines = [legend(layer)] if layer.heads else []
    if layer.similarity is not None and layer.heads:
        lines += [similarity_summary(layer, c) for c in ("qk", "ov")]
    if _nearest_columns(layer):
        lines.append("the whole heads x heads similarity: --format json, or an image with --out")
    lines += [f"shared: ‖{n}‖ = {number(v)}" for n, v in layer.shared_norms.items() if layer.heads]
    lines += [f"flag: {flag}" for flag in layer.flags]
    if layer.heads and len(layer.heads) >= 3:
        marked = [h.head for h in layer.heads if h.beyond_spread]
        if marked:
            lines.append(
                "flag: "
                + "; ".join(
                    f"head {h}: "
                    + ", ".join(
                        standing_text(layer, h, c, side)
                        for c, side in layer.heads[h].beyond_spread.items()
                    )
                    for h in marked
                )
                + " (beyond the spread of the others: log scale, t prediction interval, 1 % "
                "for the layer)"
            )
        elif not any(head_flags(h.head, layer) for h in layer.heads):
            lines.append(
                "no head stands out: every head's ‖W_QK‖_F and ‖W_OV‖_F is within the spread "
                "of the other heads'"
            )
    lines += [f"note: {note}" for note in layer.notes]
    return lines


def _table(header: Sequence[str], rows: list[list[str]], caption: str) -> Table:
    """Rules under the header only, one space between columns: a 32-head table with its
    similarity columns fits 160 columns (a pipe or CI log)."""
    shown = Text(caption) if caption else None
    table = Table(
        title=shown,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for index, name in enumerate(header):
        flags = index == len(header) - 1 and name == "flags"
        widest = max((len(row[index]) for row in rows), default=0)
        table.add_column(
            Text(name),
            justify="left" if flags else "right",
            no_wrap=not flags,
            min_width=min(widest, 28) if flags else None,
        )
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _layer_renderables(report: WeightsRecord, layer: LayerWeights) -> list[RenderableType]:
    parts: list[RenderableType] = []
    if layer.heads:
        caption = f"layer {layer.layer}: {title(report)}"
        parts.append(_table(head_columns(layer), head_rows(layer), caption))
        if matrices_shown(layer):
            for circuit in ("qk", "ov"):
                header, rows = similarity_rows(layer, circuit)
                name = f"cosine similarity of W_{circuit.upper()} between heads"
                parts.append(_table(header, rows, name))
    else:
        parts.append(Text(f"layer {layer.layer}: {title(report)}"))
        norms = [[name, number(value)] for name, value in layer.shared_norms.items()]
        parts.append(_table(["weight", "‖·‖_F"], norms, ""))
    parts += [Text(line) for line in layer_lines(layer)]
    return parts


def stat_rows(report: WeightsRecord) -> tuple[list[str], list[list[str]]]:
    grid = report.stat_grid()
    width = max((len(row) for row in grid), default=0)
    kinds = any(layer.kind for layer in report.layers)  # Gemma 2/3: local and global layers
    header = ["layer", *(["kind"] if kinds else []), *(f"head {i}" for i in range(width))]
    return header, [
        [str(layer.layer), *([layer.kind] if kinds else []), *map(number, row)]
        for layer, row in zip(report.layers, grid, strict=True)
    ]


def weights_renderable(report: WeightsRecord) -> RenderableType:
    if report.stat is not None:
        header, rows = stat_rows(report)
        caption = f"{stat_label(report.stat)} ({report.stat}) per layer and head: {title(report)}"
        notes = sorted(
            {
                line.replace("flag: ", f"flag: layer {layer.layer}: ", 1)
                for layer in report.layers
                for line in layer_lines(layer)
                if line.startswith(("flag", "note"))
            }
        )
        return Group(Text(caption), _table(header, rows, ""), *(Text(n) for n in notes))
    return Group(*_layer_renderables(report, report.layer))


def weights_markdown(report: WeightsRecord) -> str:
    if report.stat is not None:
        header, rows = stat_rows(report)
        text = f"**{stat_label(report.stat)} (`{report.stat}`)**: {title(report)}\n\n"
        return text + markdown_table(header, rows) + "\n"
    layer = report.layer
    parts = [f"**layer {layer.layer}**: {title(report)}"]
    if layer.heads:
        parts.append(markdown_table(head_columns(layer), head_rows(layer)))
        if matrices_shown(layer):
            for circuit in ("qk", "ov"):
                header, rows = similarity_rows(layer, circuit)
                parts.append(f"cosine similarity of W_{circuit.upper()} between heads:")
                parts.append(markdown_table(header, rows))
    else:
        norms = [[name, number(v)] for name, v in layer.shared_norms.items()]
        parts.append(markdown_table(["weight", "‖·‖_F"], norms))
    parts.append("\n".join(f"- {line}" for line in layer_lines(layer)))
    return "\n\n".join(p for p in parts if p) + "\n"
