"""A model id (`gpt2`, `org/name`) instead of a folder: found in the Hugging Face cache.

The cache is read as huggingface_hub lays it out, without importing it (reading weights never
needs it): `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`, else
`~/.cache/huggingface/hub`; a model `org/name`
is `models--org--name/`, whose `refs/main` holds the commit of `snapshots/<commit>/` (its files
often links into `blobs/`). mha never downloads. Pure Python: no torch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mha_cli.errors import MhaError

# What huggingface_hub accepts as a repo id: a name, or an owner and a name, of letters, digits,
# '-', '_' and '.', neither starting nor ending with '-' or '.'.
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
MODEL_ID = re.compile(rf"^(?:{_PART}/)?{_PART}$")
# A name that ends like a weights file is a path mistyped, not a model id.
FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".json", ".ckpt", ".h5")


def hub_cache() -> Path:
    """Where huggingface_hub keeps its models, as it decides."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "huggingface" / "hub"


def looks_like_model_id(name: str) -> bool:
    return bool(MODEL_ID.match(name)) and not name.lower().endswith(FILE_SUFFIXES)


def resolve_weights(name: str) -> str:
    """The path `--weights NAME` means: NAME itself when it exists (a local path wins over an
    id) or is no model id; else the cached snapshot of the model NAME. A model id that is not
    in the cache is refused in one line."""
    if Path(name).expanduser().exists() or not looks_like_model_id(name):
        return name
    cache = hub_cache()
    folder = cache / ("models--" + name.replace("/", "--"))
    snapshot = cached_snapshot(folder)
    if snapshot is None:
        raise MhaError(
            f"--weights {name}: no such file or folder here, and the model {name} is not in the "
            f"Hugging Face cache (looked for {folder}); mha does not download: run "
            f"`huggingface-cli download {name}` first, or give the path of a model folder"
        )
    return str(snapshot)


def cached_snapshot(folder: Path) -> Path | None:
    """The snapshot `refs/main` names; without refs/main, the newest snapshot there is."""
    snapshots = folder / "snapshots"
    ref = folder / "refs" / "main"
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if commit and (snapshots / commit).is_dir():
            return snapshots / commit
    if not snapshots.is_dir():
        return None
    found = [path for path in snapshots.iterdir() if path.is_dir()]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None
