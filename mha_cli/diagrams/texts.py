"""The words in the diagram's boxes: what each step is called and does, in one short line.

Every number here is read from the stage records (a shape, an axis, a parameter count) or the
recorded specification; none is computed from a formula beside them. Pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence

from mha_cli.layer.records import RunRecord, Stage
from mha_cli.messages import listing
from mha_cli.spec.axes import BATCH_HEADS, HEADS, KV_HEADS
from mha_cli.spec.spec import FinalSpec

# step -> (title, colour kind). A step is what follows the dot of a stage name (`split` of
# `queries.split`), `project` for W_q/W_k/W_v, or the whole name for the main lane's stages.
TITLES: dict[str, tuple[str, str]] = {
    "project": ("", "weight"),
    "split": ("split into heads", "reshape"),
    "permute": ("permute(0, 2, 1, 3)", "reshape"),
    "norm": ("RMSNorm per head", "compute"),
    "rope": ("rotary embedding", "compute"),
    "share": ("share kv heads", "reshape"),
    "expand": ("expand to every head", "reshape"),
    "fold": ("fold heads into batch", "reshape"),
    "repeat": ("repeat per head", "reshape"),
    "unsqueeze": ("unsqueeze", "reshape"),
    "scores": ("scores", "compute"),
    "features": ("features", "compute"),
    "w_v": ("w_v", "weight"),
    "masked_softmax": ("masked softmax", "compute"),
    "dropout": ("dropout", "compute"),
    "weighted_sum": ("weighted sum", "compute"),
    "output.unfold": ("unfold heads from batch", "reshape"),
    "output.permute": ("permute(0, 2, 1, 3)", "reshape"),
    "output.concat": ("concatenate heads", "reshape"),
    "W_o": ("W_o", "weight"),
}
INPUTS = ("queries", "keys", "values", "valid_lens")


def _step(name: str) -> str:
    if name in ("W_q", "W_k", "W_v"):
        return "project"
    role, _, step = name.partition(".")
    return step if role in INPUTS and step else name


def title_of(stage: Stage, spec: FinalSpec) -> str:
    step = _step(stage.name)
    if stage.name in INPUTS or step in ("project", "W_o", "w_v"):
        return stage.name
    if step == "masked_softmax" and not mask_lines(spec):
        return "softmax"  # nothing is masked: a plain softmax
    return TITLES.get(step, (stage.name, ""))[0]


def describe(stage: Stage, before: Stage | None, record: RunRecord) -> tuple[str, str]:
    """(colour kind, one line of detail) of the box for `stage`; `before` feeds it."""
    spec, step, shape = record.spec, _step(stage.name), stage.shape
    if stage.name in INPUTS:
        return "input", lens_text(spec.valid_lens or ()) if stage.name == "valid_lens" else ""
    kind = TITLES.get(step, ("", "compute"))[1]
    if step in ("project", "W_o", "w_v") and before is not None:
        bias = spec.out_bias if step == "W_o" else spec.bias
        if stage.name == "W_k" and spec.key_bias is not None:  # Whisper: none on W_k alone
            bias = spec.key_bias
        return kind, f"Linear {before.shape[-1]} → {shape[-1]}{' + bias' if bias else ''}"
    if step == "scores" and spec.score != "additive":
        head_dim = _last_of(record, "queries").shape[-1]
        return kind, f"bmm(Q, Kᵀ) / √{head_dim}"
    return kind, _detail(step, stage, before, record)


def _detail(step: str, stage: Stage, before: Stage | None, record: RunRecord) -> str:
    spec, shape = record.spec, stage.shape
    b = before.shape if before is not None else ()
    details = {
        "split": lambda: f"{b[-1]} → {shape[-2]} × {shape[-1]}",
        "permute": lambda: f"swap {before.axes[1]} ↔ {before.axes[2]}" if before else "",
        "norm": lambda: f"over {shape[-1]} features (eps {spec.norm_eps:g})",
        "rope": lambda: _rope_text(spec, shape[-1]),
        "share": lambda: share_detail(record),
        "expand": lambda: f"all {shape[-1]} features for each head (a view)",
        "fold": lambda: f"{b[0]} × {b[1]} → {shape[0]}",
        "repeat": lambda: f"{b[0]} → {shape[0]}: one per (example, head)",
        "unsqueeze": lambda: f"an axis of 1 at dim {stage.axes.index('1')}: broadcast",
        "scores": lambda: "w_v(features).squeeze(-1)",
        "features": lambda: "tanh(q + k): every query with every key",
        "masked_softmax": lambda: f"over {stage.axes[-1]}",
        "dropout": lambda: f"p = {spec.dropout:g} (training)",
        "weighted_sum": lambda: "bmm(weights, V)",
        "output.unfold": lambda: f"{b[0]} → {shape[0]} × {shape[1]}",
        "output.permute": lambda: f"swap {before.axes[1]} ↔ {before.axes[2]}" if before else "",
        "output.concat": lambda: f"{b[-2]} × {b[-1]} → {shape[-1]}",
    }
    text = details.get(step)
    return text() if text is not None and (b or step in ("scores", "features")) else stage.code


def _rope_text(spec: FinalSpec, head_dim: int) -> str:
    pairs = "rotate-half" if spec.rope == "half" else "interleaved"
    return f"{spec.rotary_dim} of {head_dim} features, {pairs}, θ {spec.rope_theta:g}"


def _last_of(record: RunRecord, role: str) -> Stage:
    return [s for s in record.stages if s.name.split(".")[0] == role][-1]


def stack_count(stage: Stage, num_heads: int) -> tuple[int, str]:
    """How many heads the stage's output keeps apart, and how to say it (1, "": no stack)."""
    if HEADS in stage.axes:
        n = stage.shape[stage.axes.index(HEADS)]
        return n, f"×{n} head{'s' if n != 1 else ''}"
    if KV_HEADS in stage.axes:
        n = stage.shape[stage.axes.index(KV_HEADS)]
        return n, f"×{n} kv head{'s' if n != 1 else ''}"
    if BATCH_HEADS in stage.axes:
        return num_heads, f"×{num_heads} heads in batch"
    return 1, ""


