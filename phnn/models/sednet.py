"""SEDnet: the "augmented SELDnet" of the L3DAS21 baseline (`Seldnet_augmented`), in any layer family.

    features (B, C, F=256, T) → 4 × [conv 3×3 → BN → MaxPool (freq, time) → ReLU → Dropout]
    → (B, T/8, widths[-1] · F/128) → 3-layer bidirectional GRU
        ─┬→ SED head: FC … → (B, T/8, classes · slots) logits
         └→ DOA head (optional): FC … → tanh (B, T/8, 3 · classes · slots)

With `doa=True` the DOA head reads the shared GRU (the baseline), or, with `doa_shared_blocks=k`, a
branch of its own: conv blocks k… (`doa_widths`) and a GRU of its own, on the output of the first k
shared conv blocks. Why a branch: in a network as narrow as the CPU demo's, the DOA loss on the shared
trunk costs most of the detection (L3DAS21 Task 2 synthetic demo: F 0.52 vs 0.77 without it); with
`doa_shared_blocks=0` detection trains as if alone, and the branch sees the features it needs.

With `doa=True` the output is the SED logits followed by the DOA outputs on the last axis,
`(B, T/8, 42 + 126)` as the official target matrix stacks them: one tensor, so windowing, export and
ONNX see a single output. The DOA outputs are positions in metres / 2 (tanh, [-1, 1]), laid out as
phnn's DOA targets: `[x of the 42 slots, y of the 42, z of the 42]`. Both heads have the same shape
(`fc_layers` hidden FC layers of `fc_width`, then the output layer), as in the baseline.

C is 4, 8 or 16 Ambisonics channels; the convs come from the family (real, quaternion, PH(n)), so
n must divide C. With `full_phm` the hidden FC layers are PHM too; with `recurrent="ph"` the GRU(s) are
`phnn.nn.PHGRU` of the family's n and algebra (every GRU matrix a Kronecker sum, about 1/n of its
weights); both together give the fully PH network. The default `recurrent="dense"` keeps torch's GRU,
so the published families keep the original code's parameter counts. The time pooling (2·2·2·1 = 8)
maps the 8 STFT frames of one 100 ms label frame to one output frame; the SED sigmoid lives in the task.
Convs are bias-free: each is followed by batch norm, whose shift makes a conv bias redundant (the
baseline's conv biases are the only parameters it has and SEDnet lacks).
The output bias starts at logit(`output_prior`), the rough share of active class slots (None: torch
default init).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from phnn.models.common import conv_bn
from phnn.models.config import NetworkConfig
from phnn.models.family import LayerFamily
from phnn.models.registry import register_model
from phnn.nn import PHGRU

PUBLISHED_POOLS: tuple[tuple[int, int], ...] = ((8, 2), (8, 2), (2, 2), (1, 1))
Pooling = Literal["max", "avg"]
Recurrent = Literal["dense", "ph"]
RECURRENT = ("dense", "ph")


@dataclass(frozen=True)
class SEDnetConfig(NetworkConfig):
    """SEDnet's options (the `model:` of `SoundEventDetector`); defaults are the published network.

    Args:
        family: layer family of the conv blocks: real, quaternion (n = 4) or phc (learned algebra).
        n: the PH dimension for family phc; must divide the input channels.
        full_phm: make the hidden FC layers PHM too (the paper's "full" variant).
        widths: filters of the four conv blocks (published: 64, 128, 256, 512).
        gru_hidden: hidden size of the bidirectional GRU (published: 256).
        gru_layers: GRU layers (published: 3).
        fc_width: width of the hidden fully connected layers (published: 1024).
        fc_layers: hidden fully connected layers (published: 3).
        dropout: dropout after each conv block and FC layer (published: 0.3).
        output_prior: initial output probability (output bias = logit(prior)); None: torch init.
        doa_shared_blocks: with a DOA head: None, it reads the shared GRU (the baseline); k, the DOA branch
            shares only the first k conv blocks and has its own blocks and GRU (0: nothing shared, so the DOA
            loss cannot slow detection down; what the CPU demo's narrow network needs).
        doa_widths: filters of the DOA branch's own conv blocks (default: as `widths`).
        doa_pooling: pooling of the DOA branch's blocks: `max` (as the SED path) or `avg`.
        recurrent: `dense` (torch's GRU, the published counts) or `ph` (`phnn.nn.PHGRU` of the family's n
            and algebra; with `full_phm` the fully PH network).
    """

    name = "sednet"

    full_phm: bool = False
    widths: tuple[int, ...] = (64, 128, 256, 512)
    gru_hidden: int = 256
    gru_layers: int = 3
    fc_width: int = 1024
    fc_layers: int = 3
    dropout: float = 0.3
    output_prior: float | None = 0.03
    doa_shared_blocks: int | None = None
    doa_widths: tuple[int, ...] | None = None
    doa_pooling: Pooling = "max"
    recurrent: Recurrent = "dense"


def _check_input(where: str, family: LayerFamily, in_channels: int, full_phm: bool, recurrent: str) -> None:
    """The family must fit the input channels (and PHM FC layers or a PH GRU need a hypercomplex family)."""
    if family.is_hypercomplex and in_channels % family.n:
        fitting = [n for n in (2, 4, 8, 16) if in_channels % n == 0]
        raise ValueError(
            f"{where}: in_channels={in_channels} must be divisible by n={family.n}; with {in_channels} "
            f"channels use n in {fitting}, or more channels (data.mics: AB and/or data.phase: true "
            f"give 8 or 16)")
    if full_phm and not family.is_hypercomplex:
        raise ValueError(f"{where}: full_phm=True needs a hypercomplex family (quaternion or phc)")
    if recurrent not in RECURRENT:
        raise ValueError(f"{where}: recurrent={recurrent!r}: expected one of {RECURRENT}")
    if recurrent == "ph" and not family.is_hypercomplex:
        raise ValueError(f"{where}: recurrent='ph' needs a hypercomplex family (quaternion or phc)")


def _doa_branch_widths(where: str, widths: Sequence[int], shared: int | None, doa_widths: Sequence[int] | None,
                       doa: bool) -> list[int] | None:
    """The DOA branch's own conv widths (None: the DOA head, if any, reads the shared GRU)."""
    if not doa or shared is None:
        if doa_widths is not None:
            raise ValueError(f"{where}: doa_widths needs doa=True and doa_shared_blocks (a DOA branch of its own)")
        return None
    if not 0 <= shared <= len(widths):
        raise ValueError(f"{where}: doa_shared_blocks={shared}: expected 0 … {len(widths)} (conv blocks the DOA "
                         f"branch shares), or None to share the GRU too")
    own = list(widths[shared:] if doa_widths is None else doa_widths)
    if len(own) != len(widths) - shared:
        raise ValueError(f"{where}: doa_widths={list(doa_widths or [])} must give the {len(widths) - shared} "
                         f"conv blocks of the DOA branch (widths {list(widths)}, {shared} shared)")
    return own


class SEDnet(nn.Module):
    """Conv blocks → bidirectional GRU → FC head(s); `forward` returns (B, T / time_pool, `self.outputs`):
    SED logits, followed by the tanh DOA outputs when `doa=True`."""

    def __init__(
        self,
        family: LayerFamily,
        in_channels: int,
        outputs: int,
        *,
        widths: Sequence[int] = SEDnetConfig.widths,
        pools: Sequence[Sequence[int]] = PUBLISHED_POOLS,
        freq_bins: int = 256,
        gru_hidden: int = SEDnetConfig.gru_hidden,
        gru_layers: int = SEDnetConfig.gru_layers,
        fc_width: int = SEDnetConfig.fc_width,
        fc_layers: int = SEDnetConfig.fc_layers,
        dropout: float = SEDnetConfig.dropout,
        full_phm: bool = False,
        output_prior: float | None = SEDnetConfig.output_prior,
        doa: bool = False,
        doa_shared_blocks: int | None = None,
        doa_widths: Sequence[int] | None = None,
        doa_pooling: Pooling = "max",
        recurrent: Recurrent = "dense",
    ) -> None:
        super().__init__()
        where = f"sednet(family={family.name!r}, n={family.n})"
        if len(widths) != len(pools):
            raise ValueError(f"{where}: widths {list(widths)} and pools {list(pools)} must have the same length")
        _check_input(where, family, in_channels, full_phm, recurrent)
        self.family, self.pools, self.dropout = family, [tuple(p) for p in pools], dropout
        self.freq_pool = math.prod(p[0] for p in pools)
        self.time_pool = math.prod(p[1] for p in pools)
        if freq_bins % self.freq_pool:
            raise ValueError(f"{where}: freq_bins={freq_bins} must be divisible by the frequency pooling "
                             f"{self.freq_pool} (product of pools {list(pools)})")
        if doa_pooling not in ("max", "avg"):
            raise ValueError(f"{where}: doa_pooling={doa_pooling!r}: expected 'max' or 'avg'")
        self.freq_bins, self.gru_hidden, self.gru_layers, self.recurrent = freq_bins, gru_hidden, gru_layers, recurrent
        own = _doa_branch_widths(where, widths, doa_shared_blocks, doa_widths, doa)
        self.conv = self._conv_blocks(in_channels, widths, self.pools)
        self.gru = self._gru(widths[-1])
        self.doa_shared_blocks = None if own is None else doa_shared_blocks
        if own is not None:
            k = doa_shared_blocks
            self.doa_conv = self._conv_blocks(widths[k - 1] if k else in_channels, own, self.pools[k:], doa_pooling)
            self.doa_gru = self._gru((list(widths[:k]) + own)[-1])
        hidden_linear = family.linear if full_phm else nn.Linear
        self.sed_outputs = outputs
        self.head = self._head(outputs, hidden_linear, fc_width, fc_layers)
        self.doa_head = nn.Sequential(*self._head(3 * outputs, hidden_linear, fc_width, fc_layers), nn.Tanh()) \
            if doa else None
        self.outputs = outputs * (4 if doa else 1)
        if output_prior is not None:
            if not 0.0 < output_prior < 1.0:
                raise ValueError(f"{where}: output_prior must be in (0, 1) or None; got {output_prior!r}")
            # Start at a plausible event rate (bias = logit(prior)): from a 0.5 start, the first steps only
            # push all sigmoids down and training then sits on a plateau at the base-rate loss.
            nn.init.constant_(self.head[-1].bias, math.log(output_prior / (1.0 - output_prior)))

    def _conv_blocks(self, channels: int, widths: Sequence[int], pools: Sequence[tuple[int, ...]],
                     pooling: Pooling = "max") -> nn.Sequential:
        """Family conv → BN → pool/ReLU → dropout, one block per width."""
        blocks = []
        for width, pool in zip(widths, pools):
            # max-pool before the ReLU (they commute: the same function on 8-16x fewer elements); avg after it
            pooled = ([nn.MaxPool2d(pool), nn.ReLU(inplace=True)] if pooling == "max"
                      else [nn.ReLU(inplace=True), nn.AvgPool2d(pool)])
            blocks.append(nn.Sequential(*conv_bn(self.family, channels, width, 3), *pooled, nn.Dropout(self.dropout)))
            channels = width
        return nn.Sequential(*blocks)

    def _gru(self, channels: int) -> nn.Module:
        """The bidirectional GRU over the pooled conv features of `channels` filters (PH with `recurrent='ph'`)."""
        settings: dict = {"num_layers": self.gru_layers, "batch_first": True, "bidirectional": True,
                          "dropout": self.dropout if self.gru_layers > 1 else 0.0}
        if self.recurrent == "ph":
            settings |= {"n": self.family.n, "algebra": self.family.algebra}
        gru = PHGRU if self.recurrent == "ph" else nn.GRU
        return gru(channels * (self.freq_bins // self.freq_pool), self.gru_hidden, **settings)

    def _head(self, out_features: int, hidden_linear: type | object, fc_width: int, fc_layers: int) -> nn.Sequential:
        """`fc_layers` hidden FC layers of `fc_width` (ReLU, dropout), then the output layer."""
        layers: list[nn.Module] = []
        features = 2 * self.gru_hidden
        for _ in range(fc_layers):
            layers += [hidden_linear(features, fc_width), nn.ReLU(inplace=True), nn.Dropout(self.dropout)]
            features = fc_width
        return nn.Sequential(*layers, nn.Linear(features, out_features))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[2] != self.freq_bins or x.shape[3] % self.time_pool:
            raise ValueError(
                f"SEDnet: expected features (B, C, {self.freq_bins}, T) with T a multiple of {self.time_pool} "
                f"(8 STFT frames per 100 ms label frame); got {tuple(x.shape)}")
        k = len(self.conv) if self.doa_shared_blocks is None else self.doa_shared_blocks
        shared = self.conv[:k](x)
        sed = self._recurrent(self.gru, self.conv[k:](shared))
        if self.doa_head is None:
            return self.head(sed)
        doa = sed if self.doa_shared_blocks is None else self._recurrent(self.doa_gru, self.doa_conv(shared))
        return torch.cat([self.head(sed), self.doa_head(doa)], dim=-1)

    @staticmethod
    def _recurrent(gru: nn.GRU, x: Tensor) -> Tensor:
        """Conv features (B, C', F', T') → GRU outputs (B, T', 2 · gru_hidden)."""
        return gru(x.permute(0, 3, 1, 2).flatten(2))[0]


@register_model("sednet")
def sednet(family: LayerFamily, in_channels: int, num_classes: int, *, slots: int, **kwargs) -> SEDnet:
    """L3DAS21 SEDnet with `num_classes · slots` outputs (14 · 3 = 42), + 3 × that with `doa=True`; kwargs as in
    `SEDnet` (the options of `SEDnetConfig`)."""
    return SEDnet(family, in_channels, num_classes * slots, **kwargs)
