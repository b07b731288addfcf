"""Move whole models between torch layers and PH layers.

`to_dense(model)`   every PH layer becomes the plain torch layer holding its composed weight: same
                    outputs, no phnn needed at inference, exportable (TorchScript, torch.export, ONNX).
`convert(model, n)` every Conv/ConvTranspose/Linear whose channels allow it becomes a PH layer with
                    the same hyper-parameters; the report says what was converted and what was not.
"""

from __future__ import annotations

import copy as copy_module
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from phnn.nn.algebra import LEARNED
from phnn.nn.composition import decompose
from phnn.nn.layers import (
    PHConv1d,
    PHConv2d,
    PHConv3d,
    PHConvTranspose1d,
    PHConvTranspose2d,
    PHConvTranspose3d,
    PHLayer,
    PHMLinear,
)

logger = logging.getLogger(__name__)

# exact torch type -> PH type. Subclasses (e.g. attention's out_proj) are skipped on purpose: their
# owners may rely on more than the weight.
PH_EQUIVALENT: dict[type[nn.Module], type[PHLayer]] = {
    nn.Linear: PHMLinear,
    nn.Conv1d: PHConv1d,
    nn.Conv2d: PHConv2d,
    nn.Conv3d: PHConv3d,
    nn.ConvTranspose1d: PHConvTranspose1d,
    nn.ConvTranspose2d: PHConvTranspose2d,
    nn.ConvTranspose3d: PHConvTranspose3d,
}
_CONV_ARGS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
              "padding_mode")
INITS = ("random", "nearest")


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> nn.Module:
    """Put `module` at dotted `name` under `root`; returns the root (the module itself when name is '')."""
    if not name:
        return module
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name), child, module)
    return root


