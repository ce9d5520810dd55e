"""The stages a layer reports, and the recorder that turns each reported tensor into a `Stage`.

`STAGES` is the one table of what each step is: the d2l code it corresponds to and the name
of each axis of its output. Axis names in braces are slots that the layer fills per call
(`{seq}` is queries or kv pairs, `{heads}` heads or kv heads, ...), so the forward pass records
each step in one short line: `record("queries.split", X, seq=QUERIES, heads=HEADS)`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from mha_cli.layer.records import Stage
from mha_cli.spec.axes import (
    BATCH,
    BATCH_HEADS,
    HEADS,
    HIDDENS,
    KEY_SIZE,
    KV_PAIRS,
    QUERIES,
    QUERY_SIZE,
    VALUE_SIZE,
)

# name -> (d2l code, axes). `{role}` stands for queries, keys or values in the name and code.
STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "queries": ("queries", (BATCH, QUERIES, QUERY_SIZE)),
    "keys": ("keys", (BATCH, KV_PAIRS, KEY_SIZE)),
    "values": ("values", (BATCH, KV_PAIRS, VALUE_SIZE)),
    "valid_lens": ("valid_lens", (BATCH, "{per_query}")),
    "W_q": ("self.W_q(queries)", (BATCH, QUERIES, "{out}")),
    "W_k": ("self.W_k(keys)", (BATCH, KV_PAIRS, "{out}")),
    "W_v": ("self.W_v(values)", (BATCH, KV_PAIRS, "{out}")),
    "{role}.norm_whole": (
        "self.{r}_norm(X)  # over every head's features",
        (BATCH, "{seq}", "{out}"),
    ),
    "{role}.clip": ("X.clamp(-clip_qkv, clip_qkv)", (BATCH, "{seq}", "{out}")),
    "{role}.split": (
        "X.reshape(X.shape[0], X.shape[1], num_heads, -1)",
        (BATCH, "{seq}", "{heads}", "{feature}"),
    ),
    "{role}.permute": ("X.permute(0, 2, 1, 3)", (BATCH, "{heads}", "{seq}", "{feature}")),
    "{role}.norm": ("self.{r}_norm(X)", (BATCH, "{heads}", "{seq}", "{feature}")),
    "{role}.rope": ("apply_rotary_pos_emb(X, cos, sin)", (BATCH, "{heads}", "{seq}", "{feature}")),
    "{role}.share": (
        "X.repeat_interleave(num_heads // num_kv_heads, dim=1)",
        (BATCH, HEADS, "{seq}", "{feature}"),
    ),
    "{role}.fold": ("X.reshape(-1, X.shape[2], X.shape[3])", (BATCH_HEADS, "{seq}", "{feature}")),
    "values.expand": (
        "values.unsqueeze(1).expand(-1, num_heads, -1, -1)",
        (BATCH, HEADS, KV_PAIRS, HIDDENS),
    ),
    "valid_lens.repeat": (
        "torch.repeat_interleave(valid_lens, repeats=self.num_heads, dim=0)",
        (BATCH_HEADS, "{per_query}"),
    ),
    "scores": (
        "torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)",
        ("{rows}", QUERIES, KV_PAIRS),
    ),
    "alibi": (
        "scores + slopes[h] * j  # ALiBi, Bloom's build_alibi_tensor",
        ("{rows}", QUERIES, KV_PAIRS),
    ),
    "relative_bias": (
        "scores + relative_attention_bias(bucket(j - i))[h]  # T5's compute_bias, one table",
        ("{rows}", QUERIES, KV_PAIRS),
    ),
    "softcap": ("torch.tanh(scores / softcap) * softcap", ("{rows}", QUERIES, KV_PAIRS)),
    "masked_softmax": (
        "self.attention_weights = masked_softmax(scores, valid_lens)",
        ("{rows}", QUERIES, KV_PAIRS),
    ),
    "dropout": ("self.dropout(self.attention_weights)", ("{rows}", QUERIES, KV_PAIRS)),
    "weighted_sum": (
        "torch.bmm(self.dropout(self.attention_weights), values)",
        ("{rows}", QUERIES, "{feature}"),
    ),
    "output.unfold": (
        "X.reshape(-1, num_heads, X.shape[1], X.shape[2])",
        (BATCH, HEADS, QUERIES, "{feature}"),
    ),
    "output.permute": ("X.permute(0, 2, 1, 3)", (BATCH, QUERIES, HEADS, "{feature}")),
    "output.concat": ("X.reshape(X.shape[0], X.shape[1], -1)", (BATCH, QUERIES, "{out}")),
    "W_o": ("self.W_o(output_concat)", (BATCH, QUERIES, HIDDENS)),
}
# d2l's AdditiveAttention (the scoring-functions chapter): its own steps, and its own scores.
ADDITIVE_STAGES = STAGES | {
    "queries.unsqueeze": ("queries.unsqueeze(2)", (BATCH, QUERIES, "1", HIDDENS)),
    "keys.unsqueeze": ("keys.unsqueeze(1)", (BATCH, "1", KV_PAIRS, HIDDENS)),
    "features": (
        "torch.tanh(queries.unsqueeze(2) + keys.unsqueeze(1))",
        (BATCH, QUERIES, KV_PAIRS, HIDDENS),
    ),
    "w_v": ("self.w_v(features)", (BATCH, QUERIES, KV_PAIRS, "1")),
    "scores": ("self.w_v(features).squeeze(-1)", (BATCH, QUERIES, KV_PAIRS)),
}
ROLES = ("queries", "keys", "values")


Catalogue = dict[str, tuple[str, tuple[str, ...]]]


def stage_entry(name: str, catalogue: Catalogue = STAGES) -> tuple[str, tuple[str, ...]]:
    """The d2l code and the axes (slots unfilled) of stage `name`."""
    if name in catalogue:
        return catalogue[name]
    role, _, step = name.partition(".")
    code, axes = catalogue[f"{{role}}.{step}"]
    return code.replace("{r}", role[0]), axes


class Record(Protocol):
    def __call__(
        self,
        name: str,
        tensor: torch.Tensor,
        *,
        module: nn.Module | None = None,
        flops: int = 0,
        **slots: str,
    ) -> None: ...


def linear_flops(layer: nn.Linear, output: torch.Tensor) -> int:
    """A multiply-add is 2 FLOPs; the bias add is not counted (as torch.utils.flop_counter)."""
    return 2 * output.numel() * layer.in_features


class Recorder:
    """Turns each tensor the layer reports into a `Stage`; keeps the tensor when it is real."""

    def __init__(
        self, keep_tensors: bool, value_ranges: bool = True, catalogue: Catalogue = STAGES
    ) -> None:
        self.catalogue = catalogue
        self.stages: list[Stage] = []
        self.tensors: dict[str, torch.Tensor] = {}
        self.keep_tensors = keep_tensors
        self.value_ranges = value_ranges and keep_tensors
        # The storage each recorded tensor lives in (its `_base`, or itself): a later stage
        # whose storage is one of these is a view of an earlier stage, and allocated nothing.
        self._storages: list[torch.Tensor] = []

    def __call__(
        self,
        name: str,
        tensor: torch.Tensor,
        *,
        module: nn.Module | None = None,
        flops: int = 0,
        **slots: str,
    ) -> None:
        code, template = stage_entry(name, self.catalogue)
        code = slots.pop("code", code)  # a stage whose code depends on the layer (the scale)
        axes = tuple(_fill(axis, slots) for axis in template)
        axes = tuple(axis for axis in axes if axis)  # an empty slot: that axis is absent
        if len(axes) != tensor.dim():  # a bug in the layer, never a user's mistake
            raise RuntimeError(f"stage {name}: axes {axes} for a {tensor.dim()}-D tensor")
        params = None if module is None else sum(p.numel() for p in module.parameters())
        root = tensor._base if tensor._base is not None else tensor
        view = any(root is seen for seen in self._storages)
        self._storages.append(root)
        self.stages.append(
            Stage(
                name=name,
                code=code,
                shape=tuple(tensor.shape),
                axes=axes,
                params=params,
                flops=flops,
                bytes=tensor.numel() * tensor.element_size(),
                view=view,
                dtype=str(tensor.dtype).removeprefix("torch."),
                value_range=_value_range(tensor) if self.value_ranges else None,
            )
        )
        if self.keep_tensors:
            self.tensors[name] = tensor


def _fill(axis: str, slots: dict[str, Any]) -> str:
    if axis.startswith("{") and axis.endswith("}"):
        return str(slots[axis[1:-1]])
    return axis


def _value_range(tensor: torch.Tensor) -> tuple[float, float]:
    # One pass, no float copy: this runs on every stage, so on big runs it must stay cheap.
    low, high = torch.aminmax(tensor.detach())
    return float(low), float(high)
