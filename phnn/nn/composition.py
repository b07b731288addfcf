"""W = Σ_i A_i ⊗ F_i as one contraction over the n axis.

The factors are stored as (n, G, P, Q, *kernel): n components, G groups, P rows and Q columns per
component block. The result has the torch weight layout (G·n·P, n·Q, *kernel): inside each group,
row block a and column block b hold Σ_i A_i[a, b] F_i ("component-major blocks"). One matrix
product over i, then one permuted copy: no n× intermediate as in broadcast-and-sum.
"""

from __future__ import annotations

from torch import Tensor


def compose(algebra: Tensor, factors: Tensor) -> Tensor:
    n, groups, rows, cols = factors.shape[:4]
    kernel = factors.shape[4:]
    mixed = algebra.reshape(n, n * n).t().to(factors.dtype) @ factors.reshape(n, -1)
    blocks = mixed.reshape(n, n, groups, rows, cols, -1).permute(2, 0, 3, 1, 4, 5)
    return blocks.reshape(groups * n * rows, n * cols, *kernel)


def compose_reference(algebra: Tensor, factors: Tensor) -> Tensor:
    """Σ_i kron(A_i, F_i) per group, written the slow obvious way; for tests and benchmarks."""
    import torch

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
