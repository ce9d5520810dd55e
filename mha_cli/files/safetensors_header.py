"""The header of a safetensors file, read and checked before any tensor is.

Pure Python. A safetensors file is an 8-byte little-endian length N, N bytes of JSON
(`{"name": {"dtype": "F16", "shape": [4096, 4096], "data_offsets": [begin, end]}, ...}`, offsets
counted from the end of the header), then the tensors' bytes. Checking the header against the
file's size finds a truncated download or a file of another format in one line, without reading
or mapping a single tensor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.files.tensor_io import format_hint

_MAX_HEADER = 100_000_000  # bytes; the safetensors library refuses longer headers too
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1}
_DTYPE_BYTES |= {"U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


@dataclass(frozen=True)
class TensorEntry:
    dtype: str  # as safetensors names it: "F16", "BF16", "F32", ...
    shape: tuple[int, ...]
    nbytes: int


def read_header(path: Path) -> dict[str, TensorEntry]:
    """Every tensor's dtype, shape and size, from the header alone; one line for any fault."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            length = int.from_bytes(file.read(8), "little")
            if size < 8 or length > min(size - 8, _MAX_HEADER):
                raise MhaError(_bad(path, _length_fault(size, length)))
            raw = file.read(length)
    except OSError as exc:
        raise MhaError(
            f"cannot read {path}: {exc.strerror or exc}; check its permissions"
        ) from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MhaError(_bad(path, f"its header is not valid JSON ({exc})")) from None
    if not isinstance(header, dict):
        raise MhaError(_bad(path, "its header is not a JSON object"))
    entries = {
        name: _entry(path, name, info) for name, info in header.items() if name != "__metadata__"
    }
    data = size - 8 - length
    end = max((_end(header[name]) for name in entries), default=0)
    if end > data:
        raise MhaError(
            f"{path} is truncated: its header places tensor data up to byte {end:,} but the file "
            f"holds {data:,} bytes after the header; download or save it again"
        )
    return entries


def _length_fault(size: int, length: int) -> str:
    if size < 8:
        return f"it has {size} bytes, fewer than the 8 that give a header's length"
    if length > _MAX_HEADER:
        return f"its first 8 bytes give a header of {length:,} bytes, more than any real header"
    return (
        f"it is truncated: its header should be {length:,} bytes but only {size - 8:,} follow "
        "its length"
    )


def _entry(path: Path, name: str, info: Any) -> TensorEntry:
    fault = _entry_fault(info)
    if fault:
        raise MhaError(_bad(path, f"its header entry for {name!r} {fault}"))
    shape = tuple(info["shape"])
    begin, end = info["data_offsets"]
    return TensorEntry(info["dtype"], shape, end - begin)


def _entry_fault(info: Any) -> str:
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
        return "lacks dtype, shape or data_offsets"
    shape, offsets = info["shape"], info["data_offsets"]
    if not isinstance(shape, list) or not all(_natural(n) for n in shape):
        return f"has shape {shape!r}, not a list of sizes"
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_natural, offsets))):
        return f"has data_offsets {offsets!r}, not [begin, end]"
    numel = 1
    for n in shape:
        numel *= n
    itemsize = _DTYPE_BYTES.get(info["dtype"])
    if offsets[1] < offsets[0] or (itemsize and offsets[1] - offsets[0] != numel * itemsize):
        return f"has data_offsets {offsets} that do not fit {info['dtype']} {tuple(shape)}"
    return ""


def _end(info: dict[str, Any]) -> int:
    return int(info["data_offsets"][1])


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _bad(path: Path, fault: str) -> str:
    fix = format_hint(path, "safetensors") or "download or save it again"
    return f"{path} is not a valid safetensors file: {fault}; {fix}"
