"""Read the object stored in a `.pt`/`.pth` (torch.save) or `.safetensors` file, safely.

Reading never runs code from a file: `.pt` files are loaded with `weights_only=True`.
Every problem with a user's file becomes one `MhaError` line that names the file and the fix;
no exception from torch or safetensors escapes as a traceback. What the object must hold (an
inputs dict, a state dict) is checked by the callers: `tensor_files` and `checkpoints`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError

if TYPE_CHECKING:
    import torch

TORCH_SUFFIXES = (".pt", ".pth")
SAFETENSORS_SUFFIX = ".safetensors"
ACCEPTED = ".pt, .pth (torch.save) or .safetensors"


def read_tensor_file(path: Path, fix: str) -> Any:
    """The object stored in `path`.

    `fix` completes "save ..." in messages: what the user should write instead, e.g.
    "a state_dict: torch.save(layer.state_dict(), path)".
    """
    path = Path(path)
    suffix = _check_readable(path)
    if suffix == SAFETENSORS_SUFFIX:
        return _read_safetensors(path)
    return read_torch_file(path, fix)


def _check_readable(path: Path) -> str:
    if not path.exists():
        raise MhaError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise MhaError(f"{path} is a folder, not a file; give the path of a {ACCEPTED} file")
    suffix = path.suffix.lower()
    if suffix not in (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX):
        kind = f"unsupported file type '{path.suffix}'" if path.suffix else "no file extension"
        raise MhaError(f"{path}: {kind}; give a {ACCEPTED} file")
    return suffix


def read_torch_file(path: Path, fix: str, *, mmap: bool = False) -> Any:
    """What torch.save wrote to `path`, loaded with weights_only=True.

    With `mmap`, tensors stay in the file (memory-mapped) until their values are used: loading
    reads only the pickled structure, so one layer of a whole model costs that layer's memory.
    Only the zip format (torch.save since torch 1.6) can be memory-mapped.
    """
    import pickle

    import torch

    if mmap and _is_pickle(path):
        raise MhaError(
            f"{path} is in torch's legacy (pre-1.6) format, which cannot be memory-mapped; "
            "save it again with torch.save, or convert it to safetensors"
        )
    try:
        # torch warns about pickle protocols and the like; a user needs our one line, not those.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except OSError as exc:
        raise MhaError(
            f"cannot read {path}: {exc.strerror or exc}; check its permissions"
        ) from None
    except pickle.UnpicklingError as exc:
        # torch words it "GLOBAL x.y was not an allowed global" or "unsupported GLOBAL x.y
        # whose module x is blocked" (a code payload such as os.system), by version.
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found or _is_pickle(path):
            what = f" ({found.group(1)})" if found else ""
            raise MhaError(
                f"{path} refused: it holds Python objects other than tensors{what}, which "
                "weights-only loading refuses because rebuilding them would run code from the "
                f"file (nothing from it was run); save {fix}"
            ) from None
        raise MhaError(_unreadable(path, "torch.load", fix)) from None
    except Exception:  # torch raises many types (KeyError, EOFError, RuntimeError) for bad bytes
        raise MhaError(_unreadable(path, "torch.load", fix)) from None


def _is_pickle(path: Path) -> bool:
    """Pickles of protocol 2 and later open with the PROTO opcode, 0x80."""
    with open(path, "rb") as file:
        return file.read(1) == b"\x80"


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except OSError as exc:
        raise MhaError(
            f"cannot read {path}: {exc.strerror or exc}; check its permissions"
        ) from None
    except Exception as exc:  # SafetensorError and friends: the header is not valid
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fix = format_hint(path, "safetensors") or "save it with safetensors.torch.save_file"
        raise MhaError(f"{path} is not a safetensors file ({detail}); {fix}") from None


def _unreadable(path: Path, reader: str, fix: str) -> str:
    fix = format_hint(path, "torch") or f"save {fix}"
    return f"{path} is not a file {reader} can read (damaged or another format); {fix}"


def format_hint(path: Path, expected: str) -> str:
    """The fix when the first bytes show the other format: a swapped extension is a common slip."""
    try:
        with path.open("rb") as file:
            head = file.read(10)
    except OSError:
        return ""
    if expected == "safetensors" and (head.startswith(b"PK") or head.startswith(b"\x80")):
        return "it looks like a torch.save file: rename it to .pt"
    if expected == "torch" and head[8:10] == b'{"':
        return "it looks like a safetensors file: rename it to .safetensors"
    return ""
