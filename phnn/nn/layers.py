"""Parameterized hypercomplex layers: PHMLinear, PHConv1d/2d/3d, PHConvTranspose1d/2d/3d.

Each layer holds an algebra A (n, n, n) and factors F, and behaves exactly like the torch layer
whose weight is W = Σ_i A_i ⊗ F_i (see composition.py), with about 1/n of its parameters.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvTransposeNd
from torch.optim.optimizer import register_optimizer_step_post_hook

from phnn.nn.algebra import LEARNED, resolve_algebra
from phnn.nn.composition import compose

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# Fused optimizers (e.g. AdamW(fused=True)) update parameters without bumping their version counter,
# so the weight cache also keys on a count of optimizer steps, kept by one global post-step hook.
_optimizer_steps = [0]


def _count_optimizer_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    _optimizer_steps[0] += 1


register_optimizer_step_post_hook(_count_optimizer_step)


def _multiples(size: int, step: int) -> str:
    """The multiples of `step` around `size`, as advice ("60 or 64")."""
    below, above = (size // step) * step, -(-size // step) * step
    return f"{below} or {above}" if below > 0 else f"{above}"


def _hint(in_name: str, in_size: int, out_size: int, groups: int, n: int, failing: str) -> str:
    """What the user can do instead: the n that fit both sizes, other channel counts, a wider input."""
    step = groups * n
    fits = [d for d in range(2, 17) if in_size % (groups * d) == 0 and out_size % (groups * d) == 0]
    choices = ", ".join(str(d) for d in fits)
    advice = [f"{'n=' if len(fits) == 1 else 'one of n='}{choices} fits both sizes"] if fits else []
    if failing == in_name:
        per_group = in_size // groups
        out_name = in_name.replace("in_", "out_")
        if not fits and per_group > 1:
            advice.append(f"use n={per_group} with {out_name} a multiple of {groups * per_group} "
                          f"(e.g. {_multiples(out_size, groups * per_group)})")
        wider = -(-in_size // step) * step
        example = " (for RGB images: data.extra_channel: zeros|grayscale)" if in_size == 3 else ""
        advice.append(f"give the input {wider} {in_name.removeprefix('in_')}{example}")
    else:
        advice.append(f"use {failing}={_multiples(out_size, step)}")
    return "; or ".join(advice)


def _without_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast switched off on `device` where it is on: a cached weight keeps the parameters' dtype (as a
    dense layer's weight does), and a call outside autocast can reuse it."""
    if torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


