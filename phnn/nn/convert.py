"""Move whole models between torch layers and PH layers.

`to_dense(model)`   every PH layer becomes the plain torch layer holding its composed weight: same
                    outputs, no phnn needed at inference, exportable (TorchScript, torch.export, ONNX).
`convert(model, n)` every Conv/ConvTranspose/Linear, MultiheadAttention and RNN/GRU/LSTM whose sizes
                    allow it becomes its PH equivalent with the same hyper-parameters; the report
                    names every module that holds parameters: converted, skipped (with the numbers
                    that prevent it) or kept (not a weight matrix PH applies to), and totals the
                    parameters by module type before and after.
"""

from __future__ import annotations

import copy as copy_module
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from phnn.nn.algebra import LEARNED
from phnn.nn.attention import PHMultiheadAttention
from phnn.nn.composition import decompose
from phnn.nn.layers import (
    PHComposite,
    PHConv1d,
    PHConv2d,
    PHConv3d,
    PHConvTranspose1d,
    PHConvTranspose2d,
    PHConvTranspose3d,
    PHLayer,
    PHMLinear,
)
from phnn.nn.recurrent import PHGRU, PHLSTM, PHRNN

logger = logging.getLogger(__name__)

# exact torch type -> PH type. Subclasses are skipped on purpose: their owners may rely on more than
# the weight (attention's out_proj is converted through its nn.MultiheadAttention).
PH_EQUIVALENT: dict[type[nn.Module], type[PHLayer | PHComposite]] = {
    nn.Linear: PHMLinear,
    nn.Conv1d: PHConv1d,
    nn.Conv2d: PHConv2d,
    nn.Conv3d: PHConv3d,
    nn.ConvTranspose1d: PHConvTranspose1d,
    nn.ConvTranspose2d: PHConvTranspose2d,
    nn.ConvTranspose3d: PHConvTranspose3d,
    nn.MultiheadAttention: PHMultiheadAttention,
    nn.RNN: PHRNN,
    nn.GRU: PHGRU,
    nn.LSTM: PHLSTM,
}
_RNN_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")
_MHA_ARGS = ("embed_dim", "num_heads", "dropout", "add_zero_attn", "kdim", "vdim", "batch_first")
NOT_A_WEIGHT_MATRIX = "not a weight matrix PH applies to"
# torch types that hold parameters PH does not apply to -> why (the first isinstance match wins)
KEPT_REASONS: dict[type[nn.Module] | tuple[type[nn.Module], ...], str] = {
    (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm):
        f"normalisation scale/shift (vectors): {NOT_A_WEIGHT_MATRIX}",
    (nn.Embedding, nn.EmbeddingBag): f"a lookup table (rows are indexed, not multiplied): {NOT_A_WEIGHT_MATRIX}",
    nn.PReLU: f"activation slopes (vectors): {NOT_A_WEIGHT_MATRIX}",
    (PHLayer, PHComposite): "already a PH layer",
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


def _is_whole(module: nn.Module) -> bool:
    """A PH module, or a torch module `convert` turns into one PH module: it stands for its subtree."""
    return type(module) in PH_EQUIVALENT or isinstance(module, (PHLayer, PHComposite))


def _units(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Modules top-down, not entering whole ones (`_is_whole`): each yielded module is a unit whose
    parameters belong to it (its own, or for a whole one its subtree's)."""
    yield prefix, module
    if _is_whole(module):
        return
    for child, submodule in module.named_children():
        yield from _units(submodule, f"{prefix}.{child}" if prefix else child)


def _unit_parameters(module: nn.Module) -> int:
    """The parameters a unit of `_units` accounts for."""
    return sum(p.numel() for p in module.parameters(recurse=_is_whole(module)))


def to_dense(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in which every PH layer (and PH recurrent/attention module) is replaced by
    its `to_dense()`: the torch module with the composed weights."""
    result = copy_module.deepcopy(model)
    for name, module in list(_units(result)):
        if isinstance(module, (PHLayer, PHComposite)):
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
    #: modules that hold parameters but no weight matrix PH applies to (norms, embeddings, ...) -> why
    kept: dict[str, str] = field(default_factory=dict)
    #: torch type name of each parameter-holding module -> (parameters before, after)
    parameters_by_type: dict[str, tuple[int, int]] = field(default_factory=dict)

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
        kept: dict[str, list[str]] = {}
        for name, reason in self.kept.items():
            kept.setdefault(reason, []).append(name or "(root)")
        lines += [f"  kept      {', '.join(names)}: {reason}" for reason, names in kept.items()]
        if self.parameters_by_type:
            lines.append("  parameters by module type (before -> after):")
            width = max(len(name) for name in self.parameters_by_type)
            lines += [f"    {name:<{width}}  {before:>12,} -> {after:>12,}"
                      for name, (before, after) in self.parameters_by_type.items()]
        return "\n".join(lines)


def _ph_kwargs(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments of the PH equivalent of a torch Linear/Conv/ConvTranspose/MHA/RNN."""
    if isinstance(module, nn.RNNBase):
        kwargs = {name: getattr(module, name) for name in _RNN_ARGS}
        kwargs |= {"proj_size": module.proj_size} if isinstance(module, nn.LSTM) else {}
        kwargs |= {"nonlinearity": module.nonlinearity} if isinstance(module, nn.RNN) else {}
        first = module.weight_ih_l0
        return {**kwargs, "device": first.device, "dtype": first.dtype}
    if isinstance(module, nn.MultiheadAttention):
        kwargs = {name: getattr(module, name) for name in _MHA_ARGS}
        weight = module.out_proj.weight
        return {**kwargs, "bias": module.in_proj_bias is not None, "add_bias_kv": module.bias_k is not None,
                "device": weight.device, "dtype": weight.dtype}
    weight = module.weight
    common = {"bias": module.bias is not None, "device": weight.device, "dtype": weight.dtype}
    if isinstance(module, nn.Linear):
        return {"in_features": module.in_features, "out_features": module.out_features, **common}
    kwargs = {name: getattr(module, name) for name in _CONV_ARGS}
    if module.transposed:
        kwargs["output_padding"] = module.output_padding
    return {**kwargs, **common}


def _skip_reason(module: nn.Module, n: int) -> str | None:
    """Why `module` cannot become a PH layer with this n, or None when it can (recurrent and attention
    modules: their PH constructor says why)."""
    if isinstance(module, (nn.RNNBase, nn.MultiheadAttention)):
        return None
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


def _fit_nearest(layer: PHLayer, weight: Tensor, bias: Tensor | None) -> tuple[float, float, float]:
    """Fit A and F to `weight` (or only F for a fixed algebra), copy the bias; returns the squared
    error, the squared norm of the weight and the squared norm of the fit. A layer with row blocks
    (gates, q/k/v) shares one A among its blocks, so the fit is the rank-n SVD of the weight with the
    blocks side by side."""
    fixed = None if isinstance(layer.algebra, nn.Parameter) else layer.algebra
    algebra, factors = decompose(weight, layer.n, layer.factors.shape[1], fixed)
    with torch.no_grad():
        if fixed is None:
            layer.algebra.copy_(algebra)
        layer.factors.copy_(factors)
        if bias is not None:
            layer.bias.copy_(bias)
        composed = layer.composed_weight()
    target: Tensor = weight.detach()
    return float((composed - target).pow(2).sum()), float(target.pow(2).sum()), float(composed.pow(2).sum())


def _load_nearest(layer: PHLayer | PHComposite, source: nn.Module) -> tuple[float, float]:
    """Fit every PH weight of `layer` to its torch counterpart in `source` (per matrix: one algebra);
    copies biases and dense parameters; returns the relative Frobenius error over all its matrices and
    the share of their energy kept."""
    if isinstance(layer, PHLayer):
        pairs: list[tuple[PHLayer, str, str | None]] = [(layer, "weight", "bias" if source.bias is not None else None)]
    else:
        pairs = layer.dense_pairs()
        with torch.no_grad():
            for name, parameter in layer.named_parameters(recurse=False):
                parameter.copy_(source.get_parameter(name))
    error = total = kept = 0.0
    for part, weight, bias in pairs:
        part_error, part_total, part_kept = _fit_nearest(part, source.get_parameter(weight),
                                                         None if bias is None else source.get_parameter(bias))
        error, total, kept = error + part_error, total + part_total, kept + part_kept
    return (error / max(total, 1e-24)) ** 0.5, kept / max(total, 1e-24)


def _kept_reason(module: nn.Module) -> str:
    """Why a module that holds parameters and has no PH equivalent is left as it is."""
    for types, reason in KEPT_REASONS.items():
        if isinstance(module, types):
            return reason
    if isinstance(module, tuple(PH_EQUIVALENT)):
        return f"{type(module).__name__} is a subclass of a torch layer; left as is"
    names = ", ".join(name for name, _ in module.named_parameters(recurse=False))
    return f"{type(module).__name__} is not a layer convert() knows (its parameters: {names})"




def convert(
    model: nn.Module,
    n: int = 4,
    *,
    algebra: str | Tensor = LEARNED,
    init: str = "random",
    copy: bool = True,
) -> ConversionReport:
    """Replace the torch layers of `model` that hold weight matrices by PH layers where the sizes allow.

    Converted: Linear, Conv/ConvTranspose 1d-3d, MultiheadAttention (in- and out-projections; so the
    attention of TransformerEncoderLayer/DecoderLayer too), RNN, GRU, LSTM (every weight matrix).
    init="random" gives fresh PH layers (train from scratch); init="nearest" starts from a trained model:
    each PH weight gets the (A, F) whose Σ_i A_i ⊗ F_i is nearest to the torch weight W in Frobenius norm,
    min ||W - Σ_i A_i ⊗ F_i||_F over n×n matrices A_i and (out/n)×(in/n)×k… blocks F_i. By the Van
    Loan–Pitsianis rearrangement (the n² blocks of W, one per (a, b), flattened into the rows of a matrix
    R), Σ_i A_i ⊗ F_i becomes the rank-n matrix Σ_i vec(A_i) vec(F_i)ᵀ and the distance is
    ||R - Σ_i vec(A_i) vec(F_i)ᵀ||_F; the truncated SVD of R (its n largest singular triples) is the
    optimum (Eckart–Young), so no other PH weight of that n is closer. With a fixed algebra (quaternion,
    complex, or a tensor) only F is free: the optimum is the least-squares projection of R onto the span
    of the given A_i, never closer than the learned-algebra optimum (as close only when the A_i span R's
    n leading left singular vectors). Groups, and the row blocks of recurrent and attention weights,
    share one algebra: R holds their blocks side by side and the same argument applies. The report lists
    per converted module the relative error ||W_nearest - W|| / ||W|| and the share of the energy kept
    ||W_nearest||² / ||W||² (over all its matrices; both fits are orthogonal projections, so error² +
    kept = 1); biases are copied. Every other module that holds parameters is listed in the report with
    the reason it was left as is. With copy=False the model is changed in place.
    """
    if init not in INITS:
        raise ValueError(f"convert: init must be one of {INITS}; got {init!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"convert: n must be a positive integer; got {n!r}")
    result = copy_module.deepcopy(model) if copy else model
    before = sum(p.numel() for p in result.parameters())
    algebra_name = algebra if isinstance(algebra, str) else "fixed"
    report = ConversionReport(model=result, n=n, algebra=algebra_name, parameters_before=before)
    counts: list[tuple[str, int, int]] = []  # (type name, before, after) per unit
    for name, module in list(_units(result)):
        if next(iter(module.parameters(recurse=_is_whole(module))), None) is None:
            continue
        ph_type = PH_EQUIVALENT.get(type(module))
        layer = None
        if ph_type is None:
            listing = report.skipped if isinstance(module, tuple(PH_EQUIVALENT)) else report.kept
            listing[name] = _kept_reason(module)
        else:
            layer = _convert_one(report, name, module, ph_type, algebra, init)
        if layer is not None:
            result = _set_submodule(result, name, layer)
        if isinstance(module, nn.modules.lazy.LazyModuleMixin):
            continue  # its parameters have no size yet
        after = _unit_parameters(layer) if layer is not None else _unit_parameters(module)
        counts.append((type(module).__name__, _unit_parameters(module), after))
    report.model = result
    report.parameters_after = sum(p.numel() for p in result.parameters())
    for type_name, count_before, count_after in counts:
        old_before, old_after = report.parameters_by_type.get(type_name, (0, 0))
        report.parameters_by_type[type_name] = (old_before + count_before, old_after + count_after)
    logger.info("%s", report)
    return report


def _convert_one(report: ConversionReport, name: str, module: nn.Module, ph_type: type[nn.Module],
                 algebra: str | Tensor, init: str) -> nn.Module | None:
    """The PH module standing for `module` (recorded as converted), or None (recorded as skipped)."""
    reason = _skip_reason(module, report.n)
    if reason is None:
        try:
            layer = ph_type(**_ph_kwargs(module), n=report.n, algebra=algebra)
        except ValueError as error:
            reason = str(error)
    if reason is not None:
        report.skipped[name] = reason
        return None
    if init == "nearest":
        report.errors[name], report.energy[name] = _load_nearest(layer, module)
    layer.train(module.training)
    report.converted.append(name)
    return layer
