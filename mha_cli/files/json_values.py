"""Typed values out of a parsed JSON config, each fault as one line that names the key."""

from __future__ import annotations

from collections.abc import Mapping
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
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise MhaError(f"{where}: {key} = {value!r} should be a positive number; fix the config")
    return value
