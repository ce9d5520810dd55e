"""A layer's weights without running it: the seeded random layer, or one layer of `--weights`.

`mha weights` reads a layer's parameters and never runs it. With `--layer all` it reads the
layers one at a time through `layer_parameters`, so a whole model never sits in memory at once;
`layer_count` says how many there are (a whole model's from its key names alone). Those two
functions are the one place that knows where layers come from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from mha_cli.errors import MhaError
from mha_cli.files.sources import holds_one_layer, resolve
from mha_cli.layer.records import Source
from mha_cli.layer.run import build_layer, resolve_device
from mha_cli.spec.spec import AttentionSpec, FinalSpec


@dataclass(frozen=True)
class LayerParameters:
    spec: FinalSpec  # with the sizes the checkpoint fixes
    state: dict[str, torch.Tensor]  # d2l names, as the layer holds them (in spec.dtype)
    source: Source | None  # None: seeded random weights


def layer_count(spec: AttentionSpec) -> int:
    """How many attention layers `spec.weights` holds: one for a single layer's checkpoint and
    for the seeded random layer; a whole model's from its key names, reading no tensor."""
    if spec.weights is None or holds_one_layer(Path(spec.weights)):
        return 1
    from mha_cli.files.model_layer import model_layer_count

    return model_layer_count(spec)


def layer_parameters(spec: AttentionSpec, layer: int | None = None) -> LayerParameters:
    """Layer `layer` (default: `spec.layer`) as the other commands build it, not run.

    Non-finite weights are let through: `mha weights` reports which head holds them.
    """
    if layer is not None:
        spec = replace(spec, layer=layer)
    count = layer_count(spec)
    if spec.layer >= count:
        where = spec.weights or "the seeded random layer"
        raise MhaError(
            f"--layer {spec.layer}: {where} holds {count} attention layer"
            f"{'s' if count > 1 else ''} (0..{count - 1}); pick one of them or --layer all"
        )
    sources = resolve(spec, finite=False)
    spec = sources.spec
    if spec.device == "meta":
        raise MhaError(
            "mha weights needs the weights' values, and the meta device holds none; "
            "use --device cpu (or cuda)"
        )
    device = resolve_device(spec.device)
    layer_module = build_layer(spec, device, getattr(torch, spec.dtype), sources.state)
    state = {name: t.detach() for name, t in layer_module.state_dict().items()}
    return LayerParameters(spec, state, sources.source)
