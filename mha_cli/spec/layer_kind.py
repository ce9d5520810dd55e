"""What kind of layer a model's layer N is, in words, where a model's layers differ: Gemma 2 and
3 alternate local (sliding-window) and global layers, Gemma 3 with a rope base of its own for
each, Qwen2 windows only some layers; and whether `--layer` asks for them all. Pure Python."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class _LayerSpec(Protocol):
    @property
    def window(self) -> int | None: ...
    @property
    def rope(self) -> str: ...
    @property
    def rope_theta(self) -> float: ...


def asks_every_layer(layer: object) -> bool:
    """Whether `--layer` asks for every layer of the model (`--layer all`)."""
    return isinstance(layer, str) and layer.strip().lower() == "all"


def layer_kind(spec: _LayerSpec) -> str:
    """ "local (window 4096, rope base 10000)" or "global (rope base 1e+06)"."""
    details = [f"window {spec.window}"] if spec.window is not None else []
    if spec.rope != "none":
        details.append(f"rope base {spec.rope_theta:g}")
    kind = "local" if spec.window is not None else "global"
    return f"{kind} ({', '.join(details)})" if details else kind


def layer_kinds(specs: Sequence[_LayerSpec]) -> list[str]:
    """Each layer's kind where the layers differ in window or rope base, else every one ""
    (a model whose layers are all alike needs no word for it)."""
    kinds = [layer_kind(spec) for spec in specs]
    return kinds if len(set(kinds)) > 1 else [""] * len(kinds)
