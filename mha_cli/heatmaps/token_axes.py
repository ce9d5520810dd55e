"""Heatmap axes labelled with the tokens of `--text`: the room the labels need, and the ticks.

Each example's query rows carry its own tokens (padding rows unlabelled); the keys along the
bottom carry the tokens when every example has the same ones (one text), else their positions,
which are the row labels' positions too (self-attention: the keys are the same tokens). Every
token is labelled while the labels fit their cells (up to 64 per axis), else every n-th.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mha_cli.heatmaps.data import HeatmapData
from mha_cli.render.token_labels import MAX_CHARS, label_step, labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

TOKEN_CELL_IN = 0.17  # a cell as tall as a label at the tick size, with a little air
TICK_PT = 8  # layout.TICK_PT (layout imports this module: it cannot be imported here)
_CHAR_IN = 0.62 * TICK_PT / 72  # one character of a label, before the text scale
_LABEL_H_IN = 1.3 * TICK_PT / 72  # one label's height (or width, turned), before the scale


def token_labels(data: HeatmapData, keys: bool = False) -> list[list[str]]:
    """Each example's labels (of its keys with `keys`, where they are tokens of their own), with
    any character the labels' font cannot draw (a CJK character where no CJK font is installed)
    written as its code point, U+732B, instead of a blank box."""
    drawable = _font_has()
    texts = data.key_tokens if keys and data.key_tokens is not None else data.tokens
    return [
        [_shown(label, drawable) for label in labels(list(tokens), MAX_CHARS)]
        for tokens in texts or ()
    ]


def _shown(label: str, drawable: Any) -> str:
    return "".join(ch if drawable(ch) else f"U+{ord(ch):04X}" for ch in label)


def _font_has() -> Any:
    """Whether the font matplotlib draws tick labels with has a glyph for a character."""
    from functools import cache

    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))

    @cache
    def has(ch: str) -> bool:
        return ch.isascii() or font.get_char_index(ord(ch)) != 0

    return has


def keys_are_tokens(data: HeatmapData) -> bool:
    """One text (or texts of the same tokens): the keys along the bottom are those tokens."""
    keys = data.key_tokens if data.key_tokens is not None else data.tokens
    return keys is not None and len(set(keys)) == 1


def token_room(data: HeatmapData, left_in: float, ticks_in: float) -> tuple[float, float]:
    """(left margin, room under the image for the key ticks), in inches before the text scale."""
    texts = token_labels(data) + token_labels(data, keys=True)
    widest = max((len(label) for text in texts for label in text), default=0)
    left = max(left_in, widest * _CHAR_IN + 0.45)
    bottom = max(ticks_in, widest * _CHAR_IN + 0.12) if keys_are_tokens(data) else ticks_in
    return left, bottom


def token_ticks(ax: Axes, data: HeatmapData, lay: Any, lefts: list[int]) -> None:
    """Rows labelled with each example's tokens; keys with the tokens, or positions."""
    b, h, q, k = data.weights.shape
    plan, texts = lay.plan, token_labels(data)
    step = label_step(max(q, k), lay.cell, _LABEL_H_IN * lay.text)
    ys, row_labels = [], []
    for example in range(b):
        text = texts[example]
        for head in range(0, h, plan.heads_per_row):
            top = plan.slices(example, head)[0].start
            for i in range(0, q, step):
                ys.append(top + i)
                row_labels.append(text[i] if i < len(text) else "")
    ax.set_yticks(ys, row_labels)
    columns = range(0, k, step)
    if keys_are_tokens(data):
        text = token_labels(data, keys=True)[0]
        names = [text[j] if j < len(text) else "" for j in columns]
        ax.set_xticks([left + j for left in lefts for j in columns], names * len(lefts))
        ax.tick_params(axis="x", labelrotation=90)
    else:  # positions, spaced as wide numbers need
        width = (len(str(k - 1)) + 1) * _CHAR_IN * lay.text
        columns = range(0, k, label_step(k, lay.cell, width, most=k))
        names = [str(data.key_start + j * data.key_step) for j in columns]
        ax.set_xticks([left + j for left in lefts for j in columns], names * len(lefts))
