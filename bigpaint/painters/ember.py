"""EMBER (M. Bernardini, R. Feldmann, D. Anglés-Alcázar et al. 2022, "From EMBER to FIRE:
predicting high resolution baryon fields from dark matter simulations with Deep Learning",
arXiv:2110.11970): a 2-D U-Net with multi-scale outputs that
maps projected dark matter to projected gas (or HI), optionally stochastic (noise injection,
trained as a WGAN against a multi-scale critic).

Generator (paper Sect. 4.6, Fig. 2): level-0 block of two 3x3 convolutions (n_f = 8 filters,
leaky ReLU); each next level is reached by a 3x3 convolution with stride 2 that doubles the
filters, followed by a block of two 3x3 convolutions; ``levels`` downsamplings (the paper: 7,
"a total factor of 2^7 = 128", 8 convolution blocks). Each decoder level upsamples (nearest,
x2) and convolves (3x3, leaky ReLU), optionally adds noise ``f' = f + w * eta`` (eq. 6; one
trainable ``w`` per channel, initialised to 0, ``eta ~ N(0, 1)`` per pixel), concatenates the
skip, and applies two 3x3 convolutions; a 1x1 convolution with ReLU gives that level's
output (multi-scale outputs, MSG-GAN; their biases start at 0.1 so that no ReLU output is
dead at the start). ``forward`` returns the full-resolution output;
:meth:`EmberUNet.forward_multiscale` returns all of them (coarse to fine). Weights use the
Glorot-normal initialisation of the paper.

Critic (:class:`EmberCritic`): level 0 sees (dark matter, target) at full resolution; each
block is a 3x3 convolution and a 3x3 stride-2 convolution with leaky ReLU. At every lower
level the block input is the previous block's output concatenated with a 1x1 convolution of
the target at that scale (generated: the generator's output of that level; true: the target
average-pooled), then minibatch standard deviation (Karras et al. 2018), then the
downsampled dark matter. A final linear unit scores the flattened features.

Normalization: eq. 7 (:class:`bigpaint.painters.base.EmberNorm`) on input and target.
EMBER works on projected slabs: the sampler (``bigpaint.train.sampler``) projects slabs of
3-D Fields along random axes.

Deviations, stated: the leaky-ReLU slope is not given (0.2, as in the MSG-GAN and StyleGAN
papers EMBER follows); the upsampling operation is not specified (nearest + 3x3 conv);
noise is one map per pixel shared by the channels of a level (StyleGAN), scaled per channel;
the critic's filters double per level like the generator's encoder, capped at
``max_filters``. For painting with noise, pass position-seeded noise maps
(:meth:`EmberUNet.noise_shapes`) so that chunks agree; without them noise is drawn from
torch's generator.

Why hand-written: no library ships this generator/critic pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bigpaint.painters.base import Painter, PainterConfig, conv_nd

__all__ = [
    "EmberCritic",
    "EmberCriticConfig",
    "EmberUNet",
    "EmberUNetConfig",
    "NoiseInjection",
    "downsample_targets",
    "minibatch_std",
]


class EmberUNetConfig(PainterConfig):
    """Architecture of the EMBER generator (defaults: the paper's, 7 levels, n_f = 8)."""

    in_channels: int = Field(1, ge=1)
    out_channels: int = Field(1, ge=1)
    levels: int = Field(7, ge=1, le=10, description="stride-2 downsamplings")
    filters: int = Field(8, ge=1)
    max_filters: int | None = Field(None, ge=1)
    negative_slope: float = Field(0.2, ge=0)
    noise: bool = Field(True, description="noise injection (stochastic WGAN); False: U-Net")

    def width(self, level: int) -> int:
        w = self.filters * 2**level
        return min(w, self.max_filters) if self.max_filters else w


def _init_glorot(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, slope: float, ndim: int) -> None:
        super().__init__()
        conv = conv_nd(ndim)
        self.conv1 = conv(cin, cout, 3, padding=1)
        self.conv2 = conv(cout, cout, 3, padding=1)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), self.slope)), self.slope)


