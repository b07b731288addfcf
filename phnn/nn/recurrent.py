"""PH recurrent layers: PHRNN, PHGRU, PHLSTM — nn.RNN/GRU/LSTM whose weight matrices are Kronecker sums.

Each input-to-hidden matrix W_ih (gates·H × in), hidden-to-hidden matrix W_hh (gates·H × H, or
× proj_size) and LSTM projection W_hr (proj_size × H) of every layer and direction is a `PHMLinear`
(`blocks` = gates): its rows are torch's gate blocks in torch's order (RNN: one; GRU: r, z, n;
LSTM: i, f, g, o), and each gate block is its own Kronecker sum Σ_i A_i ⊗ F_{gate,i} over the whole
input, with one algebra A per matrix. A gate block, not the whole matrix, is the hypercomplex unit
(as in quaternion RNNs): a component block of the composed matrix never straddles two gates.

The forward composes the weights (once per step in training, cached in eval) and calls torch's own
fused kernel (`torch._VF.rnn_tanh/rnn_relu/gru/lstm`, as nn.RNNBase does): the ATen kernel on the
CPU, cuDNN on a GPU, no Python loop over time. PackedSequence, unbatched input, batch_first, an
initial state and inter-layer dropout behave as in torch; `to_dense()` gives the torch module.

Parameters, with D directions, gates G, in_l the input size of layer l and h = proj_size or H:
    Σ_l D · [2 n³ + G·H·(in_l + h) / n + 2·G·H (bias)] + (proj_size: Σ_l D · [n³ + proj_size·H / n])
about 1/n of the torch layer's (biases stay dense: they are vectors, 2·G·H per layer and direction).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from phnn.nn.algebra import LEARNED
from phnn.nn.layers import PHComposite, PHMLinear

# mode -> (gates, kernel, dense class)
_MODES: dict[str, tuple[int, Callable[..., Any], type[nn.RNNBase]]] = {
    "RNN_TANH": (1, _VF.rnn_tanh, nn.RNN),
    "RNN_RELU": (1, _VF.rnn_relu, nn.RNN),
    "GRU": (3, _VF.gru, nn.GRU),
    "LSTM": (4, _VF.lstm, nn.LSTM),
}


def pack_contiguous(weights: list[Tensor]) -> list[Tensor]:
    """The same tensors as views into one new contiguous buffer, in order (differentiable): the layout
    cuDNN's RNN reads directly; given separate tensors it would compact them itself at every call."""
    buffer = torch.cat([w.reshape(-1) for w in weights])
    return [part.view_as(w) for part, w in zip(buffer.split([w.numel() for w in weights]), weights)]


