"""The part of each weight that one head uses, cut out of a layer's state dict (d2l names).

Query head i owns rows i*d .. i*d+d-1 of W_q and columns i*d .. i*d+d-1 of W_o; it reads rows
j*d .. j*d+d-1 of W_k and W_v, where j = i // (heads / kv_heads) is its key-value head (j = i
without grouped-query attention). With values kept whole (`--value-mode full`) every head reads
all of W_v and owns num_hiddens columns of W_o.
Shapes: h heads, g key-value heads, d head dim, w the width of a head's output (d, or H with
full values), H num_hiddens, D_q/D_k/D_v the query, key and value sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HeadSlices:
    q: torch.Tensor  # (h, d, D_q): head i's rows of W_q
    k: torch.Tensor  # (g, d, D_k): key-value head j's rows of W_k
    v: torch.Tensor  # (g, w, D_v), or (1, H, D_v) with full values
    o: torch.Tensor  # (h, H, w): head i's columns of W_o
    biases: dict[str, torch.Tensor]  # "b_q" (h, d), "b_k" (g, d), "b_v" (g or 1, w), if present
    out_bias: torch.Tensor | None  # (H,): added once, shared by every head
    kv_of_head: torch.Tensor  # (h,) the key-value head each query head reads
    v_of_head: torch.Tensor  # (h,) the W_v slice each head reads (all 0 with full values)

    @property
    def heads(self) -> int:
        return self.q.shape[0]

    def of_head(self, i: int) -> dict[str, torch.Tensor]:
        """Every slice head i uses, by name (W_q, W_k, W_v, W_o, then its biases)."""
        kv, vh = int(self.kv_of_head[i]), int(self.v_of_head[i])
        parts = {"W_q": self.q[i], "W_k": self.k[kv], "W_v": self.v[vh], "W_o": self.o[i]}
        index = {"b_q": i, "b_k": kv, "b_v": vh}
        parts.update({name: bias[index[name]] for name, bias in self.biases.items()})
        return parts


def slice_heads(
    state: Mapping[str, torch.Tensor], heads: int, kv_heads: int, full_values: bool
) -> HeadSlices:
    """Cut the layer's weights (out_features, in_features) into per-head slices: views."""
    h, g = heads, kv_heads
    w_q, w_o = state["W_q.weight"], state["W_o.weight"]
    d = w_q.shape[0] // h
    hiddens = w_o.shape[0]
    width = w_o.shape[1] // h  # d, or num_hiddens with full values
    v_rows = 1 if full_values else g
    kv_of_head = torch.arange(h, device=w_q.device) // (h // g)  # (h,)
    biases = {}
    for name, role, count in (("b_q", "W_q", h), ("b_k", "W_k", g), ("b_v", "W_v", v_rows)):
        bias = state.get(f"{role}.bias")
        if bias is not None:
            biases[name] = bias.reshape(count, -1)  # (heads of that role, d or w)
    return HeadSlices(
        q=w_q.reshape(h, d, -1),  # (h, d, D_q)
        k=state["W_k.weight"].reshape(g, d, -1),  # (g, d, D_k)
        v=state["W_v.weight"].reshape(v_rows, -1, state["W_v.weight"].shape[1]),  # (g, w, D_v)
        o=w_o.reshape(hiddens, h, width).permute(1, 0, 2),  # (h, H, w)
        biases=biases,
        out_bias=state.get("W_o.bias"),
        kv_of_head=kv_of_head,
        v_of_head=torch.zeros_like(kv_of_head) if full_values else kv_of_head,
    )


def non_finite_counts(slices: HeadSlices) -> list[int]:
    """NaN or infinite values among the slices each head uses (shared ones count for each)."""
    counts: list[int] = []
    for i in range(slices.heads):
        counts.append(sum(int((~torch.isfinite(t)).sum()) for t in slices.of_head(i).values()))
    return counts


def finite_copy(slices: HeadSlices) -> HeadSlices:
    """The slices with every non-finite value set to 0, so the linear algebra runs for the
    other heads; the heads that held them are reported as NaN."""

    def clean(t: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)

    return HeadSlices(
        q=clean(slices.q),
        k=clean(slices.k),
        v=clean(slices.v),
        o=clean(slices.o),
        biases={name: clean(b) for name, b in slices.biases.items()},
        out_bias=None if slices.out_bias is None else clean(slices.out_bias),
        kv_of_head=slices.kv_of_head,
        v_of_head=slices.v_of_head,
    )


def identical_heads(slices: HeadSlices, fingerprints: torch.Tensor) -> list[int | None]:
    """For each head, the first earlier head with exactly the same weights, or None.

    `fingerprints` (h, f) are figures that equal heads share (their slice norms): only heads
    whose fingerprints agree are compared element by element, so random heads cost nothing.
    """
    found: list[int | None] = [None] * slices.heads
    for i in range(slices.heads):
        for j in range(i):
            if found[j] is not None:
                continue  # compare with the first of each group only
            close = torch.allclose(fingerprints[i], fingerprints[j], rtol=1e-9, atol=0.0)
            if close and _same(slices.of_head(i), slices.of_head(j)):
                found[i] = j
                break
    return found


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


def holds_one_value(state: Mapping[str, torch.Tensor]) -> bool:
    """Every weight matrix of the layer holds a single value (a constant initialisation)."""
    weights = [t for name, t in state.items() if name.endswith("weight") and t.dim() == 2]
    first = weights[0].flatten()[0]
    return all(bool((t == first).all()) for t in weights)