class NoiseInjection(nn.Module):
    """``f + w * eta`` with one trainable ``w`` per channel and ``eta`` one N(0,1) map per pixel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn((x.shape[0], 1, *x.shape[2:]), device=x.device, dtype=x.dtype)
        return x + self.weight.view(1, -1, *(1,) * (x.ndim - 2)) * noise


class EmberUNet(Painter):
    """EMBER generator: 2-D U-Net with multi-scale outputs and optional noise injection."""

    family: ClassVar[str] = "ember"
    Config: ClassVar[type[PainterConfig]] = EmberUNetConfig
    config: EmberUNetConfig
    mode: ClassVar[Any] = "same"
    spatial_ndim: ClassVar[int] = 2

    def __init__(self, config: EmberUNetConfig | None = None, *, ndim: int | None = None) -> None:
        config = config or EmberUNetConfig()
        super().__init__(config, ndim=ndim)
        nd, s = self.ndim, config.negative_slope
        conv = conv_nd(nd)
        self.first = _Block(config.in_channels, config.width(0), s, nd)
        self.downs = nn.ModuleList()
        self.encoders = nn.ModuleList()
        for level in range(1, config.levels + 1):
            self.downs.append(
                conv(config.width(level - 1), config.width(level), 3, stride=2, padding=1)
            )
            self.encoders.append(_Block(config.width(level), config.width(level), s, nd))
        self.ups = nn.ModuleList()
        self.noises = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.outputs = nn.ModuleList()
        for level in reversed(range(config.levels)):
            c = config.width(level)
            self.ups.append(conv(config.width(level + 1), c, 3, padding=1))
            self.noises.append(NoiseInjection(c) if config.noise else nn.Identity())
            self.decoders.append(_Block(2 * c, c, s, nd))
            self.outputs.append(conv(c, config.out_channels, 1))
        _init_glorot(self)
        with torch.no_grad():  # keep the ReLU outputs alive at the start
            for out in self.outputs:
                assert isinstance(out.bias, torch.Tensor)  # built with a bias
                out.bias.fill_(0.1)

    @property
    def alignment(self) -> int:
        return 2 ** int(self.config.levels)

    @classmethod
    def probe_config(cls, config: PainterConfig) -> PainterConfig:
        return config.model_copy(
            update={
                "filters": 1,
                "max_filters": None,
                "in_channels": 1,
                "out_channels": 1,
                "noise": False,
            }
        )

    def noise_shapes(self, shape: Sequence[int], batch: int = 1) -> list[tuple[int, ...]]:
        """Shapes of the noise maps :meth:`forward_multiscale` takes, coarse to fine."""
        levels = int(self.config.levels)
        return [(batch, 1, *(n // 2**lv for n in shape)) for lv in reversed(range(levels))]

    def forward_multiscale(
        self, x: torch.Tensor, noise: Sequence[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """All decoder outputs, coarse (``S / 2^(levels-1)``) to fine (``S``).

        ``noise``: one map per decoder level (:meth:`noise_shapes`); drawn when omitted.
        """
        slope = self.config.negative_slope
        skips = [self.first(x)]
        h = skips[0]
        for down, enc in zip(self.downs, self.encoders, strict=True):
            h = enc(F.leaky_relu(down(h), slope))
            skips.append(h)
        skips.pop()
        outs = []
        for i, (up, inj, dec, out) in enumerate(
            zip(self.ups, self.noises, self.decoders, self.outputs, strict=True)
        ):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = F.leaky_relu(up(h), slope)
            if isinstance(inj, NoiseInjection):
                h = inj(h, None if noise is None else noise[i])
            h = dec(torch.cat([h, skips.pop()], 1))
            outs.append(F.relu(out(h)))
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_multiscale(x)[-1]


def minibatch_std(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append the minibatch standard deviation feature (Karras et al. 2018).

    Within groups of ``group`` samples (the largest divisor of the batch not above it), the
    standard deviation of every feature and pixel over the group is averaged to one number
    per group and appended as a constant channel.
    """
    b = x.shape[0]
    g = max(d for d in range(1, min(group, b) + 1) if b % d == 0)
    y = x.reshape(g, -1, *x.shape[1:])
    std = torch.sqrt(y.var(0, unbiased=False) + 1e-8).mean(
        dim=tuple(range(1, y.ndim - 1)), keepdim=True
    )
    std = std.repeat(g, 1, *x.shape[2:])
    return torch.cat([x, std.reshape(b, 1, *x.shape[2:])], 1)


