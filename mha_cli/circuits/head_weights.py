"""`mha weights` for one layer: per head, the norms of its slices, its two circuits, and flags;
across heads, how alike their circuits are. Returns plain records (`weight_records`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import torch

from mha_cli.circuits import circuits
from mha_cli.circuits.head_slices import (
    HeadSlices,
    finite_copy,
    holds_one_value,
    identical_heads,
    non_finite_counts,
    slice_heads,
)
from mha_cli.circuits.records import CIRCUITS, Circuit, HeadWeights, LayerWeights
from mha_cli.importance.spread import outliers
from mha_cli.spec.spec import FinalSpec

# Above this many FLOPs (the four full Gram matrices) the similarity is left out unless asked
# for: 2e10 is about 0.2 s on one core; bert-base needs 3.6e9, a 4096-hidden layer 5.5e11.
SIMILARITY_BUDGET = 2 * 10**10


def layer_weights(
    spec: FinalSpec,
    state: Mapping[str, torch.Tensor],
    layer: int = 0,
    similarity: bool | None = None,
) -> LayerWeights:
    """Every head of the layer `state` holds; `similarity` None: computed when it is cheap."""
    if spec.score == "additive":
        return _additive(spec, state, layer)
    full = spec.value_mode == "full"
    raw = slice_heads(state, spec.heads, spec.kv_heads, full)
    bad = non_finite_counts(raw) if not _all_finite(state) else [0] * spec.heads
    slices = finite_copy(raw) if any(bad) else raw
    grams = {
        "W_q": circuits.gram_rows(slices.q),  # (h, d, d): W_q_i W_q_iᵀ
        "W_k": circuits.gram_rows(slices.k),  # (g, d, d)
        "W_v": circuits.gram_rows(slices.v),  # (g, w, w)
        "W_o": circuits.gram_columns(slices.o),  # (h, w, w): W_o_iᵀ W_o_i
    }
    norms = _slice_norms(slices, grams)  # name -> (h,)
    roots = {name: circuits.gram_root(gram) for name, gram in grams.items()}
    kv, vh = slices.kv_of_head, slices.v_of_head
    spectra = {
        "qk": circuits.factored_singular_values(roots["W_q"], roots["W_k"][kv]),  # (h, d)
        "ov": circuits.factored_singular_values(roots["W_o"], roots["W_v"][vh]),  # (h, w)
    }
    fingerprint = torch.stack(list(norms.values()), dim=1)  # (h, slices)
    same = identical_heads(raw, fingerprint)
    notes = _notes(spec, slices)
    cosines = None
    if similarity is None:
        similarity = similarity_flops(slices) <= SIMILARITY_BUDGET
        if not similarity:
            notes.append(
                f"similarity between heads left out: it needs four full Gram matrices "
                f"({similarity_flops(slices) / 1e9:.0f} GFLOPs); add --similarity for it"
            )
    if similarity:
        cosines = _similarity(slices, bad)
    summaries = {name: circuits.figures(sigma) for name, sigma in spectra.items()}  # (h,) each
    heads = [
        _head(i, slices, norms, spectra, summaries, same[i], bad[i]) for i in range(spec.heads)
    ]
    heads = _standing(heads)
    all_equal = spec.heads > 1 and all(s == 0 for s in same[1:])
    flags = _layer_flags(state, heads, all_equal)
    shared = {}
    if slices.out_bias is not None:
        shared["b_o"] = float(torch.linalg.vector_norm(slices.out_bias.to(torch.float64)))
    return LayerWeights(layer, heads, cosines, shared, flags, notes, all_equal)


def _standing(heads: list[HeadWeights]) -> list[HeadWeights]:
    """Mark each head whose circuit's Frobenius norm lies beyond the spread of the other heads'
    (`spread.outliers`); a circuit that is exactly zero is flagged as such already."""
    marks: dict[int, dict[str, str]] = {h.head: {} for h in heads}
    for circuit in CIRCUITS:
        values = [getattr(h, circuit).frobenius for h in heads]
        for index, side in outliers(values, len(heads)):
            if values[index] != 0:
                marks[heads[index].head][circuit] = "above" if side > 0 else "below"
    return [replace(h, beyond_spread=marks[h.head]) if marks[h.head] else h for h in heads]


def similarity_flops(slices: HeadSlices) -> int:
    """What the four full Gram matrices behind the similarity cost."""
    h, d, d_q = slices.q.shape
    g, _, d_k = slices.k.shape
    m, w, d_v = slices.v.shape
    hiddens = slices.o.shape[1]
    return sum(
        circuits.similarity_cost(rows, columns)
        for rows, columns in ((h * d, d_q), (g * d, d_k), (h * w, hiddens), (m * w, d_v))
    )


def _all_finite(state: Mapping[str, torch.Tensor]) -> bool:
    """A sum is NaN or infinite when any term is (or when it overflows, which only sends
    the layer to the exact per-head count): one pass, no mask as large as the weights."""
    return all(bool(torch.isfinite(t.sum())) for t in state.values())


def _slice_norms(slices: HeadSlices, grams: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Frobenius norm of every slice each head uses: sqrt(trace of its Gram) (h,)."""
    index = {"W_q": None, "W_k": slices.kv_of_head, "W_v": slices.v_of_head, "W_o": None}
    norms = {}
    for name, gram in grams.items():
        per_slice = gram.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(0).sqrt()
        norms[name] = per_slice if index[name] is None else per_slice[index[name]]
    bias_index = {"b_q": None, "b_k": slices.kv_of_head, "b_v": slices.v_of_head}
    for name, bias in slices.biases.items():
        per_slice = torch.linalg.vector_norm(bias.to(torch.float64), dim=-1)
        where = bias_index[name]
        norms[name] = per_slice if where is None else per_slice[where]
    return norms