def to_dense(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in which every PHLayer is replaced by `layer.to_dense()`."""
    result = copy_module.deepcopy(model)
    for name, module in list(result.named_modules()):
        if isinstance(module, PHLayer):
            result = _set_submodule(result, name, module.to_dense())
    return result


@dataclass
class ConversionReport:
    """What `convert` did: the model, the converted module names, the skipped ones with the reason."""

    model: nn.Module
    n: int
    algebra: str
    converted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    #: per converted layer (init="nearest"): ||W_nearest||² / ||W||², the share of the weight's energy kept
    energy: dict[str, float] = field(default_factory=dict)
    parameters_before: int = 0
    parameters_after: int = 0

    def __str__(self) -> str:
        ratio = self.parameters_before / max(self.parameters_after, 1)
        lines = [
            f"convert(n={self.n}, algebra={self.algebra}): {len(self.converted)} layers converted, "
            f"{len(self.skipped)} skipped; parameters {self.parameters_before:,} -> "
            f"{self.parameters_after:,} ({ratio:.2f}x fewer)"
        ]
        for name in self.converted:
            error = f" (relative weight error {self.errors[name]:.3g}" if name in self.errors else ""
            error += f", energy kept {self.energy[name]:.1%})" if name in self.energy else (")" if error else "")
            lines.append(f"  converted {name or '(root)'}{error}")
        lines += [f"  skipped   {name or '(root)'}: {reason}" for name, reason in self.skipped.items()]
        return "\n".join(lines)


def _ph_kwargs(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments of the PH equivalent of a torch Linear/Conv/ConvTranspose."""
    weight = module.weight
    common = {"bias": module.bias is not None, "device": weight.device, "dtype": weight.dtype}
    if isinstance(module, nn.Linear):
        return {"in_features": module.in_features, "out_features": module.out_features, **common}
    kwargs = {name: getattr(module, name) for name in _CONV_ARGS}
    if module.transposed:
        kwargs["output_padding"] = module.output_padding
    return {**kwargs, **common}


def _skip_reason(module: nn.Module, n: int) -> str | None:
    """Why `module` cannot become a PH layer with this n, or None when it can."""
    groups = getattr(module, "groups", 1)
    sizes = (("in_features", "out_features") if isinstance(module, nn.Linear)
             else ("in_channels", "out_channels"))
    for name in sizes:
        size = getattr(module, name)
        if size % (groups * n):
            return f"{name}={size} is not divisible by groups·n={groups}·{n}={groups * n}"
    if isinstance(module.weight, nn.parameter.UninitializedParameter):
        return "lazy module with uninitialised weight"
    return None


def _load_nearest(layer: PHLayer, source: nn.Module) -> tuple[float, float]:
    """Fit A and F to the source weight (or only F for a fixed algebra); returns the relative error
    ||W_nearest - W|| / ||W|| and the share of the energy kept ||W_nearest||² / ||W||²."""
    fixed = None if isinstance(layer.algebra, nn.Parameter) else layer.algebra
    algebra, factors = decompose(source.weight, layer.n, layer.groups, fixed)
    with torch.no_grad():
        if fixed is None:
            layer.algebra.copy_(algebra)
        layer.factors.copy_(factors)
        if source.bias is not None:
            layer.bias.copy_(source.bias)
        composed = layer.composed_weight()
    target: Tensor = source.weight.detach()
    norm = target.norm().clamp_min(1e-12)
    return float((composed - target).norm() / norm), float((composed.norm() / norm) ** 2)


def convert(
    model: nn.Module,
    n: int = 4,
    *,
    algebra: str | Tensor = LEARNED,
    init: str = "random",
    copy: bool = True,
) -> ConversionReport:
    """Replace the Conv/ConvTranspose/Linear layers of `model` by PH layers where the channels allow.

    init="random" gives fresh PH layers (train from scratch); init="nearest" starts from a trained model:
    each PH layer gets the (A, F) whose weight Σ_i A_i ⊗ F_i is nearest to the torch weight W in
    Frobenius norm, min ||W - Σ_i A_i ⊗ F_i||_F over n×n matrices A_i and (out/n)×(in/n)×k… blocks F_i.
    By the Van Loan–Pitsianis rearrangement (the n² blocks of W, one per (a, b), flattened into the
    rows of a matrix R), Σ_i A_i ⊗ F_i becomes the rank-n matrix Σ_i vec(A_i) vec(F_i)ᵀ, and the
    distance is ||R - Σ_i vec(A_i) vec(F_i)ᵀ||_F; the truncated SVD of R (its n largest singular triples)
    is the optimum (Eckart–Young), so no other PH layer of that n is closer. With a fixed algebra
    (quaternion, complex, or a tensor) only F is free: the optimum is the least-squares projection of R
    onto the span of the given A_i, which is never closer than the learned-algebra optimum (it is the
    same only when the A_i span R's n leading left singular vectors). With groups > 1 the algebra is shared:
    R holds every group's blocks side by side and the same argument applies.
    The report lists per layer the relative error ||W_nearest - W|| / ||W|| and the share of W's energy
    kept ||W_nearest||² / ||W||² (both projections are orthogonal, so error² + kept = 1); biases are copied.
    With copy=False the model is changed in place.
    """
    if init not in INITS:
        raise ValueError(f"convert: init must be one of {INITS}; got {init!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"convert: n must be a positive integer; got {n!r}")
    result = copy_module.deepcopy(model) if copy else model
    before = sum(p.numel() for p in result.parameters())
    algebra_name = algebra if isinstance(algebra, str) else "fixed"
    report = ConversionReport(model=result, n=n, algebra=algebra_name, parameters_before=before)
    for name, module in list(result.named_modules()):
        ph_type = PH_EQUIVALENT.get(type(module))
        if ph_type is None:
            if isinstance(module, tuple(PH_EQUIVALENT)):
                report.skipped[name] = f"{type(module).__name__} is a subclass of a torch layer; left as is"
            continue
        reason = _skip_reason(module, n)
        if reason is None:
            try:
                layer = ph_type(**_ph_kwargs(module), n=n, algebra=algebra)
            except ValueError as error:
                reason = str(error)
        if reason is not None:
            report.skipped[name] = reason
            continue
        if init == "nearest":
            report.errors[name], report.energy[name] = _load_nearest(layer, module)
        layer.train(module.training)
        result = _set_submodule(result, name, layer)
        report.converted.append(name)
    report.model = result
    report.parameters_after = sum(p.numel() for p in result.parameters())
    logger.info("%s", report)
    return report
