"""The figures and notes below the stage table, derived from the run and the spec."""

from __future__ import annotations

import torch
from torch import nn

from mha_cli.layer.records import MaskedKeys, Stage, Summary
from mha_cli.layer.role_records import HeadRole
from mha_cli.spec.counts import parameters_depend_on_heads
from mha_cli.spec.spec import FinalSpec


def summarize(
    spec: FinalSpec,
    layer: nn.Module,
    stages: list[Stage],
    attention: torch.Tensor | None,  # (b, h, q, k), None when nothing was computed (meta)
    mask: torch.Tensor | None = None,  # (b, h, q, k) True where masked
) -> Summary:
    total_params = sum(p.numel() for p in layer.parameters())
    roles: list[HeadRole] = []
    roles_note = None
    if attention is not None:
        from mha_cli.layer.head_roles import head_roles

        roles, roles_note = head_roles(spec, attention, mask)
    return Summary(
        head_dim=spec.head_dim,
        num_heads=spec.heads,
        num_kv_heads=spec.kv_heads,
        total_params=total_params,
        params_depend_on_heads=parameters_depend_on_heads(spec),
        total_flops=sum(s.flops for s in stages),
        activation_bytes=sum(s.bytes for s in stages if not s.view),
        output_shape=stages[-1].shape,
        computed=attention is not None,
        parameter_bytes=sum(p.numel() * p.element_size() for p in layer.parameters()),
        head_slices=head_slices(spec),
        masked_keys=masked_keys(spec),
        notes=_notes(spec, attention, layer),
        head_roles=roles,
        head_roles_note=roles_note,
    )


def head_slices(spec: FinalSpec) -> list[tuple[str, tuple[int, int], str]]:
    """The part of each weight (out_features, in_features) that head i uses."""
    if spec.score == "additive":
        return []
    d = spec.head_dim
    group = spec.heads // spec.kv_heads
    shared = f", shared by {group} query heads" if group > 1 else ""
    kv_rows = (
        f"rows j*{d}..j*{d}+{d - 1} of kv head j = i // {group}"
        if group > 1
        else f"rows i*{d}..i*{d}+{d - 1}"
    )
    slices = [
        ("W_q", (d, spec.query_size), f"rows i*{d}..i*{d}+{d - 1}"),
        ("W_k", (d, spec.key_size), kv_rows + shared),
    ]
    if spec.value_mode == "full":
        slices.append(("W_v", (spec.hiddens, spec.value_size), "all rows: values are not split"))
        h = spec.hiddens
        slices.append(("W_o", (spec.hiddens, h), f"columns i*{h}..i*{h}+{h - 1}"))
    else:
        slices.append(("W_v", (d, spec.value_size), kv_rows + shared))
        slices.append(("W_o", (spec.hiddens, d), f"columns i*{d}..i*{d}+{d - 1}"))

    return slices


def _span(first: int, last: int) -> str:
    if first > last:
        return "none"
    return f"key {first}" if first == last else f"keys {first}..{last}"


def masked_keys(spec: FinalSpec) -> list[MaskedKeys]:
    """Which key positions each example masks. By position (padding), never by score."""
    if spec.valid_lens is None and not spec.causal:
        return []
    causal = f" (and {_causal_text(spec)})" if spec.causal else ""
    result = []
    for example in range(spec.batch):
        if spec.valid_lens is None:
            text = _causal_text(spec)
            result.append(MaskedKeys(example, None, True, text))
            continue
        lens = spec.valid_lens[example]
        if isinstance(lens, tuple):  # 2-D: one length per query
            per_query = [f"q{i}: {_span(n, spec.kv - 1)}" for i, n in enumerate(lens[:8])]
            more = f", ... {len(lens) - 8} more" if len(lens) > 8 else ""
            text = f"per query, padding beyond its valid length: {', '.join(per_query)}{more}"
            result.append(MaskedKeys(example, list(lens), spec.causal, text + causal))
            continue
        text = f"{_span(lens, spec.kv - 1)} masked: padding beyond valid_len {lens}"
        if lens == 0:
            text += "; no key is valid, so every weight is 1/kv (uniform)"
        result.append(MaskedKeys(example, lens, spec.causal, text + causal))
    return result


def _causal_text(spec: FinalSpec) -> str:
    """Which keys a query at position p masks: the future, and beyond a sliding window."""
    text = "causal: the query at position p masks keys p+1.. (the future)"
    if spec.window is not None:
        text += f" and keys ..p-{spec.window} (outside the window of {spec.window})"
    return text


def _positions_note(spec: FinalSpec) -> str | None:
    """Say where the queries sit when it matters: fewer queries than keys, with positions."""
    if spec.query_offset == 0 or not (spec.causal or spec.rope != "none"):
        return None
    first, last = spec.query_offset, spec.kv - 1
    return (
        f"positions: keys are 0..{last}, queries are the last {spec.queries} ({first}..{last}), "
        "as when decoding with a cache"
    )


