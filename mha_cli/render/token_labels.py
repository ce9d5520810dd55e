"""Tokens as axis labels a person can read.

A tokenizer's tokens carry its own marks: byte-level BPE (GPT-2, RoBERTa, Llama 3, Qwen) writes
each byte as a printable character (`Ġ` a space, `Ċ` a newline, `Ã©` the two bytes of é), and
SentencePiece writes a word's leading space as `▁`. A label shows the text itself: bytes decoded,
a space shown as `·` (a blank label would read as a missing one), a newline as `↵`, a tab as `→`,
other control characters escaped, and a long token shortened to its start and `…`.
Pure Python.
"""

from __future__ import annotations

from functools import cache

MAX_CHARS = 10  # a label longer than this is shortened
SPACE, NEWLINE, TAB, ELLIPSIS = "·", "↵", "→", "…"


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's `bytes_to_unicode`, inverted: the character byte-level BPE writes for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def is_byte_level(tokens: list[str]) -> bool:
    """Whether tokens are byte-level BPE's: a character it writes for a space or control byte
    (`Ġ`, `Ċ`, ...) appears, and every character is one it writes."""
    decoder = _byte_decoder()
    marks = any(ch in decoder and ord(ch) >= 256 for token in tokens for ch in token)
    return marks and all(ch in decoder for token in tokens for ch in token)


def readable(token: str, byte_level: bool = False, max_chars: int = MAX_CHARS) -> str:
    """One token as a label."""
    text = token
    if byte_level:
        decoder = _byte_decoder()
        if all(ch in decoder for ch in token):
            text = bytes(decoder[ch] for ch in token).decode("utf-8", errors="replace")
    text = text.replace("▁", " ")
    shown = "".join(_char(ch) for ch in text) or "∅"
    return shown if len(shown) <= max_chars else shown[: max_chars - 1] + ELLIPSIS


def _char(ch: str) -> str:
    if ch == " ":
        return SPACE
    if ch == "\n":
        return NEWLINE
    if ch == "\t":
        return TAB
    if not ch.isprintable():
        return ch.encode("unicode_escape").decode("ascii")
    return ch


def labels(tokens: list[str], max_chars: int = MAX_CHARS) -> list[str]:
    """Every token of one text as a label."""
    byte_level = is_byte_level(tokens)
    return [readable(token, byte_level, max_chars) for token in tokens]


def label_step(count: int, cell_in: float, label_in: float, most: int = 64) -> int:
    """Label every `step`-th token: every one while the labels fit their cells and there are at
    most `most`, else the smallest step whose labels neither collide nor number more."""
    step = 1
    while step < count and (step * cell_in < label_in or math_ceil(count, step) > most):
        step += 1
    return step


def math_ceil(count: int, step: int) -> int:
    return -(-count // step)
