"""From a run to the plain arrays the picture renderers draw: the numbers the layer computed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mha_cli.errors import MhaError
from mha_cli.spec import axes as ax
from mha_cli.spec.spec import AttentionSpec, FinalSpec, as_lists

if TYPE_CHECKING:
    import numpy as np

    from mha_cli.heatmaps.data import HeatmapData
    from mha_cli.layer.report import Report
    from mha_cli.tracing.report import TraceReport


def heatmap_data(report: Report) -> HeatmapData:
    """Attention weights (b, h, q, k) and their mask as numpy arrays, titled with what they are."""
    import numpy as np

    from mha_cli.heatmaps.data import HeatmapData
    from mha_cli.layer.role_records import short_role

    if report.attention_weights is None or not report.tensors:
        raise MhaError(
            "heatmaps need computed weights, and the meta device computes none; use --device cpu"
        )
    weights = report.attention_weights.detach().float().cpu().numpy()  # (b, h, q, k)
    if report.mask is None:
        masked = np.zeros(weights.shape, dtype=bool)
    else:
        masked = report.mask.detach().cpu().numpy()  # (b, h, q, k)
    text = report.text  # --text: the axes are the tokens
    tokens = None
    title = _title(report.spec)
    if text is not None:
        tokens = tuple(tuple(t) for t in text.tokens)
        masked = masked.copy()
        for example, length in enumerate(text.valid_lens):
            masked[example, :, length:, :] = True  # padding's own rows are no part of the text
        title = _title(report.spec, on_texts(text.layer, text.model, len(text.texts)))
    roles = tuple(short_role(role.role) for role in report.summary.head_roles)
    words = (roles,) * weights.shape[0] if roles else None  # the batch's roles, every example
    return HeatmapData(weights=weights, masked=masked, title=title, tokens=tokens, head_words=words)


def traced_heatmap_data(report: TraceReport) -> HeatmapData:
    """A traced module's own attention weights (the softmax it recorded), (b, h, q, k). A key
    is drawn as masked where the module gave it exactly 0, as a masked softmax does."""
    from mha_cli.heatmaps.data import HeatmapData

    if report.attention_weights is None:
        reason = (
            "the meta device computes none; use --device cpu"
            if not report.summary.computed
            else f"no softmax over the keys was recorded in {report.summary.module}"
        )
        raise MhaError(f"--module {report.target}: no attention weights to draw: {reason}")
    weights = report.attention_weights.detach().float().cpu().numpy()  # (b, h, q, k)
    spec, heads = report.spec, weights.shape[1]
    lens = as_lists(spec.valid_lens) if spec.valid_lens is not None else "none"
    title = (
        f"attention weights of {report.summary.module} ({report.target}), {heads} "
        f"head{'s' if heads > 1 else ''}, valid_lens {lens}, inputs {spec.inputs}"
    )
    return HeatmapData(weights=weights, masked=weights == 0, title=title)


def on_texts(layer: int, model: str, count: int) -> str:
    """ "layer 1 of MODEL on a text": what a --text run's title says ran."""
    return f"layer {layer} of {model} on {f'{count} texts' if count > 1 else 'a text'}"


def _title(spec: FinalSpec, text: str | None = None) -> str:
    """What the grid shows, from the run's specification; `text` says which layer of which
    model ran on the text (`--text`: no valid_lens or inputs to name)."""
    kind = "additive" if spec.score == "additive" else "scaled dot-product"
    heads = spec.heads
    parts = [f"attention weights, {kind}, {heads} head{'s' if heads > 1 else ''}"]
    if text is not None:
        parts[0] = f"attention weights of {text}, {heads} head{'s' if heads > 1 else ''}"
    if spec.kv_heads != heads:
        parts.append(f"{spec.kv_heads} kv heads")
    if text is None:
        lens = as_lists(spec.valid_lens) if spec.valid_lens is not None else "none"
        parts.append(f"valid_lens {lens}")
    if spec.causal:
        parts.append("causal" if spec.window is None else f"causal, window {spec.window}")
    if spec.rope != "none":
        parts.append(f"rope {spec.rope}")
    if text is None:
        source = spec.weights or f"random weights (seed {spec.seed})"
        parts.append(f"inputs {spec.inputs}, {source}")
    return ", ".join(parts)


def weights_of_shape(axes: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray | None]:
    """Real attention weights, and where keys are masked, in the source layout of `mha
    reshape`: (batch, queries, keys) from d2l's additive-attention example, or
    ((batch heads), queries, keys) from the multi-head layer."""
    from mha_cli.files.sources import resolve
    from mha_cli.layer.run import run_attention

    sizes = dict(axes)
    names = [name for name, _ in axes]
    if names == [ax.BATCH, ax.QUERIES, ax.KV_PAIRS]:
        spec = AttentionSpec(
            score="additive",
            heads=1,
            batch=sizes[ax.BATCH],
            queries=sizes[ax.QUERIES],
            kv=sizes[ax.KV_PAIRS],
            query_size=20,
            key_size=2,
            value_size=4,
            hiddens=8,
            valid_lens=_chapter_lens(sizes[ax.BATCH], sizes[ax.KV_PAIRS]),
        )
    elif names == [ax.BATCH, ax.HEADS, ax.QUERIES, ax.KV_PAIRS]:
        spec = AttentionSpec(
            batch=sizes[ax.BATCH],
            heads=sizes[ax.HEADS],
            hiddens=8 * sizes[ax.HEADS],
            queries=sizes[ax.QUERIES],
            kv=sizes[ax.KV_PAIRS],
            valid_lens=_chapter_lens(sizes[ax.BATCH], sizes[ax.KV_PAIRS]),
        )
    else:
        raise MhaError(
            f"--render draws real attention weights of (batch, queries, kv pairs) or "
            f"((batch heads), queries, kv pairs); axes {', '.join(names)} are neither; "
            "drop --render or change --axes"
        )
    report = run_attention(resolve(spec))
    weights = report.tensors["masked_softmax"]  # the layer's own layout, before any reshape
    masked = report.mask.reshape(weights.shape) if report.mask is not None else None
    return weights.numpy(), None if masked is None else masked.numpy()


def _chapter_lens(batch: int, keys: int) -> tuple[int, ...] | None:
    """The chapter's valid_lens [2, 6] where they fit, so the picture shows its padding."""
    return (2, 6) if batch == 2 and keys >= 6 else None
