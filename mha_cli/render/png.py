"""PNG files written straight from Agg's RGBA pixels: no row filter, zlib's fastest level.

Pillow (which matplotlib's `savefig` hands PNGs to) picks a filter per row; on a heatmap, whose
pixels repeat a colormap's few hundred colours, the filters break up those repeats: unfiltered
rows at zlib level 1 encode about three times faster and come out smaller (12 x 12 panels of
128 x 128: 0.1 s and 3.9 MB against 0.3 s and 6.5 MB). The pixels are the same bytes; the file
carries what matplotlib's has (the dpi and the "Software" text).
"""

from __future__ import annotations

import struct
import zlib
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROWS_PER_PIECE = 256  # rows compressed at a time: memory stays bounded for any image size
METRES_PER_INCH = 0.0254


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_png(out: IO[bytes], rgba: np.ndarray, dpi: float, text: dict[str, str]) -> None:
    """`rgba` (height, width, 4) uint8, straight alpha, to `out` as an 8-bit RGBA PNG."""
    import numpy as np

    height, width, channels = rgba.shape
    if channels != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"write_png takes (height, width, 4) uint8 pixels, not {rgba.shape}")
    out.write(SIGNATURE)
    out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)))
    per_metre = int(dpi / METRES_PER_INCH + 0.5)  # as Pillow rounds it
    out.write(_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)))
    for key, value in text.items():
        out.write(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
    packer = zlib.compressobj(1)
    rows = np.zeros((min(ROWS_PER_PIECE, height), 1 + 4 * width), dtype=np.uint8)  # filter 0
    for start in range(0, height, ROWS_PER_PIECE):
        piece = rgba[start : start + ROWS_PER_PIECE].reshape(-1, 4 * width)
        rows[: piece.shape[0], 1:] = piece
        data = packer.compress(rows[: piece.shape[0]].data)  # contiguous rows: no copy
        if data:
            out.write(_chunk(b"IDAT", data))
    out.write(_chunk(b"IDAT", packer.flush()))
    out.write(_chunk(b"IEND", b""))
