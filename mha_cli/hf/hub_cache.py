"""A model id instead of a folder (`--weights gpt2`, `--weights org/name`), found in the Hugging
Face cache as `huggingface_hub` lays it out: `models--org--name/snapshots/<revision>/`, the
revision named by `refs/main`. Pure Python: no hub library, no network. Offline with no cached
copy, one line says so and how to get one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mha_cli.errors import MhaError

# What a model id looks like: a name, or an organisation and a name.
_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
# A path with one of these endings names a file, never a model id: its reader says what is wrong.
_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".json", ".toml", ".py", ".txt")


def hub_cache() -> Path:
    """Where huggingface_hub keeps models: HF_HUB_CACHE, else HF_HOME/hub, else
    XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base).expanduser() / "huggingface" / "hub"


def looks_like_model_id(weights: str) -> bool:
    return (
        not Path(weights).exists()
        and _ID.fullmatch(weights) is not None
        and not weights.lower().endswith(_FILE_SUFFIXES)
    )


def resolve_model_id(weights: str) -> str:
    """`weights` itself when it is a path (or names a file), else the cached model's folder."""
    if not looks_like_model_id(weights):
        return weights
    cache = hub_cache()
    snapshot = _snapshot(cache / ("models--" + weights.replace("/", "--")))
    if snapshot is None:
        raise MhaError(
            f"--weights {weights}: no such file or folder, and no model {weights!r} in the "
            f"Hugging Face cache ({cache}); download it while online (hf download {weights}), "
            "or give a model folder"
        )
    return str(snapshot)


def _snapshot(model: Path) -> Path | None:
    """The snapshot `refs/main` names, else the newest one, else None."""
    snapshots = model / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = model / "refs" / "main"
    if ref.is_file():
        named = snapshots / ref.read_text(encoding="utf-8").strip()
        if named.is_dir():
            return named
    found = [p for p in snapshots.iterdir() if p.is_dir()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None
