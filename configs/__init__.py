"""The presets, shipped inside the wheel as the package `mha_cli.configs` (see pyproject.toml)."""
