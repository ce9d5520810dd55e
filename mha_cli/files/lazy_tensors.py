"""Read only the tensors one layer needs out of a whole model's weights.

A user points mha at a 7B model's 13 GB checkpoint to look at one layer. `open_weights` learns
every key name and the file that holds it from headers alone (a safetensors header, a sharded
checkpoint's `*.index.json`, the pickled structure of a memory-mapped torch file);
`read_tensors` then reads the chosen keys, opening only the shards that hold them:
safetensors memory-mapped through `safe_open` (only the requested tensors are copied out),
`.pt`/`.pth`/`.bin` through `torch.load(mmap=True, weights_only=True)` (pages are read when a
tensor's values are used). Every problem is one `MhaError` line naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.files.checkpoints import unwrap_state_dict
from mha_cli.files.json_values import file_kind, read_json_file
from mha_cli.files.safetensors_header import read_header
from mha_cli.files.tensor_io import SAFETENSORS_SUFFIX, read_torch_file

if TYPE_CHECKING:
    import torch

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
INDEX_SUFFIX = ".index.json"
# What save_pretrained writes in a model folder, in the order transformers looks for them.
FOLDER_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_ACCEPTED = "a model folder, a .safetensors, .pt, .pth or .bin file, or a *.index.json"
_FIX = "a state_dict: torch.save(model.state_dict(), path)"


@dataclass(frozen=True)
class WeightIndex:
    """Which file holds each key of a model's weights; no tensor has been read."""

    path: Path  # what the user pointed at
    shard_of: Mapping[str, Path]  # every key -> the file that holds it (one file if unsharded)
    index: Path | None  # the *.index.json of a sharded checkpoint
    config: Path | None  # the config.json beside the weights, if there is one
    # torch files already loaded memory-mapped (listing their keys needs the pickle anyway)
    _mapped: dict[Path, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.shard_of)


@dataclass(frozen=True)
class TensorsRead:
    tensors: dict[str, torch.Tensor]  # file key -> tensor, dtype and shape as stored
    files: dict[str, Path]  # file key -> the file (shard) it was read from, for the run to show


def open_weights(path: Path) -> WeightIndex:
    """The keys of the weights at `path`: a model folder, a weights file or a sharded index."""
    path = Path(path)
    if not path.exists():
        raise MhaError(f"{path}: no such file or folder; check the path")
    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    weights = _weights_in(path) if path.is_dir() else path
    _check_regular(weights)
    name = weights.name.lower()
    mapped: dict[Path, dict[str, Any]] = {}
    if name.endswith(INDEX_SUFFIX):
        shard_of = _read_index(weights)
    elif name.endswith(SAFETENSORS_SUFFIX):
        shard_of = dict.fromkeys(read_header(weights), weights)
    elif name.endswith(TORCH_SUFFIXES):
        state = _map_torch(weights)
        shard_of, mapped = dict.fromkeys(state, weights), {weights: state}
    else:
        kind = f"'{weights.suffix}'" if weights.suffix else "a file with no extension"
        raise MhaError(f"{path}: unsupported file type {kind}; give {_ACCEPTED}")
    index = weights if name.endswith(INDEX_SUFFIX) else None
    # A config.json that is there but unreadable (a broken link, a folder) is an error when it
    # is read, never taken for an absent one.
    present = config.exists() or config.is_symlink()
    return WeightIndex(path, shard_of, index, config if present else None, mapped)


def read_tensors(weights: WeightIndex, keys: Iterable[str]) -> TensorsRead:
    """The tensors of `keys`, reading only them, from only the files that hold them."""
    keys = list(keys)
    unknown = [key for key in keys if key not in weights.shard_of]
    if unknown:
        raise MhaError(f"{weights.path} has no tensor {unknown[0]!r}; check the key names")
    by_file: dict[Path, list[str]] = {}
    for key in keys:
        by_file.setdefault(weights.shard_of[key], []).append(key)
    for file in by_file:  # every shard first, so nothing is read when one is missing
        if not file.is_file():
            raise MhaError(
                f"{weights.index}: shard {file.name} (holding {by_file[file][0]}) is missing "
                f"from {file.parent}; download every shard the index names"
            )
    tensors: dict[str, torch.Tensor] = {}
    for file, wanted in by_file.items():
        if file.name.lower().endswith(SAFETENSORS_SUFFIX):
            tensors |= _read_safetensors(file, wanted)
        else:
            state = weights._mapped.get(file) or _map_torch(file)
            weights._mapped[file] = state
            tensors |= {key: state[key] for key in wanted}
    return TensorsRead({key: tensors[key] for key in keys}, {k: weights.shard_of[k] for k in keys})


# ---------------------------------------------------------------------------------------------
# Where the weights are


def _weights_in(folder: Path) -> Path:
    for name in FOLDER_FILES:  # one that is there but unreadable is an error when it is read
        if (folder / name).exists() or (folder / name).is_symlink():
            return folder / name
    found = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    hint = f" (it holds {', '.join(found[:4])}: give one of them)" if found else ""
    raise MhaError(
        f"{folder} holds none of {', '.join(FOLDER_FILES)}{hint}; point at a folder written by "
        "save_pretrained, or at the weights file itself"
    )


def _check_regular(file: Path) -> None:
    """A weights file that is a FIFO or a device would block or never end: refused unread."""
    import stat

    try:
        mode = file.stat().st_mode
    except OSError:
        return  # the reader says what is missing or unreadable
    if not stat.S_ISREG(mode):
        raise MhaError(f"{file} is {file_kind(mode)}, not a regular file; give {_ACCEPTED}")


def _read_index(index: Path) -> dict[str, Path]:
    """key -> shard path, from the index's weight_map; no shard is opened."""
    content = read_json_file(index, "give the index save_pretrained wrote")
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise MhaError(
            f"{index} has no weight_map of key -> shard file; give the index save_pretrained wrote"
        )
    shards = {name: index.parent / name for name in set(weight_map.values())}
    for name, shard in shards.items():
        if Path(name).name != name or not shard.name.lower().endswith(
            (SAFETENSORS_SUFFIX, *TORCH_SUFFIXES)
        ):
            raise MhaError(f"{index}: shard {name!r} is not a weights file beside the index")
    return {key: shards[name] for key, name in weight_map.items()}


# ---------------------------------------------------------------------------------------------
# Reading


def _read_safetensors(file: Path, keys: list[str]) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    read_header(file)  # one line for a truncated or malformed shard, before mapping it
    try:
        with safe_open(file, framework="pt", device="cpu") as opened:
            present = set(opened.keys())
            missing = [key for key in keys if key not in present]
            if missing:
                raise MhaError(
                    f"{file} lacks {missing[0]!r}, which its index places there; the shards do "
                    "not match the index: download them again"
                )
            return {key: opened.get_tensor(key) for key in keys}
    except MhaError:
        raise
    except Exception as exc:  # SafetensorError for damage the header check cannot see
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MhaError(f"cannot read {file} ({detail}); download or save it again") from None


def _map_torch(file: Path) -> dict[str, Any]:
    """A torch file's state dict, memory-mapped: its tensors are read when used."""
    import torch

    if not file.is_file():
        raise MhaError(f"{file}: not a file; give {_ACCEPTED}")
    stored = unwrap_state_dict(file, read_torch_file(file, _FIX, mmap=True))
    return {k: v for k, v in stored.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
