"""The package list, found rather than written by hand: every folder under mha_cli/ with an
__init__.py, plus the presets folder configs/, which pyproject.toml maps to `mha_cli.configs`
(setuptools' find cannot rename a folder, so that one package is added here). Everything else
about the build is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["mha_cli", "mha_cli.*"]), "mha_cli.configs"])
