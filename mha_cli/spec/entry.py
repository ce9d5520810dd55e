"""What every API function does first: the specification from option names, checked before
torch is imported, then the torch core, imported once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.fast_start import import_heavy
from mha_cli.spec.build import build_spec
from mha_cli.spec.spec import AttentionSpec
from mha_cli.spec.validation import validate_early


def specification(
    config: Any, options: Mapping[str, Any], source: str = "options"
) -> AttentionSpec:
    """Defaults, config and options, with every check that needs no tensor and no file done:
    a wrong `heads` answers in the time of `mha --help`, even where torch is missing."""
    spec = build_spec(config, options, source)  # a model id (gpt2) names its HF cache folder
    return validate_early(spec)


def load_heavy(*modules: str) -> None:
    """Import torch and the modules named (the core, matplotlib), or say in one line that
    torch is missing."""
    try:
        import_heavy("torch", *modules)
    except ImportError as error:
        if error.name is None or not error.name.startswith("torch"):
            raise
        raise MhaError(
            "this command runs the layer and needs PyTorch, which is not installed here; "
            "install it (pip install torch)"
        ) from None