class PHLayer(nn.Module):
    """Shared machinery: parameters, init, composition and the no-grad weight cache."""

    dense_cls: type[nn.Module]

    def _setup(
        self,
        *,
        n: int,
        algebra: str | Tensor,
        in_size: int,
        out_size: int,
        grouped_size: int,
        per_group_size: int,
        kernel_size: tuple[int, ...],
        groups: int,
        bias: bool,
        bias_size: int,
        in_name: str,
        device: Any,
        dtype: Any,
        blocks: int = 1,
    ) -> None:
        """Check sizes and create A, F and bias; `grouped_size` is the weight's first dim.

        `blocks` > 1 stacks that many row blocks (e.g. the gates of a recurrent layer), each its own
        Kronecker sum over the whole input, sharing the algebra; the factors then hold groups·blocks
        matrices along their second axis, which `compose` lays out one below the other.
        """
        layer = self._describe(in_size, out_size, n, in_name)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{layer}: n must be a positive integer; got {n!r}")
        if groups < 1:
            raise ValueError(f"{layer}: groups must be a positive integer; got {groups}")
        out_name = in_name.replace("in_", "out_")
        for name, size, parts in ((in_name, in_size, groups), (out_name, out_size, groups * blocks)):
            if size % (parts * n):
                rule = (f"n={n}" if parts == 1 else f"groups·n={groups}·{n}={groups * n}" if blocks == 1
                        else f"blocks·n={blocks}·{n}={blocks * n}")
                raise ValueError(f"{layer}: {name}={size} must be divisible by {rule}. To fix it: "
                                 + _hint(in_name, in_size, out_size, groups, n, name))
        self.n = n
        self.groups = groups
        self.blocks = blocks
        self.algebra_name, fixed = resolve_algebra(algebra, n, layer)
        factory = {"device": device, "dtype": dtype}
        if fixed is None:
            self.algebra = nn.Parameter(torch.empty(n, n, n, **factory))
        else:
            self.register_buffer("algebra", fixed.to(**{k: v for k, v in factory.items() if v is not None}))
        rows = grouped_size // (groups * blocks * n)
        cols = per_group_size // n
        self.factors = nn.Parameter(torch.empty(n, groups * blocks, rows, cols, *kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(bias_size, **factory)) if bias else None
        self._fan_in = per_group_size * math.prod(kernel_size)
        self._cache_key: tuple | None = None
        self._cache: Tensor | None = None
        self.reset_parameters()

    def _describe(self, in_size: int, out_size: int, n: int, in_name: str) -> str:
        out_name = in_name.replace("in_", "out_")
        return f"{type(self).__name__}({in_name}={in_size}, {out_name}={out_size}, n={n})"

    def reset_parameters(self) -> None:
        """Match the variance of torch's default init of the dense weight (kaiming_uniform, a=√5)."""
        bound = 1.0 / math.sqrt(self._fan_in) if self._fan_in > 0 else 0.0
        self.init_uniform(bound, bound)

    def init_uniform(self, weight_bound: float, bias_bound: float) -> None:
        """Init so that the composed weight has the variance of U(-weight_bound, weight_bound) and the
        bias is U(-bias_bound, bias_bound): how a layer matches a torch init other than Linear/Conv's
        (recurrent layers: 1/√hidden_size; attention: Xavier). A fixed algebra is kept."""
        with torch.no_grad():
            if self.algebra_name == LEARNED:
                bound = math.sqrt(3.0 / self.n)
                nn.init.uniform_(self.algebra, -bound, bound)
            mixing = self.algebra.float().pow(2).sum(0).mean().item()
            nn.init.uniform_(self.factors, -weight_bound / math.sqrt(mixing), weight_bound / math.sqrt(mixing))
            if self.bias is not None:
                nn.init.uniform_(self.bias, -bias_bound, bias_bound)
        self._clear_cache()

    def composed_weight(self) -> Tensor:
        """W = Σ A_i ⊗ F_i; reused while no gradient is needed and nothing it depends on changed.

        "Changed" is seen through the parameters' version counters (in-place ops, load_state_dict),
        optimizer steps, train()/eval() and moves (.to). Edits through `.data` bypass version
        counters (as they bypass autograd); call `train()`/`eval()` after such an edit.
        """
        if torch.compiler.is_compiling():
            return compose(self.algebra, self.factors)
        needs_grad = torch.is_grad_enabled() and (self.algebra.requires_grad or self.factors.requires_grad)
        if needs_grad:
            return compose(self.algebra, self.factors)
        key = (
            _optimizer_steps[0],
            self.training,
            self.algebra._version,
            self.factors._version,
            self.algebra.data_ptr(),
            self.factors.data_ptr(),
            self.factors.dtype,
            self.factors.device,
        )
        if self._cache is None or key != self._cache_key:
            with torch.no_grad(), _without_autocast(self.factors.device):
                self._cache = compose(self.algebra, self.factors)
            self._cache_key = key
        return self._cache

    @property
    def weight(self) -> Tensor:
        """The dense weight this layer stands for, in the torch layout of `dense_cls`."""
        return self.composed_weight()

    def _clear_cache(self) -> None:
        self._cache = None
        self._cache_key = None

    def train(self, mode: bool = True) -> PHLayer:
        self._clear_cache()
        return super().train(mode)

    def _apply(self, fn: Callable, recurse: bool = True) -> PHLayer:
        self._clear_cache()
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None
        state["_cache_key"] = None
        return state

    def _dense_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dense(self) -> nn.Module:
        """The plain torch layer with the composed weight: same outputs, no phnn needed to run it."""
        dense = self.dense_cls(**self._dense_kwargs(), device=self.factors.device, dtype=self.factors.dtype)
        with torch.no_grad():
            dense.weight.copy_(compose(self.algebra, self.factors))
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        dense.train(self.training)
        return dense

    def dense_parameter_count(self) -> int:
        """Parameters of the equivalent dense layer, for reports."""
        weight = math.prod(self.factors.shape) * self.n
        return weight + (self.bias.numel() if self.bias is not None else 0)

    def _ph_repr(self) -> str:
        return f"n={self.n}, algebra={self.algebra_name}, bias={self.bias is not None}"


class PHComposite(nn.Module):
    """A module built from PH layers that becomes one torch module as a whole (recurrent, attention).

    Its PH layers are submodules (so reports and algebra plots find them). `dense_pairs` says which
    weight (and bias) of the torch module each PH layer stands for; its own parameters (dense biases)
    carry the torch module's names. `to_dense` and `convert(init="nearest")` both go through them.
    """

    def dense_pairs(self) -> list[tuple[PHLayer, str, str | None]]:
        """(PH layer, name of its weight in the torch module, name of its bias there or None)."""
        raise NotImplementedError

    def empty_dense(self) -> nn.Module:
        """A torch module with the same settings, device and dtype (weights not yet copied)."""
        raise NotImplementedError

    def to_dense(self) -> nn.Module:
        """The torch module with the composed weights: same outputs, no phnn needed to run it."""
        dense = self.empty_dense()
        with torch.no_grad():
            for layer, weight, bias in self.dense_pairs():
                dense.get_parameter(weight).copy_(compose(layer.algebra, layer.factors))
                if bias is not None:
                    dense.get_parameter(bias).copy_(layer.bias)
            for name, parameter in self.named_parameters(recurse=False):
                dense.get_parameter(name).copy_(parameter)
        dense.train(self.training)
        return dense

    def dense_parameter_count(self) -> int:
        """Parameters of the equivalent torch module, for reports."""
        own = sum(p.numel() for p in self.parameters(recurse=False))
        return own + sum(m.dense_parameter_count() for m in self.modules() if isinstance(m, PHLayer))


class PHMLinear(PHLayer):
    """Parameterized hypercomplex multiplication layer: nn.Linear with W = Σ A_i ⊗ F_i.

    With `blocks` = b > 1 the out_features rows are b consecutive blocks (the gates of a recurrent
    layer, the q/k/v of attention), each its own Kronecker sum Σ A_i ⊗ F_{b,i} over the whole input,
    all sharing A. The parameter count stays n³ + out·in/n (+ out for the bias).
    """

    dense_cls = nn.Linear

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        n: int = 4,
        algebra: str | Tensor = LEARNED,
        blocks: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"PHMLinear(in_features={in_features}, out_features={out_features}): blocks must be a "
                             f"positive integer; got {blocks!r}")
        self.in_features = in_features
        self.out_features = out_features
        self._setup(
            n=n, algebra=algebra, in_size=in_features, out_size=out_features, grouped_size=out_features,
            per_group_size=in_features, kernel_size=(), groups=1, bias=bias, bias_size=out_features,
            in_name="in_features", device=device, dtype=dtype, blocks=blocks,
        )

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.composed_weight(), self.bias)

    def _dense_kwargs(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None}

    def extra_repr(self) -> str:
        blocks = f", blocks={self.blocks}" if self.blocks > 1 else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, {self._ph_repr()}{blocks}"


