"""W = Σ_i A_i ⊗ F_i as one contraction over the n axis.

The factors are stored as (n, G, P, Q, *kernel): n components, G groups, P rows and Q columns per
component block. The result has the torch weight layout (G·n·P, n·Q, *kernel): inside each group,
row block a and column block b hold Σ_i A_i[a, b] F_i ("component-major blocks"). One matrix
product over i, then one permuted copy: no n× intermediate as in broadcast-and-sum.
"""

from __future__ import annotations

import torch
from torch import Tensor


def compose(algebra: Tensor, factors: Tensor) -> Tensor:
    """W = Σ_i A_i ⊗ F_i in the torch weight layout, by one matmul over i and one permuted copy."""
    n, groups, rows, cols = factors.shape[:4]
    kernel = factors.shape[4:]
    mixed = algebra.reshape(n, n * n).t().to(factors.dtype) @ factors.reshape(n, -1)
    blocks = mixed.reshape(n, n, groups, rows, cols, -1).permute(2, 0, 3, 1, 4, 5)
    return blocks.reshape(groups * n * rows, n * cols, *kernel)


def compose_reference(algebra: Tensor, factors: Tensor) -> Tensor:
    """Σ_i kron(A_i, F_i) per group, written the slow obvious way; for tests and benchmarks."""
    n, groups = factors.shape[:2]
    kernel = factors.shape[4:]
    per_group = []
    for g in range(groups):
        total = 0
        for i in range(n):
            a_i = algebra[i].to(factors.dtype).reshape(n, n, *([1] * len(kernel)))
            total = total + torch.kron(a_i, factors[i, g])
        per_group.append(total)
    return torch.cat(per_group, dim=0)


def decompose(weight: Tensor, n: int, groups: int = 1, algebra: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The (A, F) whose composition is nearest to a dense `weight` in Frobenius norm.

    Rearranged as R[(a, b), (g, p, q, k)], the composition is R = A_mat @ F_flat with A_mat[(a, b), i]
    = A_i[a, b] (Van Loan & Pitsianis). A learned algebra takes the rank-n truncated SVD of R; a fixed
    one keeps `algebra` and solves the least-squares problem for F. Used to convert trained models.

    Each term's split between A_i and F_i is free (c·A_i ⊗ F_i/c); A_i gets the scale of a fresh layer's
    learned algebra (unit singular vector × √n: mean square 1/n) and F_i carries the singular value, so that
    an optimizer whose steps have a fixed size (Adam) moves the trained factors no faster, relative to their
    size, than it moves a freshly initialised layer's.
    """
    rows, cols = weight.shape[0] // (groups * n), weight.shape[1] // n
    kernel = weight.shape[2:]
    work = weight.detach().double()
    blocks = work.reshape(groups, n, rows, n, cols, -1).permute(1, 3, 0, 2, 4, 5).reshape(n * n, -1)
    if algebra is None:
        u, s, vh = torch.linalg.svd(blocks, full_matrices=False)
        rank = min(n, s.numel())
        a_mat = blocks.new_zeros(n * n, n)
        flat = blocks.new_zeros(n, blocks.shape[1])
        a_mat[:, :rank] = u[:, :rank] * n**0.5
        flat[:rank] = (s[:rank] / n**0.5)[:, None] * vh[:rank]
    else:
        a_mat = algebra.detach().double().reshape(n, n * n).t()
        flat = torch.linalg.lstsq(a_mat, blocks).solution
    new_algebra = a_mat.t().reshape(n, n, n)
    factors = flat.reshape(n, groups, rows, cols, *kernel)
    return new_algebra.to(weight.dtype), factors.to(weight.dtype)