def _circuit(sigma: list[float], summary: dict[str, float], bad: bool) -> Circuit:
    if bad:
        nan = math.nan
        return Circuit(tuple(nan for _ in sigma), nan, nan, nan)
    return Circuit(
        tuple(sigma), summary["frobenius"], summary["stable_rank"], summary["effective_rank"]
    )


def _head(
    i: int,
    slices: HeadSlices,
    norms: dict[str, torch.Tensor],
    spectra: dict[str, torch.Tensor],
    summaries: dict[str, dict[str, torch.Tensor]],
    identical_to: int | None,
    non_finite: int,
) -> HeadWeights:
    head_norms = {name: math.nan if non_finite else float(n[i]) for name, n in norms.items()}
    zero = tuple(n for n in ("W_q", "W_k", "W_v", "W_o") if head_norms[n] == 0.0)
    values_zero = "W_v" in zero and head_norms.get("b_v", 0.0) == 0.0
    return HeadWeights(
        head=i,
        kv_head=int(slices.kv_of_head[i]),
        norms=head_norms,
        qk=_circuit(spectra["qk"][i].tolist(), _at(summaries["qk"], i), bool(non_finite)),
        ov=_circuit(spectra["ov"][i].tolist(), _at(summaries["ov"], i), bool(non_finite)),
        zero_slices=zero,
        dead="W_o" in zero or values_zero,
        identical_to=identical_to,
        non_finite=non_finite,
    )


def _at(summary: dict[str, torch.Tensor], i: int) -> dict[str, float]:
    return {name: float(values[i]) for name, values in summary.items()}


def _similarity(slices: HeadSlices, bad: list[int]) -> dict[str, list[list[float]]]:
    qk = circuits.circuit_inner_products(
        slices.q.transpose(1, 2), slices.k, slices.kv_of_head
    )  # W_QK_i = W_q_iᵀ W_k_j: tall factor W_q_iᵀ (D_q, d)
    ov = circuits.circuit_inner_products(slices.o, slices.v, slices.v_of_head)
    result = {}
    for name, inner in (("qk", qk), ("ov", ov)):
        cos = circuits.cosine(inner)
        broken = torch.tensor([b > 0 for b in bad], device=cos.device)
        cos[broken, :], cos[:, broken] = math.nan, math.nan
        result[name] = cos.tolist()
    return result


def _layer_flags(
    state: Mapping[str, torch.Tensor], heads: list[HeadWeights], all_equal: bool
) -> list[str]:
    flags = []
    if all_equal:
        why = (
            "every weight holds one value (a constant initialisation)"
            if holds_one_value(state)
            else "every head's slices are equal"
        )
        flags.append(
            f"all {len(heads)} heads are the same: {why}; they compute the same output and get "
            "the same gradients, so training can never make them differ (random "
            "initialisation is what makes heads different from the start)"
        )
    broken = [h.head for h in heads if h.non_finite]
    if broken:
        flags.append(f"non-finite values in the slices of heads {_join(broken)}")
    return flags


def _notes(spec: FinalSpec, slices: HeadSlices) -> list[str]:
    """What applies to this layer's figures."""
    notes = []
    h, g, d = spec.heads, spec.kv_heads, spec.head_dim
    if g != h:
        notes.append(
            f"grouped-query attention: {g} key-value heads, each read by {h // g} query heads "
            f"(kv head j = i // {h // g}); W_k and W_v are the shared slices"
        )
    if spec.value_mode == "full":
        notes.append(
            f"values kept whole (--value-mode full): every head reads all of W_v (the same norm "
            f"for each head), owns {spec.hiddens} columns of W_o, and its W_OV has rank up to "
            f"{spec.hiddens}, not the head dim {d}"
        )
    if slices.biases or slices.out_bias is not None:
        notes.append(
            "biases are not part of the circuits (they add terms that do not depend on the "
            "query and the key together); b_o is added once and shared by every head"
        )
    if spec.rope != "none":
        notes.append(
            "rotary embedding turns queries and keys by their positions between W_q and W_k: "
            "W_QK is the circuit at relative distance 0"
        )
    if spec.qk_norm:
        notes.append(
            "queries and keys are normalised and scaled (q_norm, k_norm) between the "
            "projections: W_QK is of W_q and W_k alone"
        )
    if spec.relative_buckets is not None:
        notes.append(
            "the relative position bias (T5) is added to the scores by distance, whatever the "
            "query and the key: it is not part of W_QK"
        )
    return notes


def _additive(spec: FinalSpec, state: Mapping[str, torch.Tensor], layer: int) -> LayerWeights:
    norms = {
        name.removesuffix(".weight").replace(".bias", "_bias"): float(
            torch.linalg.vector_norm(t.to(torch.float64))
        )
        for name, t in state.items()
    }
    note = (
        "additive attention (--score additive) has one head and no W_QK or W_OV circuit: its "
        "score w_vᵀ tanh(W_q q + W_k k) is not bilinear in the query and the key, and values "
        "are not projected; the norms of its weights are shown instead"
    )
    return LayerWeights(layer, [], None, norms, [], [note], False)


def _join(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)
