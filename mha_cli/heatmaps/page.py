"""`mha heatmap --out view.html`: a run's attention as one self-contained interactive page.

Everything is inline (style, script, data) and nothing in the file names a URL, so the page
opens from a file in any current browser with no network. The weights travel as base64 of
little-endian float32, the unmasked ones only, beside each mask's bits: about 5.3 characters a
weight, exact to float32, fewer than decimal text at four significant digits, and a causal map
costs half a full one. The colour scale is the images' own
(`data.colour_scale`, one for every head), and so is the colormap (sampled from matplotlib).

Rows are what the heatmap's rows are: batch examples, or layers (the model view, where the
heatmap data names its rows "layer"). Labels are the run's tokens when it has them (a `tokens`
field on the heatmap data, or on the report's `text` record), otherwise positions q0.. / k0..
Per-head figures (share on the first token, the previous token, itself; mean distance) come
from the run when it carries them, else the page computes them itself.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.files.atomic import write_atomically
from mha_cli.heatmaps.data import MASK_FACE, MASK_HATCH, MASK_LABEL, colour_scale
from mha_cli.heatmaps.page_assets import PAGE, SCRIPT, STYLE
from mha_cli.render.token_labels import labels

if TYPE_CHECKING:
    from mha_cli.heatmaps.data import HeatmapData

PAGE_SUFFIX = ".html"
FORMAT_VERSION = 2
LABEL_MAX = 16  # characters of a token shown; longer ones end in an ellipsis
COLOURS = 64  # colormap samples sent to the page (it interpolates between them)


def is_page(out: str | os.PathLike[str] | None) -> bool:
    """True when `out` names an .html file: the interactive page, not an image."""
    return out is not None and os.fspath(out).lower().endswith(PAGE_SUFFIX)


def token_labels(tokens: Sequence[str]) -> list[str]:
    """Tokens as the page shows them: as the images label them (render/token_labels.py:
    byte-level BPE decoded, spaces as ·, line ends as ↵), at most LABEL_MAX characters."""
    return labels([str(t) for t in tokens], LABEL_MAX)


def _labels_for(
    tokens: Sequence[str] | None, size: int, padding: list[bool], prefix: str
) -> tuple[list[str], list[int]]:
    """`size` labels, and which positions are padding: the tokens when there is one per
    position, or one per unpadded position (padding on either side: `padding` says which
    positions are padding; they are labelled [pad]), else positions q0.., k0.. ."""
    if tokens is not None:
        shown = token_labels(tokens)
        if len(shown) == size:
            return shown, []
        real = [i for i in range(size) if not padding[i]]
        if len(shown) == len(real):
            labels = ["[pad]"] * size
            for i, label in zip(real, shown, strict=True):
                labels[i] = label
            return labels, [i for i in range(size) if padding[i]]
    return [f"{prefix}{i}" for i in range(size)], []


def _run_tokens(data: HeatmapData, report: Any) -> list[list[str]] | None:
    """Each row's tokens, where the run has them: the heatmap data's `tokens`, else the
    report's text record's."""
    found = getattr(data, "tokens", None)
    if found is None:
        text = getattr(report, "text", None)
        found = getattr(text, "tokens", None)
    if found is None:
        return None
    return [list(row) for row in found]


def _run_summaries(data: HeatmapData, report: Any, rows: int) -> list[list[dict[str, Any]]] | None:
    """Per row and head, the figures the run computed ({first, previous, itself, distance,
    words}), where it carries them; None when it carries none."""
    heads = data.weights.shape[1]
    found: list[list[dict[str, Any] | None]] = [[None] * heads for _ in range(rows)]
    text = getattr(report, "text", None)
    # Every layer's roles in the model view (text.heads), else the run's own (one layer)
    roles = list(getattr(text, "heads", None) or ())
    roles = roles or list(getattr(getattr(report, "summary", None), "head_roles", None) or ())
    any_found = False
    for role in roles:
        layer = getattr(role, "layer", None)
        row_ids = [layer] if layer is not None and rows > 1 else range(rows)
        for row in row_ids:
            if 0 <= row < rows and 0 <= role.head < heads:
                found[row][role.head] = {
                    name: _finite(getattr(role, field)) for name, field in FIGURES
                } | {"words": str(getattr(role, "role", ""))}
                any_found = True
    words = getattr(data, "head_words", None)
    if not any_found and words is None:
        return None
    out: list[list[dict[str, Any]]] = []
    for row in range(rows):
        line = []
        for head in range(heads):
            entry = dict(found[row][head] or {})
            if words is not None and row < len(words) and head < len(words[row]):
                entry.setdefault("words", str(words[row][head]) if words[row][head] else "")
            line.append(entry)
        out.append(line)
    return out


# The page's names of a head's figures, and HeadRole's (layer/role_records.py)
FIGURES = (
    ("first", "sink"),
    ("previous", "previous"),
    ("itself", "itself"),
    ("distance", "distance"),
)


def _finite(value: Any) -> float | None:
    """A figure for JSON: None where the run has none (None: it does not apply; NaN: no query
    saw that position)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _encode(weights: Any, masked: Any) -> str:
    """One head's unmasked weights, row by row, as base64url of little-endian float32: a
    causal map holds about half its cells."""
    import numpy as np

    values = np.asarray(weights, dtype="<f4")[~np.asarray(masked, dtype=bool)]
    return base64.urlsafe_b64encode(values.tobytes()).decode("ascii")