class PHRNNBase(PHComposite):
    """What PHRNN, PHGRU and PHLSTM share: the PH matrices, the composed flat weights, the forward."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        *,
        n: int = 4,
        algebra: str | Tensor = LEARNED,
    ) -> None:
        super().__init__()
        layer = f"PH{_MODES[mode][2].__name__}(input_size={input_size}, hidden_size={hidden_size}, n={n})"
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"{layer}: num_layers must be a positive integer; got {num_layers!r}")
        if isinstance(dropout, bool) or not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"{layer}: dropout must be a probability in [0, 1]; got {dropout!r}")
        if not 0 <= proj_size < hidden_size:
            raise ValueError(f"{layer}: proj_size must be 0 (none) or in 1 … hidden_size - 1; got {proj_size}")
        for size_name, size in (("input_size", input_size), ("hidden_size", hidden_size), ("proj_size", proj_size)):
            if isinstance(n, int) and n > 0 and size % n:
                raise ValueError(f"{layer}: {size_name}={size} must be divisible by n={n}; use a size that is a "
                                 f"multiple of {n} (e.g. {-(-size // n) * n}) or an n that divides {size}")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.n = n
        gates = _MODES[mode][0]
        directions = 2 if bidirectional else 1
        state = proj_size or hidden_size
        factory = {"device": device, "dtype": dtype, "n": n, "algebra": algebra}
        self._cells: list[tuple[str, str]] = []
        for index in range(num_layers):
            for direction in range(directions):
                cell = f"l{index}{'_reverse' if direction else ''}"
                width = input_size if index == 0 else state * directions
                self.add_module(f"ih_{cell}", PHMLinear(width, gates * hidden_size, bias, blocks=gates, **factory))
                self.add_module(f"hh_{cell}", PHMLinear(state, gates * hidden_size, bias, blocks=gates, **factory))
                if proj_size:
                    self.add_module(f"hr_{cell}", PHMLinear(hidden_size, proj_size, False, **factory))
                self._cells.append((cell, f"{index}{'_reverse' if direction else ''}"))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As torch: every composed weight and bias has the variance of U(-1/√H, 1/√H)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for module in self.children():
            if isinstance(module, PHMLinear):
                module.init_uniform(bound, bound)

    def _named_weights(self, composed: Callable[[PHMLinear], Tensor]) -> list[tuple[str, Tensor]]:
        """(torch parameter name, tensor) in torch's flat-weights order; `composed` gives a PH weight."""
        named = []
        for cell, suffix in self._cells:
            ih, hh = self.get_submodule(f"ih_{cell}"), self.get_submodule(f"hh_{cell}")
            named += [(f"weight_ih_l{suffix}", composed(ih)), (f"weight_hh_l{suffix}", composed(hh))]
            if self.bias:
                named += [(f"bias_ih_l{suffix}", ih.bias), (f"bias_hh_l{suffix}", hh.bias)]
            if self.proj_size:
                named.append((f"weight_hr_l{suffix}", composed(self.get_submodule(f"hr_{cell}"))))
        return named

    def flat_weights(self) -> list[Tensor]:
        """The composed weights in torch's order, for the fused kernel. Composed outside autocast (so they
        keep the parameters' dtype, as nn.GRU's do); on CUDA packed into one buffer, the layout cuDNN
        reads without compacting the weights at every call."""
        with torch.autocast(self.ih_l0.factors.device.type, enabled=False):
            weights = [w for _, w in self._named_weights(PHMLinear.composed_weight)]
        if not torch.is_grad_enabled():
            # The CPU kernel picks its code path by whether the weights require grad, even under no_grad;
            # nn.GRU's Parameters always do (and its path is the faster one there): present ours alike.
            weights = [w.detach().requires_grad_(w.is_floating_point()) for w in weights]
        return pack_contiguous(weights) if weights[0].is_cuda else weights

    def flatten_parameters(self) -> None:
        """Nothing to do (for code written for torch's RNNs): the composed weights are laid out for the
        kernel at every call."""

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | tuple[Tensor, Tensor] | None = None) -> Any:
        """As nn.RNN/GRU/LSTM.forward: (output, h_n), or (output, (h_n, c_n)) for the LSTM."""
        if isinstance(input, PackedSequence):
            data, batch_sizes, sorted_indices, unsorted_indices = input
            batch, batched = int(batch_sizes[0]), True
        else:
            data, batch_sizes, sorted_indices, unsorted_indices = input, None, None, None
            if input.dim() not in (2, 3):
                raise ValueError(f"{type(self).__name__}: expected input of 2 (unbatched) or 3 dims; "
                                 f"got shape {tuple(input.shape)}")
            batched = input.dim() == 3
            if not batched:
                data = input.unsqueeze(0 if self.batch_first else 1)
            batch = data.size(0 if self.batch_first else 1)
        if data.size(-1) != self.input_size:
            raise ValueError(f"{type(self).__name__}: input.size(-1) must be input_size={self.input_size}; "
                             f"got {data.size(-1)}")
        state = self._initial_state(hx, batch, data, batched, sorted_indices)
        weights = self.flat_weights()
        kernel = _MODES[self.mode][1]
        hidden = state if self.mode == "LSTM" else state[0]
        settings = (self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        if batch_sizes is None:
            result = kernel(data, hidden, weights, *settings, self.batch_first)
        else:
            result = kernel(data, batch_sizes, hidden, weights, *settings)
        output, final = result[0], tuple(result[1:])
        if batch_sizes is not None:
            output = PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices)
            final = tuple(s.index_select(1, unsorted_indices) if unsorted_indices is not None else s for s in final)
        elif not batched:
            output = output.squeeze(0 if self.batch_first else 1)
            final = tuple(s.squeeze(1) for s in final)
        return output, (final if self.mode == "LSTM" else final[0])

    def _initial_state(
        self, hx: Any, batch: int, data: Tensor, batched: bool, order: Tensor | None
    ) -> tuple[Tensor, ...]:
        """The states (h,) or (h, c) as the kernel wants them: zeros by default, checked, in batch order."""
        layers = self.num_layers * (2 if self.bidirectional else 1)
        sizes = [self.proj_size or self.hidden_size] + ([self.hidden_size] if self.mode == "LSTM" else [])
        if hx is None:
            return tuple(torch.zeros(layers, batch, size, dtype=data.dtype, device=data.device) for size in sizes)
        states = tuple(hx) if self.mode == "LSTM" else (hx,)
        if not batched:
            states = tuple(s.unsqueeze(1) for s in states)
        for state, size in zip(states, sizes):
            if tuple(state.shape) != (layers, batch, size):
                raise ValueError(f"{type(self).__name__}: expected a hidden state of shape {(layers, batch, size)}; "
                                 f"got {tuple(state.shape)}")
        return tuple(s.index_select(1, order) if order is not None else s for s in states)

    def dense_pairs(self) -> list[tuple[PHMLinear, str, str | None]]:
        """Each PH matrix with the names of its weight and bias in nn.RNN/GRU/LSTM."""
        pairs = []
        for cell, suffix in self._cells:
            for kind in ("ih", "hh"):
                bias = f"bias_{kind}_l{suffix}" if self.bias else None
                pairs.append((self.get_submodule(f"{kind}_{cell}"), f"weight_{kind}_l{suffix}", bias))
            if self.proj_size:
                pairs.append((self.get_submodule(f"hr_{cell}"), f"weight_hr_l{suffix}", None))
        return pairs

    def empty_dense(self) -> nn.RNNBase:
        """The nn.RNN/GRU/LSTM with the same settings (its weights are overwritten by `to_dense`)."""
        ih = self.ih_l0
        kwargs: dict[str, Any] = {
            "input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
            "bias": self.bias, "batch_first": self.batch_first, "dropout": self.dropout,
            "bidirectional": self.bidirectional, "device": ih.factors.device, "dtype": ih.factors.dtype,
        }
        if self.mode == "LSTM":
            kwargs["proj_size"] = self.proj_size
        if self.mode.startswith("RNN_"):
            kwargs["nonlinearity"] = self.mode.removeprefix("RNN_").lower()
        return _MODES[self.mode][2](**kwargs)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        for name, default in (("proj_size", 0), ("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)}")
        return ", ".join(parts + [f"n={self.n}, algebra={self.ih_l0.algebra_name}"])


class PHRNN(PHRNNBase):
    """nn.RNN (tanh or relu) with PH weight matrices; see the module docstring for layout and count."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        n: int = 4,
        algebra: str | Tensor = LEARNED,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"PHRNN: nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype, n=n, algebra=algebra)


class PHGRU(PHRNNBase):
    """nn.GRU with PH weight matrices: gate blocks r, z, n, each a Kronecker sum (module docstring)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        n: int = 4,
        algebra: str | Tensor = LEARNED,
    ) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, n=n, algebra=algebra)


class PHLSTM(PHRNNBase):
    """nn.LSTM with PH weight matrices: gate blocks i, f, g, o, each a Kronecker sum; proj_size as in torch
    (the projection is a PH matrix too, so proj_size must be divisible by n)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        *,
        n: int = 4,
        algebra: str | Tensor = LEARNED,
    ) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype, n=n, algebra=algebra)