def lens_text(lens: Sequence[int] | Sequence[Sequence[int]]) -> str:
    """`[3, 2]`; a long batch shortened; per-query lengths named, their numbers in the notes."""
    if lens and isinstance(lens[0], tuple | list):
        return f"one length per query, {len(lens)} × {len(lens[0])}"
    return f"[{listing(lens, shown=6)}]"


def mask_lines(spec: FinalSpec) -> list[str]:
    """What the mask hides, by position (never by score)."""
    lines = []
    lens = spec.valid_lens
    if lens is not None:
        per_query = bool(lens) and isinstance(lens[0], tuple | list)
        lines.append(
            "padding beyond each query's valid_len"
            if per_query
            else f"padding beyond valid_lens {lens_text(lens)}"
        )
    if spec.causal:
        lines.append("causal: keys after the query")
        if spec.window is not None:
            lines.append(f"window {spec.window}: keys {spec.window}+ back")
    return lines


def _sharing(record: RunRecord) -> tuple[int, int, int] | None:
    """(kv heads, query heads, query heads per kv head), read from the keys' recorded shapes
    before and after `keys.share`; None when every query head has its own keys."""
    names = {s.name: s for s in record.stages}
    share = names.get("keys.share")
    grouped = next((s for s in record.stages if KV_HEADS in s.axes), None)
    if share is None or grouped is None:
        return None
    kv_heads = grouped.shape[grouped.axes.index(KV_HEADS)]
    heads = share.shape[share.axes.index(HEADS)]
    return kv_heads, heads, heads // kv_heads


def share_detail(record: RunRecord) -> str:
    sharing = _sharing(record)
    if sharing is None:
        return ""
    kv_heads, heads, group = sharing
    if kv_heads == 1:
        return f"kv head 0 → all {heads} query heads"
    return f"kv head j → query heads {group}j..{group}j+{group - 1}"


def sharing_text(record: RunRecord) -> str:
    """Which query heads read each key-value head, as `repeat_interleave` pairs them."""
    sharing = _sharing(record)
    if sharing is None:
        return ""
    kv_heads, heads, group = sharing
    if kv_heads == 1:
        return f"multi-query: all {heads} query heads share one kv head"
    pairs = [
        f"kv head {j} → query heads {j * group}..{j * group + group - 1}"
        for j in range(min(kv_heads, 4))
    ]
    more = f", ... (kv head j → {group}j..{group}j+{group - 1})" if kv_heads > 4 else ""
    return f"grouped-query: {heads} query heads share {kv_heads} kv heads: {', '.join(pairs)}{more}"