def _tuple(value: int | Sequence[int], dims: int, name: str, layer: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(value)
    if len(value) != dims or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{layer}: {name} must be an int or a tuple of {dims} ints; got {value!r}")
    return value


class _PHConvBase(PHLayer):
    """What convolutions and transposed convolutions share: sizes, checks, repr and dense export."""

    dims: int
    transposed: bool

    def _init_conv(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int],
        padding: str | int | Sequence[int],
        dilation: int | Sequence[int],
        groups: int,
        bias: bool,
        padding_mode: str,
        output_padding: int | Sequence[int],
        device: Any,
        dtype: Any,
        n: int,
        algebra: str | Tensor,
    ) -> None:
        layer = self._describe(in_channels, out_channels, n, "in_channels")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _tuple(kernel_size, self.dims, "kernel_size", layer)
        if any(k < 1 for k in self.kernel_size):
            raise ValueError(f"{layer}: kernel_size must be positive; got {self.kernel_size}")
        self.stride = _tuple(stride, self.dims, "stride", layer)
        self.dilation = _tuple(dilation, self.dims, "dilation", layer)
        self.output_padding = _tuple(output_padding, self.dims, "output_padding", layer)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{layer}: padding_mode must be one of {_PADDING_MODES}; got {padding_mode!r}")
        if self.transposed and padding_mode != "zeros":
            raise ValueError(f"{layer}: transposed convolutions only support padding_mode='zeros'")
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid") or self.transposed:
                allowed = "an int or tuple" if self.transposed else "'same', 'valid', an int or tuple"
                raise ValueError(f"{layer}: padding must be {allowed}; got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{layer}: padding='same' needs stride=1; got stride={self.stride}")
            self.padding: str | tuple[int, ...] = padding
            same = padding == "same"
            total = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)] if same else [0] * self.dims
            pads = [(t // 2, t - t // 2) for t in total]
        else:
            self.padding = _tuple(padding, self.dims, "padding", layer)
            pads = [(p, p) for p in self.padding]
        self._reversed_padding_repeated_twice = [side for pair in reversed(pads) for side in pair]
        weight_rows, weight_cols = (in_channels, out_channels) if self.transposed else (out_channels, in_channels)
        self._setup(
            n=n, algebra=algebra, in_size=in_channels, out_size=out_channels, grouped_size=weight_rows,
            per_group_size=weight_cols // groups,
            kernel_size=self.kernel_size, groups=groups, bias=bias, bias_size=out_channels,
            in_name="in_channels", device=device, dtype=dtype,
        )

    def _dense_kwargs(self) -> dict[str, Any]:
        kwargs = {
            "in_channels": self.in_channels, "out_channels": self.out_channels, "kernel_size": self.kernel_size,
            "stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups,
            "bias": self.bias is not None, "padding_mode": self.padding_mode,
        }
        if self.transposed:
            kwargs["output_padding"] = self.output_padding
        return kwargs

    def extra_repr(self) -> str:
        parts = [
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}",
            f"padding={self.padding}",
        ]
        if self.transposed:
            parts.append(f"output_padding={self.output_padding}")
        parts += [f"dilation={self.dilation}", f"groups={self.groups}"]
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode}")
        return ", ".join(parts + [self._ph_repr()])