def _notes(spec: FinalSpec, attention: torch.Tensor | None, layer: nn.Module) -> list[str]:
    notes = []
    positions = _positions_note(spec)
    if positions:
        notes.append(positions)
    if spec.rope != "none":
        pairs = "j and j + rd/2" if spec.rope == "half" else "2j and 2j+1"
        notes.append(
            f"rotary embedding: the first {spec.rotary_dim} of each head's {spec.head_dim} "
            f"features of queries and keys turn in pairs ({pairs}) by position x "
            f"theta^(-2j/rd), theta {spec.rope_theta:g}; values are not rotated"
        )
    if spec.qk_norm and spec.qk_norm_whole:
        notes.append(
            "qk-norm: queries and keys are RMS-normalised over all heads' features at once, "
            "after W_q and W_k and before the split into heads (OLMo 2)"
        )
    elif spec.qk_norm and spec.qk_norm_layer:
        notes.append(
            "qk-norm: each head's queries and keys are layer-normalised over their "
            f"{spec.head_dim} features (mean subtracted, no bias, one weight per head: StableLM, "
            "Cohere) before the rotation"
        )
    elif spec.qk_norm:
        notes.append(
            "qk-norm: each head's queries and keys are RMS-normalised over their "
            f"{spec.head_dim} features (one weight shared by all heads) before the rotation"
        )
    if spec.relative_buckets is not None:
        sides = "keys after the query all in bucket 0" if spec.causal else "each side its half"
        notes.append(
            f"relative position bias (T5): each head adds a learned number to the score of "
            f"query i and key j, from a table of {spec.relative_buckets} buckets of the distance "
            f"j - i ({sides}): a bucket per distance up to a quarter (causal: half) of them, "
            f"then logarithmically wider ones up to {spec.relative_max_distance}"
        )
    if attention is None:
        notes.append(
            "meta device: shapes, parameters, FLOPs and bytes are traced without allocating "
            "any tensor; values are not computed"
        )
    if spec.dropout > 0:
        keep = 1 / (1 - spec.dropout)
        action = (
            "is applied (--train)"
            if spec.train
            else "is inactive: eval mode, as d2l's attention.eval()"
        )
        notes.append(
            f"dropout {spec.dropout:g} {action}; in training it zeroes each attention weight with "
            f"probability {spec.dropout:g} and scales the others by {keep:.4g}"
        )
    if _has_empty_rows(spec):
        notes.append(
            "a valid length of 0 masks every key: d2l's -1e6 fill makes those rows uniform; "
            "torch.nn.MultiheadAttention returns NaN there"
        )
    if spec.dtype == "float16":
        notes.append("float16 cannot hold d2l's -1e6 mask value: masked scores use -65504 instead")
    if attention is not None and not bool(torch.isfinite(attention).all()):
        bad = int((~torch.isfinite(attention)).sum())
        notes.append(
            f"{bad:,} attention weights are not finite (NaN or inf): the scores overflowed "
            f"{spec.dtype} or the weights or inputs hold such values; heatmaps leave those cells "
            "blank (the terminal marks them !!); try --dtype float32"
        )
    if attention is not None and spec.heads > 1 and _heads_identical(attention):
        notes.append(identical_heads_note(spec, attention, layer))
    return notes


def identical_heads_note(spec: FinalSpec, attention: torch.Tensor, layer: nn.Module) -> str:
    """Why every head has the same attention weights: the weights, the inputs, or neither.

    Equal weights per head (a constant initialisation) make equal heads whatever the inputs;
    inputs that repeat one vector (the book's ones) make every valid key score the same in
    every head whatever the weights. Each cause found is named, with what would change it."""
    causes, fixes = [], []
    same_slices = _same_score_slices(spec, layer)
    if same_slices is not None:
        causes.append(
            f"every head has the same slice of W_q and of W_k ({same_slices}), so every head "
            "computes the same scores"
        )
        fixes.append(
            "heads differ only when their weights do: use random (--seed) or trained weights"
        )
    if uniform_over_valid_keys(attention):
        inputs = (
            "with --inputs ones every query and every key is the same vector"
            if spec.inputs == "ones"
            else "the inputs give every valid key the same score"
        )
        causes.append(
            f"{inputs}, so each valid key gets the same score and every head spreads its weight "
            "evenly over the valid keys"
        )
        fixes.append("use --inputs randn to see the heads differ")
    if not causes:
        causes.append("their weights differ, yet their scores come out equal")
    return (
        f"all {spec.heads} heads have the same attention weights: "
        + "; and ".join(causes)
        + ("; " + "; ".join(fixes) if fixes else "")
    )


def _same_score_slices(spec: FinalSpec, layer: nn.Module) -> str | None:
    """How the heads' slices of W_q and W_k are equal (None when they are not): one value in
    every weight (a constant initialisation), or equal slices."""
    if spec.score != "dot" or spec.rope != "none":
        return None
    w_q, w_k = getattr(layer, "W_q", None), getattr(layer, "W_k", None)
    if not isinstance(w_q, nn.Linear) or not isinstance(w_k, nn.Linear):
        return None
    slices = [
        w.weight.detach().reshape(n, -1) for w, n in ((w_q, spec.heads), (w_k, spec.kv_heads))
    ]
    if not all(bool(torch.equal(s, s[:1].expand_as(s))) for s in slices):
        return None
    if all(bool((s == s.reshape(-1)[0]).all()) for s in slices):
        return "every weight holds one value: a constant initialisation"
    return "their rows are equal"


def uniform_over_valid_keys(attention: torch.Tensor) -> bool:
    """(b, h, q, k): does every query give each key it sees (weight above 0) the same weight?"""
    seen = attention.float() > 1e-12
    top = attention.float().amax(dim=-1, keepdim=True).expand_as(attention)
    return bool(torch.allclose(attention.float()[seen], top[seen], atol=1e-6))


def _has_empty_rows(spec: FinalSpec) -> bool:
    lens = spec.valid_lens
    if lens is None:
        return False
    flat = [n for row in lens for n in row] if isinstance(lens[0], tuple) else list(lens)  # type: ignore[union-attr]
    return 0 in flat


def _heads_identical(attention: torch.Tensor) -> bool:
    """(b, h, q, k): does every head of each example carry the same weights?"""
    first = attention[:, :1]  # (b, 1, q, k)
    return bool(torch.allclose(attention.float(), first.float().expand_as(attention), atol=1e-6))
