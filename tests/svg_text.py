"""The words in an SVG written by mha (text stays text: `svg.fonttype` none), for tests."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path


def svg_texts(path: Path) -> list[str]:
    """Every <text> element's words, in drawing order (one per line of a multi-line text)."""
    root = ET.parse(path).getroot()
    return ["".join(el.itertext()) for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "text"]


def flat(text: str) -> str:
    """Whitespace collapsed to single spaces: wrapped lines joined back into sentences."""
    return re.sub(r"\s+", " ", text).strip()
