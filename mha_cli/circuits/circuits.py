"""Each head's circuits, factored: singular values of `A B` without ever forming `A B`.

A head's `W_QK = W_q_iᵀ W_k_j` is (query_size x key_size) and `W_OV = W_o_i W_v_j` is
(num_hiddens x value_size), but each is the product of a tall factor `L` (D x d) and a wide one
`Rt` (d x D'), so its rank is at most the head dim d. TransformerLens' `FactoredMatrix` takes a
QR of each factor (`L = Q_l R_l`, `Rtᵀ = Q_r R_r`) and the SVD of the d x d core `R_l R_rᵀ`.

Here each R comes from the factor's d x d Gram matrix instead: `LᵀL = U Λ Uᵀ` gives
`R = Λ^½ Uᵀ`, with `RᵀR = LᵀL`, so `L = Q R` for a Q with orthonormal columns on L's range,
exactly what a QR gives up to a rotation, and `sigma(L Rt) = svdvals(R_l R_rᵀ)`. The Gram of
every head at once is one batched matmul (about twice as fast as a batched float64 QR of the
factors, bench/circuits_bench.py), and it also gives the slice norms
(`||L||_F² = trace LᵀL`). Everything is in float64: squaring the factor costs half the digits,
so a singular value is exact to about 1e-8 of the largest, and the leading ones to 1e-15.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Small batched LAPACK calls (eigh, svd of d x d matrices) on one thread: with more, the
    threads wait on each other (a batch of 32 eighs of 128 x 128 took 1-24 s on 2 busy cores,
    0.07 s on one). The caller's setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gram_rows(x: torch.Tensor) -> torch.Tensor:
    """`X Xᵀ` for each slice of a batch (n, r, D) -> (n, r, r), in float64."""
    x = x.to(torch.float64)
    return x @ x.transpose(1, 2)


def gram_columns(x: torch.Tensor) -> torch.Tensor:
    """`Xᵀ X` for each slice of a batch (n, D, c) -> (n, c, c), in float64."""
    x = x.to(torch.float64)
    return x.transpose(1, 2) @ x


def gram_root(gram: torch.Tensor) -> torch.Tensor:
    """R with `RᵀR = gram`, from the eigendecomposition (n, d, d) -> (n, d, d).

    Unlike a Cholesky factor it exists for a singular Gram (a head with a zero or
    rank-deficient slice); the tiny negative eigenvalues rounding leaves are clamped to 0.
    """
    with one_thread():
        eigenvalues, vectors = torch.linalg.eigh(gram)  # (n, d), (n, d, d)
    return eigenvalues.clamp_min(0).sqrt().unsqueeze(-1) * vectors.transpose(1, 2)


# Singular values below this fraction of the largest are rounding noise of the Gram route
# (its floor is about 1e-8 of the largest) and are shown as 0: a rank-1 circuit reads 2.7 0 0.
NOISE_FLOOR = 1e-10


def factored_singular_values(left_root: torch.Tensor, right_root: torch.Tensor) -> torch.Tensor:
    """Singular values of `L Rt` from `R_l` (LᵀL = R_lᵀR_l) and `R_r` (Rt Rtᵀ = R_rᵀR_r):
    those of the d x d core `R_l R_rᵀ`. (n, d, d) each -> (n, d), largest first."""
    core = left_root @ right_root.transpose(1, 2)  # (n, d, d)
    with one_thread():
        sigma = torch.linalg.svdvals(core)  # (n, d)
    return torch.where(sigma > NOISE_FLOOR * sigma[:, :1], sigma, 0.0)


def figures(sigma: torch.Tensor) -> dict[str, torch.Tensor]:
    """Frobenius norm, stable rank and effective rank of each row's matrix (n, d) -> (n,)."""
    squares = (sigma**2).sum(-1)  # (n,)
    top = sigma[:, 0]
    stable = torch.where(top > 0, squares / top.clamp_min(1e-300) ** 2, 0.0)
    total = sigma.sum(-1, keepdim=True)  # (n, 1)
    p = sigma / total.clamp_min(1e-300)  # (n, d): sigma_i / sum sigma
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)  # 0 log 0 = 0
    effective = torch.where(total.squeeze(-1) > 0, torch.exp(entropy), 0.0)
    return {"frobenius": squares.sqrt(), "stable_rank": stable, "effective_rank": effective}


def similarity_cost(rows: int, columns: int) -> int:
    """FLOPs of one full Gram `X Xᵀ` of an (rows x columns) matrix."""
    return 2 * rows * rows * columns


def circuit_inner_products(
    left: torch.Tensor,  # (h, D, d): the tall factor of each query head's circuit
    right: torch.Tensor,  # (m, d, D'): the wide factors (one per key-value head)
    right_of_head: torch.Tensor,  # (h,) which wide factor each head's circuit uses
) -> torch.Tensor:
    """`<M_i, M_j>_F` for every pair of heads, `M_i = left_i @ right_{r(i)}` (h, h).

    `tr(M_iᵀ M_j) = sum((L_iᵀ L_j) ⊙ (R_a R_bᵀ))` with a = r(i), b = r(j): blocks of the two
    full Gram matrices, so nothing D x D' is formed. Cost: the Grams, `2 (h d)² D` and
    `2 (m d)² D'` FLOPs.
    """
    h, _, d = left.shape
    m = right.shape[0]
    tall = left.to(torch.float64).permute(1, 0, 2).reshape(left.shape[1], h * d)  # (D, h d)
    left_gram = (tall.T @ tall).reshape(h, d, h, d)  # [i, r, j, s] = (L_iᵀ L_j)[r, s]
    wide = right.to(torch.float64).reshape(m * d, right.shape[2])  # (m d, D')
    right_gram = (wide @ wide.T).reshape(m, d, m, d)  # [a, r, b, s] = (R_a R_bᵀ)[r, s]
    right_gram = right_gram[right_of_head][:, :, right_of_head]  # (h, d, h, d)
    return torch.einsum("irjs,irjs->ij", left_gram, right_gram)


def cosine(inner: torch.Tensor) -> torch.Tensor:
    """Cosine similarity from inner products (h, h); NaN where a circuit is zero."""
    norms = inner.diagonal().clamp_min(0).sqrt()  # (h,)
    scale = norms[:, None] * norms[None, :]
    result = inner / scale
    return torch.where(scale > 0, result.clamp(-1.0, 1.0), math.nan)