class EmberCriticConfig(PainterConfig):
    """The multi-scale critic (MSG-GAN style) with minibatch standard deviation."""

    dm_channels: int = Field(1, ge=1)
    target_channels: int = Field(1, ge=1)
    levels: int = Field(7, ge=1, description="scales it reads (the generator's levels)")
    image: int = Field(512, ge=8, description="side of the images it judges, pixels")
    filters: int = Field(8, ge=1)
    max_filters: int | None = Field(256, ge=1)
    negative_slope: float = Field(0.2, ge=0)
    mbstd_group: int = Field(4, ge=1)

    def width(self, level: int) -> int:
        w = self.filters * 2**level
        return min(w, self.max_filters) if self.max_filters else w


class EmberCritic(nn.Module):
    """Multi-scale conditional critic: scores (dark matter, target at every scale)."""

    def __init__(self, config: EmberCriticConfig | None = None) -> None:
        super().__init__()
        config = config or EmberCriticConfig()
        self.config = config
        s = config.negative_slope
        self.blocks = nn.ModuleList()
        self.from_target = nn.ModuleList()
        for level in range(config.levels):
            if level == 0:
                cin = config.dm_channels + config.target_channels
            else:
                self.from_target.append(
                    nn.Conv2d(config.target_channels, config.width(level - 1), 1)
                )
                cin = 2 * config.width(level - 1) + 1 + config.dm_channels
            self.blocks.append(
                nn.Sequential(
                    nn.Conv2d(cin, config.width(level), 3, padding=1),
                    nn.LeakyReLU(s),
                    nn.Conv2d(config.width(level), config.width(level), 3, stride=2, padding=1),
                    nn.LeakyReLU(s),
                )
            )
        side = config.image // 2**config.levels
        if side < 1 or config.image % 2**config.levels:
            raise ValueError(f"critic image {config.image} is not divisible by 2^{config.levels}")
        self.linear = nn.Linear(config.width(config.levels - 1) * side * side, 1)
        _init_glorot(self)

    def forward(self, dm: torch.Tensor, targets: Sequence[torch.Tensor]) -> torch.Tensor:
        """``dm`` at full resolution, ``targets`` coarse to fine (as the generator gives them).

        Returns ``(B,)`` critic values.
        """
        fine_first = list(reversed(targets))
        if len(fine_first) != self.config.levels:
            raise ValueError(f"critic reads {self.config.levels} scales, got {len(fine_first)}")
        h = self.blocks[0](torch.cat([dm, fine_first[0]], 1))
        for level in range(1, self.config.levels):
            t = self.from_target[level - 1](fine_first[level])
            z = minibatch_std(torch.cat([h, t], 1), self.config.mbstd_group)
            d = F.avg_pool2d(dm, 2**level)
            h = self.blocks[level](torch.cat([z, d], 1))
        return self.linear(h.flatten(1))[:, 0]


def downsample_targets(target: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """True targets at the generator's scales, coarse to fine (average pooling by 2^l)."""
    return [F.avg_pool2d(target, 2**lv) if lv else target for lv in reversed(range(levels))]
