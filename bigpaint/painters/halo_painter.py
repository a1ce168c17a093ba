"""Halo painter (D. Kodi Ramanah, T. Charnock & G. Lavaux 2019, "Painting halos from cosmic
density fields of dark matter with physically motivated neural networks", arXiv:1903.10524).

Architecture (paper Figs. 4-5): two residual Inception blocks of valid (unpadded)
convolutions, then four 1x1x1 layers; every convolution has 10 filters; leaky ReLU with
slope 0.1 after each residual sum and each hidden 1x1x1 layer; ReLU on the output so counts
are non-negative. A residual Inception block has three branches on the previous layer:
a 1x1x1 convolution; a 1x1x1 reduction followed by 3x3x3; a 1x1x1 reduction followed by
5x5x5. The branches are cropped to the 5x5x5 branch's size and concatenated (3 x 10
features), the block input (centre-cropped) is added, and the leaky ReLU follows the sum.
Each block removes 2 voxels per side, so 58^3 in gives 50^3 out (context 4).

Critic (Fig. 6): 7x7x7 stride 2 (8 filters) -> 5x5x5 (16) -> 3x3x3 stride 2 (32) -> 1x1x1
(64), leaky ReLU 0.1, flattened (64 x 8^3 = 32768 for a 50^3 patch) into one linear unit.

Deviations, stated:

* Parameter count. The paper quotes 31,930 trainable parameters; this implementation has
  32,031 for one output channel. The difference (101) is the bias layout, which the paper
  does not give: with a bias on every convolution and the 1x1x1 projection that Fig. 3
  prescribes where the residual's channel counts differ (block 1: 1 -> 30 channels, 60
  parameters) the count is 32,031; without that projection (broadcasting the single input
  channel) it is 31,971; several bias-free placements give exactly 31,930 (e.g. no biases on
  the Inception convolutions and on the output layer, projection with bias), so the number
  does not identify one layout. We keep biases everywhere (the TensorFlow default) and the
  Fig. 3 projection. The weights alone (no biases) are 31,870.
* Outputs: one channel per halo mass bin in one network (the paper trains one network per
  bin); the output layer then has ``10 * n_bins + n_bins`` parameters.
* The activation placement inside a branch is not drawn in Fig. 4; as the caption says the
  leaky ReLU comes "after the residual connection", the branches are linear.
* Initialisation is not given: PyTorch's defaults, except that the output bias starts at
  0.1 so that the output ReLU is not dead at the start (a painted field that is zero
  everywhere has zero gradient and never recovers).
* The critic sees the painted (or true) halo counts only, as in Fig. 6; ``conditional=True``
  also feeds it the centre-cropped density (an option, off by default).

Why hand-written: a 60-line torch module; no library ships this network.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bigpaint.painters.base import Painter, PainterConfig, conv_nd, crop_center

__all__ = ["HaloCritic", "HaloCriticConfig", "HaloPainter", "HaloPainterConfig"]


class HaloPainterConfig(PainterConfig):
    """Architecture of the halo painter (defaults: the paper's)."""

    in_channels: int = Field(1, ge=1)
    out_channels: int = Field(1, ge=1, description="one per halo mass bin")
    filters: int = Field(10, ge=1)
    blocks: int = Field(2, ge=1, description="residual Inception blocks")
    pointwise_layers: int = Field(4, ge=1, description="1x1x1 layers after the blocks")
    negative_slope: float = Field(0.1, ge=0)


class ResidualInception(nn.Module):
    """One residual Inception block of valid convolutions (removes 2 voxels per side)."""

    def __init__(self, cin: int, filters: int, slope: float, ndim: int) -> None:
        super().__init__()
        conv = conv_nd(ndim)
        self.branch1 = conv(cin, filters, 1)
        self.reduce3 = conv(cin, filters, 1)
        self.branch3 = conv(filters, filters, 3)
        self.reduce5 = conv(cin, filters, 1)
        self.branch5 = conv(filters, filters, 5)
        self.project = conv(cin, 3 * filters, 1) if cin != 3 * filters else None
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out5 = self.branch5(self.reduce5(x))
        size = out5.shape[2:]
        inner1 = crop_center(x, [n + 2 for n in size])
        inner0 = crop_center(x, size)
        out3 = self.branch3(self.reduce3(inner1))
        out1 = self.branch1(inner0)
        skip = inner0 if self.project is None else self.project(inner0)
        return F.leaky_relu(torch.cat([out1, out3, out5], 1) + skip, self.slope)


class HaloPainter(Painter):
    """Residual-Inception halo painter: density patch ``(B, 1, N^3)`` to halo counts
    ``(B, n_bins, (N - 8)^3)`` (valid convolutions, context 4 voxels per side)."""

    family: ClassVar[str] = "halo-painter"
    Config: ClassVar[type[PainterConfig]] = HaloPainterConfig
    config: HaloPainterConfig
    mode: ClassVar[Any] = "valid"
    spatial_ndim: ClassVar[int] = 3

    def __init__(self, config: HaloPainterConfig | None = None, *, ndim: int | None = None) -> None:
        config = config or HaloPainterConfig()
        super().__init__(config, ndim=ndim)
        f = config.filters
        blocks = []
        cin = config.in_channels
        for _ in range(config.blocks):
            blocks.append(ResidualInception(cin, f, config.negative_slope, self.ndim))
            cin = 3 * f
        self.blocks = nn.Sequential(*blocks)
        conv = conv_nd(self.ndim)
        widths = [cin] + [f] * (config.pointwise_layers - 1) + [config.out_channels]
        self.head = nn.ModuleList(conv(a, b, 1) for a, b in itertools.pairwise(widths))
        out = self.head[-1]
        assert isinstance(out.bias, torch.Tensor)  # built with a bias
        with torch.no_grad():  # keep the output ReLU alive at the start (see module docstring)
            out.bias.fill_(0.1)

    @classmethod
    def derive_context(cls, config: PainterConfig) -> int:
        """Analytic: each block's widest path is a 1x1x1 then a 5x5x5 valid convolution."""
        from bigpaint.context import receptive_field_context

        assert isinstance(config, HaloPainterConfig)
        layers = [(1, 1), (5, 1)] * config.blocks + [(1, 1)] * config.pointwise_layers
        return receptive_field_context(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)
        slope = self.config.negative_slope
        for i, layer in enumerate(self.head):
            h = layer(h)
            h = F.relu(h) if i == len(self.head) - 1 else F.leaky_relu(h, slope)
        return h


class HaloCriticConfig(PainterConfig):
    """The critic of paper Fig. 6 (for ``patch``^3 halo-count patches)."""

    in_channels: int = Field(1, ge=1, description="halo mass bins (+ 1 when conditional)")
    patch: int = Field(50, ge=19, description="side of the patches it judges, voxels (>= 19)")
    filters: tuple[int, int, int, int] = (8, 16, 32, 64)
    kernels: tuple[int, int, int, int] = (7, 5, 3, 1)
    strides: tuple[int, int, int, int] = (2, 1, 2, 1)
    negative_slope: float = Field(0.1, ge=0)


class HaloCritic(nn.Module):
    """WGAN critic of Fig. 6: four valid convolutions with leaky ReLU, then one linear unit."""

    def __init__(self, config: HaloCriticConfig | None = None) -> None:
        super().__init__()
        config = config or HaloCriticConfig()
        self.config = config
        layers: list[nn.Module] = []
        cin, n = config.in_channels, config.patch
        for f, k, s in zip(config.filters, config.kernels, config.strides, strict=True):
            layers += [nn.Conv3d(cin, f, k, stride=s), nn.LeakyReLU(config.negative_slope)]
            cin, n = f, (n - k) // s + 1
        if n < 1:
            raise ValueError(f"critic patch {config.patch} is too small for its kernels")
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(cin * n**3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, patch^3)`` to ``(B,)`` critic values."""
        return self.linear(self.features(x).flatten(1))[:, 0]
