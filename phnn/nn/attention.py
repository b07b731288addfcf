"""PHMultiheadAttention: nn.MultiheadAttention whose input and output projections are Kronecker sums.

The in-projection is one `PHMLinear` with three row blocks (q, k, v; `blocks=3`, one algebra) when
query, key and value have embed_dim features, as torch's packed `in_proj_weight`; otherwise three
PHMLinear q_proj, k_proj, v_proj (embed_dim × embed_dim, × kdim, × vdim). The out-projection is a
PHMLinear. The biases (in_proj_bias, bias_k, bias_v) stay dense, as torch names them. The forward
composes the weights once and calls `F.multi_head_attention_forward` (for self-attention in eval
without masks, where nn.MultiheadAttention runs the fused `torch._native_multi_head_attention`, that
kernel), so masks (key_padding_mask, attn_mask, is_causal), need_weights, average_attn_weights,
dropout, add_bias_kv, add_zero_attn and batch_first behave exactly as in torch. `in_proj_weight`,
`q/k/v_proj_weight` and `out_proj.weight` read as the composed weights, so nn.TransformerEncoderLayer/
DecoderLayer (and their eval fast path) use a converted attention as their own. Parameters:
2n³ + 4·E²/n (+ 4E biases) for kdim = vdim = E.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.activation import _is_make_fx_tracing

from phnn.nn.algebra import LEARNED
from phnn.nn.layers import PHComposite, PHMLinear


class PHMultiheadAttention(PHComposite):
    """nn.MultiheadAttention with PH in- and out-projections (signature of torch's plus `n`, `algebra`)."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        n: int = 4,
        algebra: str | Tensor = LEARNED,
    ) -> None:
        super().__init__()
        layer = f"PHMultiheadAttention(embed_dim={embed_dim}, num_heads={num_heads}, n={n})"
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"{layer}: embed_dim must be a positive multiple of num_heads")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        for name, size in (("embed_dim", embed_dim), ("kdim", self.kdim), ("vdim", self.vdim)):
            if isinstance(n, int) and n > 0 and size % n:
                raise ValueError(f"{layer}: {name}={size} must be divisible by n={n}; use a size that is a multiple "
                                 f"of {n} (e.g. {-(-size // n) * n}) or an n that divides {size}")
        self.dropout, self.batch_first, self.add_zero_attn = dropout, batch_first, add_zero_attn
        self.n = n
        factory = {"device": device, "dtype": dtype}
        ph = {**factory, "n": n, "algebra": algebra}
        if self._qkv_same_embed_dim:
            self.in_proj = PHMLinear(embed_dim, 3 * embed_dim, False, blocks=3, **ph)
        else:
            self.q_proj = PHMLinear(embed_dim, embed_dim, False, **ph)
            self.k_proj = PHMLinear(self.kdim, embed_dim, False, **ph)
            self.v_proj = PHMLinear(self.vdim, embed_dim, False, **ph)
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory)) if bias else None
        self.out_proj = PHMLinear(embed_dim, embed_dim, bias, **ph)
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, embed_dim, **factory))
            self.bias_v = nn.Parameter(torch.empty(1, 1, embed_dim, **factory))
        else:
            self.bias_k = self.bias_v = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As torch: Xavier-uniform variance for the in-projection, zero biases, Xavier-normal bias_k/v."""
        def xavier(layer: PHMLinear, rows: int) -> None:
            layer.init_uniform(math.sqrt(6.0 / (rows + layer.in_features)), 0.0)

        if self._qkv_same_embed_dim:
            xavier(self.in_proj, 3 * self.embed_dim)
        else:
            for projection in (self.q_proj, self.k_proj, self.v_proj):
                xavier(projection, self.embed_dim)
        self.out_proj.reset_parameters()
        with torch.no_grad():
            if self.in_proj_bias is not None:
                self.in_proj_bias.zero_()
                self.out_proj.bias.zero_()
            for extra in (self.bias_k, self.bias_v):
                if extra is not None:
                    nn.init.xavier_normal_(extra)

    # nn.TransformerEncoderLayer's eval fast path asks its attention to merge the masks (uses num_heads only)
    merge_masks = nn.MultiheadAttention.merge_masks

    def _projection(self, name: str) -> Tensor | None:
        module = self._modules.get(name)
        return module.composed_weight() if isinstance(module, PHMLinear) else None

    @property
    def in_proj_weight(self) -> Tensor | None:
        """The composed (3E, E) in-projection, as torch's; None when kdim or vdim differ from embed_dim."""
        return self._projection("in_proj")

    @property
    def q_proj_weight(self) -> Tensor | None:
        return self._projection("q_proj")

    @property
    def k_proj_weight(self) -> Tensor | None:
        return self._projection("k_proj")

    @property
    def v_proj_weight(self) -> Tensor | None:
        return self._projection("v_proj")

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """As nn.MultiheadAttention.forward: (attention output, attention weights or None)."""
        if attn_mask is None and key_padding_mask is None and not is_causal and self._fused(query, key, value):
            return torch._native_multi_head_attention(
                query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
                self.out_proj.composed_weight(), self.out_proj.bias, None, need_weights, average_attn_weights, None)
        batched = query.dim() == 3
        if self.batch_first and batched:
            query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        separate = not self._qkv_same_embed_dim
        output, weights = F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.composed_weight(),
            self.out_proj.bias, training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=separate, q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal,
        )
        return (output.transpose(1, 0) if self.batch_first and batched else output), weights

    def _fused(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        """Whether nn.MultiheadAttention would run its fused inference kernel on these inputs (without masks):
        it does in eval self-attention, so the PH layer runs the same kernel on its cached weights there."""
        needs_grad = torch.is_grad_enabled() and (query.requires_grad
                                                  or any(p.requires_grad for p in self.parameters()))
        return (not self.training and not needs_grad and query.dim() == 3 and query is key and key is value
                and self.batch_first and self._qkv_same_embed_dim and self.in_proj_bias is not None
                and self.bias_k is None and self.bias_v is None and not self.add_zero_attn
                and self.num_heads % 2 == 0 and query.dtype == self.in_proj_bias.dtype
                and query.device.type in ("cpu", "cuda") and torch.backends.mha.get_fastpath_enabled()
                and not torch.is_autocast_enabled() and not torch.overrides.has_torch_function((query,))
                and not torch.compiler.is_compiling() and not _is_make_fx_tracing())

    def dense_pairs(self) -> list[tuple[PHMLinear, str, str | None]]:
        """Each PH projection with the names of its weight and bias in nn.MultiheadAttention."""
        pairs = [(self._modules[name], f"{name}_weight", None)
                 for name in ("in_proj", "q_proj", "k_proj", "v_proj") if name in self._modules]
        return pairs + [(self.out_proj, "out_proj.weight", "out_proj.bias" if self.out_proj.bias is not None else None)]

    def empty_dense(self) -> nn.MultiheadAttention:
        """The nn.MultiheadAttention with the same settings (its weights are overwritten by `to_dense`)."""
        factors = self.out_proj.factors
        return nn.MultiheadAttention(
            self.embed_dim, self.num_heads, self.dropout, self.in_proj_bias is not None, self.bias_k is not None,
            self.add_zero_attn, self.kdim, self.vdim, self.batch_first, device=factors.device, dtype=factors.dtype,
        )

    def extra_repr(self) -> str:
        dims = "" if self._qkv_same_embed_dim else f", kdim={self.kdim}, vdim={self.vdim}"
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}{dims}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}, n={self.n}, algebra={self.out_proj.algebra_name}")