def _encode_mask(masked: Any) -> str:
    """A (q, k) mask as base64url of its bits, row by row (numpy's packbits: first cell in
    the highest bit)."""
    import numpy as np

    bits = np.packbits(np.asarray(masked, dtype=bool).reshape(-1))
    return base64.urlsafe_b64encode(bits.tobytes()).decode("ascii")


def _colormap() -> list[str]:
    """The images' colormap, sampled: the page's colours are the pictures' colours."""
    import matplotlib

    from mha_cli.heatmaps.image import CMAP

    cmap = matplotlib.colormaps[CMAP]
    colours = []
    for i in range(COLOURS):
        r, g, b, _ = cmap(i / (COLOURS - 1))
        colours.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return colours


def run_line(report: Any) -> str:
    """Which run made the page, in one line: the model and layer, or the spec's sizes."""
    spec = getattr(report, "spec", None)
    text = getattr(report, "text", None)
    parts: list[str] = []
    model = getattr(text, "model", None) or getattr(spec, "weights", None)
    if model:
        parts.append(f"model {model}")
        layer = getattr(text, "layer", None)
        if layer is None:
            layer = getattr(spec, "layer", None)
        if layer is not None:
            parts.append(f"layer {layer}")
    elif spec is not None:
        parts.append(f"random weights (seed {getattr(spec, 'seed', 0)})")
    if spec is not None:
        for name in ("score", "heads", "hiddens", "batch", "queries", "kv"):
            if hasattr(spec, name):
                parts.append(f"{name} {getattr(spec, name)}")
        lens = getattr(spec, "valid_lens", None)
        if lens is not None:
            parts.append(f"valid_lens {json.dumps(lens)}")
        if getattr(spec, "causal", False):
            parts.append("causal")
    target = getattr(report, "target", None)  # a traced module (--module)
    if target:
        parts.insert(0, f"module {target}")
    return ", ".join(parts)


