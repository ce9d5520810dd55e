"""Typed values out of a parsed JSON config, each fault as one line that names the key."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mha_cli.errors import MhaError

REQUIRED: Any = object()  # a default meaning "the config must give this key"


def whole(
    config: Mapping[str, Any], names: tuple[str, ...], where: str, default: Any = REQUIRED
) -> int:
    """The first of `names` the config sets (not null), as a whole number of at least 1."""
    key = next((name for name in names if config.get(name) is not None), None)
    if key is None and default is REQUIRED:
        raise MhaError(f"{where} has no {' or '.join(names)}; give a complete config.json")
    value = default if key is None else config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MhaError(
            f"{where}: {key or names[0]} = {value!r} should be a whole number of at least 1; "
            "fix the config"
        )
    return value


def positive(value: Any, key: str, where: str) -> int | float:
    """`value` itself (int or float, as the file has it) when it is a positive number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or not math.isfinite(value)
    ):
        raise MhaError(f"{where}: {key} = {value!r} should be a positive number; fix the config")
    return value


MAX_JSON_BYTES = 8 * 1024 * 1024  # config.json and *.index.json files are kilobytes


def read_small_file(path: Path, fix: str, what: str = "a JSON config or index") -> bytes:
    """The bytes of a small file (a config, an index). A path that exists but is no regular
    file (a broken link, a folder, a FIFO, a device) or a file over MAX_JSON_BYTES is one line
    naming the file, read no further; `fix` ends it."""
    import os
    import stat

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise MhaError(f"{path} is a broken link (to {os.readlink(path)}); {fix}") from None
        raise MhaError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise MhaError(f"cannot read {path}: {exc.strerror or exc}; {fix}") from None
    if not stat.S_ISREG(mode):
        raise MhaError(f"{path} is {file_kind(mode)}, not a regular file; {fix}")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise MhaError(f"cannot read {path}: {exc.strerror or exc}; {fix}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise MhaError(
            f"{path} is larger than {MAX_JSON_BYTES // 2**20} MiB, too large for {what}; {fix}"
        )
    return raw


def read_json_file(path: Path, fix: str) -> Any:
    """The parsed contents of a small JSON file (a config.json, an index): `read_small_file`'s
    refusals, and unreadable bytes, invalid or too deeply nested JSON as one line."""
    raw = read_small_file(path, fix)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MhaError(f"{path} is not UTF-8 text ({exc.reason}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise MhaError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); {fix}") from None
    except RecursionError:
        raise MhaError(f"{path} nests JSON values too deeply to be a config; {fix}") from None


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, for messages: "a FIFO (named pipe)", ..."""
    import stat

    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")
