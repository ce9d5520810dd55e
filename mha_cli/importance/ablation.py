"""How much each head matters to the layer's output: ablation, greedy pruning, gradient.

The layer's output is `y = W_o concat + b_o`, and W_o is linear, so y is the bias plus one term
per head: `y = b_o + Σ_i y_i`, `y_i = concat_i W_o_iᵀ` (concat_i: head i's slice of the
concatenation before W_o). Removing head i (its slice set to zero, the bias kept) takes `y_i`
away; `--ablation mean` replaces its slice by the slice's mean over examples and queries, which
takes away `δ_i = y_i - W_o_i mean(concat_i)`. So ONE forward pass gives every variant: any set
S of removed heads changes the output by `Σ_{i∈S} δ_i`, and

    ||Σ_{i∈S} δ_i||² = 1_Sᵀ G 1_S,  G_ij = <δ_i, δ_j>  (heads x heads)

gives the single ablations (the diagonal) and every step of the greedy pruning curve without
running the layer again. The terms are computed in float64, in chunks of rows, so memory stays
bounded whatever the number of tokens.

Gradient importance (Michel, Levy & Neubig 2019): a gate ξ_i on each head's term,
`y(ξ) = b_o + Σ ξ_i y_i`; at ξ = 1, `∂L_x/∂ξ_i = <∂L_x/∂y, y_i>` exactly, with L_x the mean
squared error of example x; the importance is `E_x |∂L_x/∂ξ_i|`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CHUNK_BYTES = 64 * 2**20  # float64 per-head terms held at once (cache-sized: faster Gram)


@dataclass(frozen=True)
class HeadTerms:
    """What the per-head terms of one forward pass give (float64 scalars and small tensors)."""

    gram: torch.Tensor  # (h, h): <δ_i, δ_j>
    output_norm: float  # ||y||_F
    gradient: torch.Tensor | None  # (h,): E_x |∂L_x/∂ξ_i|, with targets
    rows: int = 0  # N: the (example, query) rows the sums run over
    # Sums over the rows n of a_n = ||δ_i,n||², s_n = ||y_n||², for the standard errors
    a_squares: torch.Tensor | None = None  # (h,): Σ_n a_n²
    a_s: torch.Tensor | None = None  # (h,): Σ_n a_n s_n
    s_squares: float = 0.0  # Σ_n s_n²


def head_terms(
    concat: torch.Tensor,  # (b, q, h*w): the concatenation before W_o
    w_o: torch.Tensor,  # (H, h*w)
    b_o: torch.Tensor | None,  # (H,)
    heads: int,
    ablation: str = "zero",
    targets: torch.Tensor | None = None,  # (b, q, H)
) -> HeadTerms:
    b, q, _ = concat.shape
    hiddens = w_o.shape[0]
    c = concat.to(torch.float64).reshape(b * q, heads, -1).transpose(0, 1)  # (h, n, w)
    # (h, w, H): each head's W_o slice, transposed and contiguous, so one batched product per
    # chunk gives every head's term (faster than einsum's own layout)
    wo = w_o.to(torch.float64).reshape(hiddens, heads, -1).permute(1, 2, 0).contiguous()
    bias = b_o.to(torch.float64) if b_o is not None else None
    mean_term = None
    removed = c  # (h, n, w): what removing each head takes away, before W_o
    if ablation == "mean":
        mean_c = c.mean(dim=1, keepdim=True)  # (h, 1, w): over examples and queries
        mean_term = torch.bmm(mean_c, wo)  # (h, 1, H)
        removed = c - mean_c
    # a_n = ||δ_i,n||² = r_in (W_o_iᵀ W_o_i) r_inᵀ, r_in head i's removed slice of row n:
    # a (w x w) quadratic form per head instead of a pass over the (h, n, H) terms
    quadratic = torch.bmm(wo, wo.transpose(1, 2))  # (h, w, w)
    a = (torch.bmm(removed, quadratic) * removed).sum(-1)  # (h, n)
    a_squares = (a * a).sum(-1)
    gram = torch.zeros(heads, heads, dtype=torch.float64, device=c.device)
    squares = torch.zeros((), dtype=torch.float64, device=c.device)
    s_squares = torch.zeros((), dtype=torch.float64, device=c.device)
    per_rows = []
    # (h, b): Σ over the example's queries of <y - t, y_i>
    dot_error = torch.zeros(heads, b, dtype=torch.float64, device=c.device)
    rows = max(1, CHUNK_BYTES // (8 * heads * hiddens))  # (h, rows, H) float64 at a time
    example_of = torch.arange(b * q, device=c.device) // q  # (n,): each row's example
    for start in range(0, b * q, rows):
        terms = torch.bmm(c[:, start : start + rows], wo)  # (h, n, H): y_i
        y = terms.sum(0) if bias is None else terms.sum(0) + bias  # (n, H)
        per_row = (y * y).sum(-1)  # (n,): s_n
        per_rows.append(per_row)
        squares += per_row.sum()
        s_squares += (per_row * per_row).sum()
        if targets is not None:
            t = targets.to(torch.float64).reshape(b * q, hiddens)[start : start + rows]
            dots = torch.einsum("hno,no->hn", terms, y - t)  # (h, n)
            dot_error.index_add_(1, example_of[start : start + rows], dots)
        delta = terms if mean_term is None else terms.sub_(mean_term)  # (h, n, H)
        flat = delta.reshape(heads, -1)
        gram += flat @ flat.T
    a_s = a @ torch.cat(per_rows)  # (h,): Σ_n a_n s_n
    gradient = None
    if targets is not None:
        # L_x = mean over (queries, hiddens) of (y - t)²: ∂L_x/∂ξ_i = 2/(q H) <y_x - t_x, y_i,x>
        gradient = (dot_error * (2.0 / (q * hiddens))).abs().mean(dim=1)  # (h,)
    return HeadTerms(gram, float(squares.sqrt()), gradient, b * q, a_squares, a_s, float(s_squares))


def single_changes(terms: HeadTerms) -> list[float]:
    """`||y - y_without_i||_F / ||y||_F` for each head i."""
    return [_relative(float(v), terms.output_norm) for v in terms.gram.diagonal()]


def single_change_errors(terms: HeadTerms) -> list[float]:
    """The standard error of each head's `single_changes` figure over the N (example, query)
    rows, taken as independent draws: f = sqrt(R), R = Σ a_n / Σ s_n (a ratio of means), so by
    the delta method var(R) = Σ_n z_n² / (N (N - 1)), z_n = (a_n - R s_n) / mean(s), and
    se(f) = se(R) / (2 f). 0 for a head whose figure is 0; NaN without rows."""
    n = terms.rows
    total_s = terms.output_norm**2
    if n < 2 or total_s == 0 or terms.a_squares is None or terms.a_s is None:
        return [math.nan] * terms.gram.shape[0]
    mean_s = total_s / n
    errors = []
    for a_sum, a2, a_s in zip(
        terms.gram.diagonal().tolist(), terms.a_squares.tolist(), terms.a_s.tolist(), strict=True
    ):
        ratio = a_sum / total_s
        if ratio <= 0:
            errors.append(0.0)
            continue
        residual = max(a2 - 2 * ratio * a_s + ratio * ratio * terms.s_squares, 0.0)
        se_ratio = math.sqrt(residual / (n * (n - 1))) / mean_s
        errors.append(se_ratio / (2 * math.sqrt(ratio)))
    return errors


def greedy_pruning(terms: HeadTerms) -> list[tuple[int, float]]:
    """Remove heads one at a time, each step the head whose removal (given those already
    removed) changes the output least; (head removed, relative change after the step)."""
    gram = terms.gram
    h = gram.shape[0]
    removed = torch.zeros(h, dtype=torch.float64, device=gram.device)  # indicator of S
    steps: list[tuple[int, float]] = []
    for _ in range(h):
        base = removed @ gram @ removed  # ||Σ_S δ||²
        cross = gram @ removed  # <δ_i, Σ_S δ>
        candidates = base + 2 * cross + gram.diagonal()  # (h,): ||Σ_{S+i} δ||²
        candidates[removed > 0] = math.inf
        choice = int(torch.argmin(candidates))  # ties: the lowest head number
        removed[choice] = 1.0
        steps.append((choice, _relative(float(candidates[choice]), terms.output_norm)))
    return steps


def _relative(square: float, norm: float) -> float:
    if norm == 0:
        return math.nan
    return math.sqrt(max(square, 0.0)) / norm


@dataclass(frozen=True)
class Focus:
    """Per head: means over the rows (examples and queries), and their standard errors."""

    entropy: list[float]
    confidence: list[float]
    entropy_se: list[float]
    confidence_se: list[float]


def attention_focus(
    weights: torch.Tensor,  # (b, h, q, k) attention weights
    mask: torch.Tensor | None,  # (b, h, q, k) True where masked
) -> Focus:
    """Per head: the mean over examples and queries of the attention entropy (nats, over the
    keys it may see) and of the largest weight in the row (Voita et al.'s confidence), with
    the standard error of each mean (the rows taken as independent draws).
    Rows in which every key is masked are left out."""
    p = weights.to(torch.float64)
    visible = torch.ones_like(p, dtype=torch.bool) if mask is None else ~mask
    p = torch.where(visible, p, 0.0)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)  # (b, h, q)
    confidence = p.amax(-1)  # (b, h, q)
    rows = visible.any(-1).to(torch.float64)  # (b, h, q): rows with a key to see
    count = rows.sum(dim=(0, 2)).clamp_min(1)  # (h,)
    mean_entropy = (entropy * rows).sum(dim=(0, 2)) / count
    mean_confidence = (confidence * rows).sum(dim=(0, 2)) / count
    return Focus(
        mean_entropy.tolist(),
        mean_confidence.tolist(),
        _standard_error(entropy, mean_entropy, rows, count),
        _standard_error(confidence, mean_confidence, rows, count),
    )


def _standard_error(
    values: torch.Tensor, mean: torch.Tensor, rows: torch.Tensor, count: torch.Tensor
) -> list[float]:
    """sqrt(sample variance / count) per head over the rows that count; NaN for one row."""
    spread = (((values - mean[None, :, None]) ** 2) * rows).sum(dim=(0, 2))  # (h,)
    variance = spread / (count - 1)
    se = (variance / count).sqrt()
    return torch.where(count > 1, se, torch.nan).tolist()