def page_data(
    data: HeatmapData,
    *,
    report: Any = None,
    tokens: list[list[str]] | None = None,
    summaries: list[list[dict[str, Any]]] | None = None,
    row_name: str | None = None,
    scale: str = "auto",
) -> dict[str, Any]:
    """The page's data (JSON-ready): per row (example or layer) its labels, and per head its
    weights (base64 float32) and the run's figures if any. `tokens` (one list per row)
    overrides the run's; without any, rows and columns are named q0.. and k0.."""
    import numpy as np

    from mha_cli import __version__

    rows, heads, queries, keys = data.weights.shape
    row_name = row_name or getattr(data, "row_name", None) or "example"
    tokens = tokens if tokens is not None else _run_tokens(data, report)
    if summaries is None:
        summaries = _run_summaries(data, report, rows)
    colours = colour_scale(data, scale)
    out_rows = []
    for row in range(rows):
        masked = np.asarray(data.masked[row])  # (h, q, k)
        shared = bool((masked == masked[:1]).all())
        # A position masked as a key for every query of every head is padding.
        key_padding: list[bool] = np.all(masked, axis=(0, 1)).tolist()
        query_padding: list[bool] = np.all(masked, axis=(0, 2)).tolist()
        if queries == keys and sum(key_padding) > sum(query_padding):
            query_padding = key_padding  # self-attention: a padding key is a padding query
        row_tokens = None
        if tokens is not None and row < len(tokens):
            row_tokens = tokens[row]
        elif tokens is not None and len(tokens) == 1 and row_name == "layer":
            row_tokens = tokens[0]  # the model view: every layer of the one text
        query_labels, padded = _labels_for(row_tokens, queries, query_padding, "q")
        out_rows.append(
            {
                "name": f"{row_name} {row}",
                "queries": query_labels,
                "keys": _labels_for(row_tokens, keys, key_padding, "k")[0],
                "padding": padded,  # padding queries: left out of the figures and readouts
                # Each head's mask (one for all heads when they share it), then its weights.
                "masks": [_encode_mask(m) for m in (masked[:1] if shared else masked)],
                "weights": [_encode(data.weights[row, h], masked[h]) for h in range(heads)],
                "summaries": summaries[row] if summaries is not None else None,
            }
        )
    return {
        "format": FORMAT_VERSION,
        "title": data.title,
        "run": run_line(report),
        "version": __version__,
        "rowName": row_name,
        "heads": heads,
        "queries": queries,
        "keys": keys,
        "tokens": tokens is not None,
        "scale": {"kind": colours.kind, "vmin": colours.vmin, "vmax": colours.vmax},
        "colours": _colormap(),
        "mask": {"label": MASK_LABEL, "face": MASK_FACE, "hatch": MASK_HATCH},
        "rows": out_rows,
    }


def _json_inline(value: Any) -> str:
    """JSON safe inside a <script> element, and with no URL in it: `<`, `>`, `&` and `/`
    escaped (a text may hold a link; JSON reads `\\/` as `/`)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("/", "\\/")):
        text = text.replace(raw, escaped)
    return text


def _html_text(text: str) -> str:
    """Text for the page's markup: escaped, and `/` as an entity, so no path reads as a URL."""
    return html.escape(text).replace("/", "&#47;")


def page_html(data: HeatmapData, **options: Any) -> str:
    """The whole page as one string; `options` as `page_data` takes them."""
    payload = page_data(data, **options)
    title = "mha attention: " + (payload["run"] or data.title)
    return (
        PAGE.replace("__TITLE__", _html_text(title))
        .replace("__HEADING__", _html_text(data.title))
        .replace("__RUN__", _html_text(payload["run"] or data.title))
        .replace("__VERSION__", _html_text(payload["version"]))
        .replace("__STYLE__", STYLE)
        .replace("__SCRIPT__", SCRIPT)
        .replace("__DATA__", _json_inline(payload))
    )


def write_page(path: Path, data: HeatmapData, **options: Any) -> Path:
    """Write the page to `path`, whole or not at all; `options` as `page_data` takes them."""
    page = page_html(data, **options)

    def write(tmp: Path) -> None:
        tmp.write_text(page, encoding="utf-8")

    write_atomically(Path(path), write)
    return Path(path)
