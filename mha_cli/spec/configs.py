"""Presets (TOML files shipped inside the package) and user config files."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.messages import suggest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Keys a config may hold besides the specification's fields.
DESCRIPTIVE_KEYS = ("description",)


def preset_names() -> list[str]:
    folder = resources.files("mha_cli.configs")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MhaError(f"config {where} is not valid TOML: {exc}; fix the file") from None


def read_preset(name: str) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        raise MhaError(
            f"--config {name!r} is neither a file nor a preset{suggest(name, names)} "
            f"(presets: {', '.join(names)}; list them with `mha presets`)"
        )
    text = (resources.files("mha_cli.configs") / f"{name}.toml").read_text(encoding="utf-8")
    return _read_toml(text, f"preset {name}")


def model_config_file(name_or_path: str) -> str:
    """`--config MODEL_FOLDER` means the folder's config.json; any other value is kept."""
    path = Path(name_or_path)
    if path.is_dir() and (path / "config.json").is_file():
        return str(path / "config.json")
    return name_or_path


def load_config(name_or_path: str, layer: int = 0, attention: str | None = None) -> dict[str, Any]:
    """A preset's name, a TOML file's path, or a Hugging Face config.json (the attention of its
    layer `layer`; of an encoder-decoder model, its `attention` one). Returns the
    specification's keys only."""
    path = Path(model_config_file(name_or_path))
    if path.suffix.lower() == ".json":
        from mha_cli.hf.config import read_hf_config, spec_fields

        fields = spec_fields(read_hf_config(path, layer, attention))
        # None is a value here too: no window, no rope scaling
        kept = ("window", "rope_scaling") if fields["rope"] != "none" else ("window",)
        return {key: value for key, value in fields.items() if value is not None} | {
            **{key: fields[key] for key in kept},
            "layer": layer,
        }
    if path.suffix == ".toml" or path.exists() or path.is_symlink():
        if not path.exists() and not path.is_symlink():
            raise MhaError(
                f"--config {name_or_path}: no such file; give a TOML file or a preset name"
            )
        from mha_cli.files.json_values import read_small_file

        try:  # a FIFO, a device, a folder or a huge file: refused before reading on
            raw = read_small_file(path, "give a TOML file", "a TOML config")
        except MhaError as error:
            raise MhaError(f"--config {error}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MhaError(
                f"--config {name_or_path}: cannot read it ({exc}); give a TOML file"
            ) from None
        values = _read_toml(text, name_or_path)
    else:
        values = read_preset(name_or_path)
    return {k: v for k, v in values.items() if k not in DESCRIPTIVE_KEYS}


def preset_descriptions() -> list[tuple[str, dict[str, Any]]]:
    """Every preset with all its keys (description included), for `mha presets`."""
    return [(name, read_preset(name)) for name in preset_names()]