class _PHConvNd(_PHConvBase):
    transposed = False
    conv_fn: Callable[..., Tensor]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: str | int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        n: int = 4,
        algebra: str | Tensor = LEARNED,
    ) -> None:
        super().__init__()
        self._init_conv(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, 0,
            device, dtype, n, algebra,
        )

    def forward(self, input: Tensor) -> Tensor:
        weight = self.composed_weight()
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return type(self).conv_fn(input, weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return type(self).conv_fn(input, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _PHConvTransposeNd(_PHConvBase):
    transposed = True
    conv_fn: Callable[..., Tensor]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, ...] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, ...] = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        n: int = 4,
        algebra: str | Tensor = LEARNED,
    ) -> None:
        super().__init__()
        self._init_conv(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
            output_padding, device, dtype, n, algebra,
        )

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        output_padding = _ConvTransposeNd._output_padding(
            self, input, output_size, self.stride, self.padding, self.kernel_size, self.dims, self.dilation
        )
        return type(self).conv_fn(
            input, self.composed_weight(), self.bias, self.stride, self.padding, output_padding, self.groups,
            self.dilation,
        )


class PHConv1d(_PHConvNd):
    """nn.Conv1d with a hypercomplex weight Σ A_i ⊗ F_i."""

    dims, dense_cls, conv_fn = 1, nn.Conv1d, F.conv1d


class PHConv2d(_PHConvNd):
    """nn.Conv2d with a hypercomplex weight Σ A_i ⊗ F_i."""

    dims, dense_cls, conv_fn = 2, nn.Conv2d, F.conv2d


class PHConv3d(_PHConvNd):
    """nn.Conv3d with a hypercomplex weight Σ A_i ⊗ F_i."""

    dims, dense_cls, conv_fn = 3, nn.Conv3d, F.conv3d


class PHConvTranspose1d(_PHConvTransposeNd):
    """nn.ConvTranspose1d with a hypercomplex weight Σ A_i ⊗ F_i."""

    dims, dense_cls, conv_fn = 1, nn.ConvTranspose1d, F.conv_transpose1d


class PHConvTranspose2d(_PHConvTransposeNd):
    """nn.ConvTranspose2d with a hypercomplex weight Σ A_i ⊗ F_i."""

    dims, dense_cls, conv_fn = 2, nn.ConvTranspose2d, F.conv_transpose2d


class PHConvTranspose3d(_PHConvTransposeNd):
    """nn.ConvTranspose3d with a hypercomplex weight Σ A_i ⊗ F_i."""

    dims, dense_cls, conv_fn = 3, nn.ConvTranspose3d, F.conv_transpose3d
