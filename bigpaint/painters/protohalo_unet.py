"""Protohalo U-Net (M. Bernardini, L. Mayer, D. Reed & R. Feldmann 2020, "Predicting dark
matter halo formation in N-body simulations with deep regression networks", arXiv:1912.04299).

Maps the unit-variance scaled initial density contrast to the per-object normalized
Euclidean distance map of protohalo regions (each protohalo's distance-to-background map
divided by its maximum, so every object's innermost cell is 1); a watershed on the
prediction (``bigpaint.segment``) recovers the protohaloes.

Architecture (paper Sect. 3.1, Fig. 3, Table 1): a 3-D U-Net with ``levels`` (L) poolings
and ``filters`` (n_f) initial filters. Encoder level l (0..L-1): two 3x3x3 convolutions with
n_f 2^l filters, each followed by leaky ReLU (slope 0.05); the result is the skip
connection; dropout; 2x2x2 max pooling. Bottleneck: two convolutions with n_f 2^L filters.
Decoder level l (L-1..0): 3x3x3 transposed convolution with stride 2 (n_f 2^l filters) and
leaky ReLU, concatenation with the skip, dropout, two convolutions and leaky ReLUs. A final
1x1x1 convolution with ReLU gives the (non-negative) distance map. All convolutions use
"same" padding, so the output has the input's size; sizes must be multiples of 2^L.

Parameter count: 14,590,741 for L=5, n_f=12 (the paper: "14.5 10^6").

Deviations, stated:

* The paper writes "MaxPool ... with filter size (2x2x2) and stride 1" while its text and
  Fig. 3 halve the dimensions at each level; we pool with stride 2 (halving).
* Table 1 lists 3,024 Conv3D filters in total; the architecture its text describes has 2,257
  (744 encoder + 768 bottleneck + 744 decoder + 1 output). We follow the text (which also
  reproduces the 14.5 million parameters and the 372 transposed-convolution filters).
* Initialisation is not stated: PyTorch's defaults, except that the output bias starts at
  0.1 so that the output ReLU is not dead at the start.
* The output is clipped to [0, 1], the range of the target, where the paper has a plain
  ReLU: a per-object normalized map never exceeds 1 (trained networks overshoot at object
  centres by up to ~15 %), and ``bigpaint segment`` refuses normalized maps outside
  [0, 1], since those are usually maps in cells.
* The clip passes its gradient straight through (the value is still the clipped one). With the paper's L1 loss and a foreground of ~20 % of the voxels, a small
  network otherwise drove every output below zero within 50 steps, where ReLU has no
  gradient and the painting stays 0 for good.
* Where dropout sits in a decoder block is not stated (Table 1: one per level in both
  branches); we apply it after the concatenation.

Context: the padding breaks exact translation equivariance near chunk edges, so the engine
needs the architectural receptive field: :meth:`ProtohaloUNet.derive_context` probes it on a
1-D, 1-filter twin (:func:`bigpaint.context.probe_context`), with chunk origins aligned to
2^L (``alignment``). For L=5 the context is 222 voxels per side; ``docs/paint.md`` gives the
measured seam error of the smaller margins that painting uses.

Why hand-written: the U-Net is a few torch layers; a dependency (MONAI) would bring its own
conventions and no way to probe a 1-D twin.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bigpaint.painters.base import (
    Painter,
    PainterConfig,
    conv_nd,
    conv_transpose_nd,
    max_pool_nd,
)

__all__ = ["ProtohaloUNet", "ProtohaloUNetConfig"]


class ProtohaloUNetConfig(PainterConfig):
    """Architecture of the protohalo U-Net (defaults: the paper's L=5, n_f=12)."""

    in_channels: int = Field(1, ge=1)
    out_channels: int = Field(1, ge=1)
    levels: int = Field(5, ge=1, le=8, description="poolings (L)")
    filters: int = Field(12, ge=1, description="filters of the first level (n_f)")
    kernel: int = Field(3, ge=1)
    negative_slope: float = Field(0.05, ge=0)
    dropout: float = Field(0.5, ge=0, lt=1)


class _DoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, slope: float, ndim: int) -> None:
        super().__init__()
        conv = conv_nd(ndim)
        self.conv1 = conv(cin, cout, k, padding=k // 2)
        self.conv2 = conv(cout, cout, k, padding=k // 2)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(x), self.slope)
        return F.leaky_relu(self.conv2(x), self.slope)


class ProtohaloUNet(Painter):
    """3-D U-Net regressing normalized protohalo distance maps (same-size output)."""

    family: ClassVar[str] = "protohalo-unet"
    Config: ClassVar[type[PainterConfig]] = ProtohaloUNetConfig
    config: ProtohaloUNetConfig
    mode: ClassVar[Any] = "same"
    spatial_ndim: ClassVar[int] = 3
    cpu_channels_last: ClassVar[bool] = True

    def __init__(
        self, config: ProtohaloUNetConfig | None = None, *, ndim: int | None = None
    ) -> None:
        config = config or ProtohaloUNetConfig()
        super().__init__(config, ndim=ndim)
        nd, k, s, f, levels = (
            self.ndim,
            config.kernel,
            config.negative_slope,
            config.filters,
            config.levels,
        )
        self.encoders = nn.ModuleList()
        cin = config.in_channels
        for level in range(levels):
            self.encoders.append(_DoubleConv(cin, f * 2**level, k, s, nd))
            cin = f * 2**level
        self.pool = max_pool_nd(nd)(2)
        self.dropout = nn.Dropout(config.dropout)
        self.bottleneck = _DoubleConv(cin, f * 2**levels, k, s, nd)
        self.upsamples = nn.ModuleList()
        self.decoders = nn.ModuleList()
        cin = f * 2**levels
        for level in reversed(range(levels)):
            c = f * 2**level
            self.upsamples.append(
                conv_transpose_nd(nd)(cin, c, k, stride=2, padding=k // 2, output_padding=1)
            )
            self.decoders.append(_DoubleConv(2 * c, c, k, s, nd))
            cin = c
        self.out = conv_nd(nd)(cin, config.out_channels, 1)
        assert self.out.bias is not None  # built with a bias
        with torch.no_grad():  # a dead output ReLU at the start never recovers
            self.out.bias.fill_(0.1)

    @property
    def alignment(self) -> int:
        return 2 ** int(self.config.levels)

    @classmethod
    def probe_config(cls, config: PainterConfig) -> PainterConfig:
        return config.model_copy(update={"filters": 1, "in_channels": 1, "out_channels": 1})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slope = self.config.negative_slope
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(self.dropout(x))
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.upsamples, self.decoders, reversed(skips), strict=True):
            x = F.leaky_relu(up(x), slope)
            x = dec(self.dropout(torch.cat([x, skip], 1)))
        y = self.out(x)
        # the value is the clipped one; the gradient passes where it is clipped, so a voxel
        # painted at 0 under a positive truth still pulls its output up and the output layer
        # cannot die (an all-zero painting has zero ReLU gradient), and the context probe
        # (bigpaint.context) sees the network's support whatever the output's value
        return y + (torch.clamp(y, 0.0, 1.0) - y).detach()
