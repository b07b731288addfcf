"""The algebra of a PH layer: the n matrices A_i (n × n) that mix the n weight components.

A learned algebra is a parameter; a fixed one (quaternion, complex, or a user tensor) is a buffer,
so it is saved with the model, moves with it, and is never trained.
"""

from __future__ import annotations

import torch
from torch import Tensor

LEARNED = "learned"


def hamilton() -> Tensor:
    """A_0..A_3 such that Σ_i A_i ⊗ w_i is the left-multiplication matrix of w = r + xi + yj + zk."""
    return torch.tensor(
        [
            [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
            [[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 0, -1], [0, 0, 1, 0]],
            [[0, 0, -1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, -1, 0, 0]],
            [[0, 0, 0, -1], [0, 0, -1, 0], [0, 1, 0, 0], [1, 0, 0, 0]],
        ],
        dtype=torch.float32,
    )


def complex_rule() -> Tensor:
    """A_0, A_1 such that Σ_i A_i ⊗ w_i is the multiplication matrix of w = a + bi."""
    return torch.tensor([[[1, 0], [0, 1]], [[0, -1], [1, 0]]], dtype=torch.float32)


FIXED_ALGEBRAS = {"quaternion": (4, hamilton), "complex": (2, complex_rule)}


def resolve_algebra(algebra: str | Tensor, n: int, layer: str) -> tuple[str, Tensor | None]:
    """Return (name, fixed tensor or None for a learned algebra), or raise a ValueError naming `layer`."""
    if isinstance(algebra, Tensor):
        if algebra.shape != (n, n, n):
            raise ValueError(
                f"{layer}: an algebra tensor must have shape (n, n, n) = ({n}, {n}, {n}); "
                f"got {tuple(algebra.shape)}"
            )
        if not torch.any(algebra != 0):
            raise ValueError(f"{layer}: the algebra tensor is all zeros; the layer would output zeros")
        return "fixed", algebra.detach().clone().float()
    if algebra == LEARNED:
        return LEARNED, None
    if algebra in FIXED_ALGEBRAS:
        required_n, build = FIXED_ALGEBRAS[algebra]
        if n != required_n:
            raise ValueError(f"{layer}: algebra={algebra!r} needs n={required_n}; got n={n}")
        return algebra, build()
    choices = ", ".join(repr(name) for name in [LEARNED, *FIXED_ALGEBRAS])
    raise ValueError(f"{layer}: unknown algebra {algebra!r}; expected one of {choices} or an (n, n, n) tensor")


def align(algebra: Tensor, reference: Tensor) -> tuple[Tensor, float]:
    """Map a learned algebra onto a reference one (e.g. `hamilton()`) to compare them.

    A learned algebra is only defined up to an invertible mixing M of its n matrices: A·M and M⁻¹·F
    compose the same weight. This finds the least-squares M with Σ_i M_ij A_i ≈ reference_j and
    returns (the aligned matrices, relative residual); a small residual means the layer learned the
    reference algebra.
    """
    n = algebra.shape[0]
    learned = algebra.detach().double().reshape(n, n * n).t()
    target = reference.detach().double().reshape(n, n * n).t()
    mixing = torch.linalg.lstsq(learned, target).solution
    aligned = learned @ mixing
    residual = float((aligned - target).norm() / target.norm())
    return aligned.t().reshape(n, n, n).to(algebra.dtype), residual
