"""From a run to the plain arrays the picture renderers draw: the numbers the layer computed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mha_cli.errors import MhaError
from mha_cli.spec.spec import AttentionSpec

if TYPE_CHECKING:
    import numpy as np

    from mha_cli.attention.run import Trace
    from mha_cli.render.heatmap.image import HeatmapData


def heatmap_data(trace: Trace) -> HeatmapData:
    """Attention weights (b, h, q, k) and their mask as numpy arrays, titled with what they are."""
    import numpy as np

    from mha_cli.render.heatmap.image import HeatmapData

    if trace.attention_weights is None or not trace.tensors:
        raise MhaError(
            "heatmaps need computed weights, and the meta device computes none; use --device cpu"
        )
    weights = trace.attention_weights.detach().float().cpu().numpy()  # (b, h, q, k)
    if trace.mask is None:
        masked = np.zeros(weights.shape, dtype=bool)
    else:
        masked = trace.mask.detach().cpu().numpy()  # (b, h, q, k)
    return HeatmapData(weights=weights, masked=masked, title=_title(trace.spec))


def _title(spec: AttentionSpec) -> str:
    kind = "additive" if spec.score == "additive" else "scaled dot-product"
    parts = [f"attention weights, {kind}, {spec.heads} head{'s' if spec.heads > 1 else ''}"]
    if spec.num_kv_heads != spec.heads:
        parts.append(f"{spec.num_kv_heads} kv heads")
    lens = (
        "none"
        if spec.valid_lens is None
        else str(list(spec.valid_lens)).replace("(", "[").replace(")", "]")
    )
    parts.append(f"valid_lens {lens}")
    if spec.causal:
        parts.append("causal")
    source = spec.weights or f"random weights (seed {spec.seed})"
    parts.append(f"inputs {spec.inputs}, {source}")
    return ", ".join(parts)


def weights_of_shape(axes: list[tuple[str, int]]) -> np.ndarray:
    """Real attention weights with the source layout of `mha reshape`: (batch, queries, keys) from
    d2l's additive-attention example, or ((batch heads), queries, keys) from the multi-head
    layer."""
    from mha_cli.attention.run import run_attention

    sizes = dict(axes)
    names = [name for name, _ in axes]
    if names == ["batch", "queries", "keys"]:
        spec = AttentionSpec(
            score="additive",
            heads=1,
            batch=sizes["batch"],
            queries=sizes["queries"],
            kv=sizes["keys"],
            query_size=20,
            key_size=2,
            value_size=4,
            hiddens=8,
            valid_lens=_chapter_lens(sizes["batch"], sizes["keys"]),
        )
    elif names == ["batch", "heads", "queries", "keys"]:
        spec = AttentionSpec(
            batch=sizes["batch"],
            heads=sizes["heads"],
            hiddens=8 * sizes["heads"],
            queries=sizes["queries"],
            kv=sizes["keys"],
            valid_lens=_chapter_lens(sizes["batch"], sizes["keys"]),
        )
    else:
        raise MhaError(
            f"--render draws real attention weights of (batch, queries, keys) or "
            f"((batch heads), queries, keys); axes {', '.join(names)} are neither; "
            "drop --render or change --axes"
        )
    trace = run_attention(spec)
    return trace.tensors["masked_softmax"].numpy()  # the layer's own layout, before any reshape


def _chapter_lens(batch: int, keys: int) -> tuple[int, ...] | None:
    """The chapter's valid_lens [2, 6] where they fit, so the picture shows its padding."""
    return (2, 6) if batch == 2 and keys >= 6 else None
