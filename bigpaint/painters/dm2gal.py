"""dm2gal (N. Kasmanoff, F. Villaescusa-Navarro, J. Tinker & S. Ho 2020, "dm2gal: Mapping Dark
Matter to Galaxies with Neural Networks", arXiv:2012.00186).

The network takes a two-channel 65^3 patch (dark matter and subhalo fields of the
gravity-only run) and predicts the stellar mass of the central voxel. Six blocks of
convolution + batch normalization + ReLU alternate between a large kernel (k >= 5) with
stride 1 and k = 3 with stride 2; the latent volume is flattened into two fully connected
layers (hidden ReLU, linear output).

Kernel sizes: the paper only says k >= 5. We use (7, 7, 5) for the stride-1 blocks: with them
every stride-2 layer divides its input exactly and the receptive field is exactly 65 voxels
(65 -> 59 -> 29 -> 23 -> 11 -> 7 -> 3, then the first fully connected layer sees the 3^3
latent volume), so the patch's centre voxel is the painted voxel and no input voxel is
ignored. Channel widths follow the authors' code: ``c, 2c, 2c, 4c, 4c, 8c`` with ``c``
(``channels``) the searched "capacity"; 256 hidden units.

Dense form for volume painting (:meth:`DM2Gal.infer`): evaluating the patch network at every
voxel of a 2048^3 box is hopeless, so it is rewritten as a fully convolutional network with
the same weights (the "a trous" / shift-and-stitch identity): each stride-s layer becomes a
stride-1 layer whose dilation is the product of the strides before it, the first fully
connected layer becomes a 3^3 convolution with dilation 8 (its weight reshaped to
``(256, 8c, 3, 3, 3)``, the flattening order of ``torch.flatten``), the second a 1x1x1
convolution, and batch normalization uses its running statistics. For an input of ``N``
voxels per axis the dense output has ``N - 64`` voxels, and voxel ``i`` equals the patch
network evaluated (in eval mode) on the patch centred at input voxel ``i + 32``, up to float
summation order (tested). The cost per painted voxel is that of one patch's per-voxel work
(no 65^3 recomputation).

Deviations, stated: kernel sizes (above); the paper predicts from TNG100 hydro/dark pairs,
bigpaint trains it on its own simulator's fields (a dark-matter-only mapping, see
``configs/train-dm2gal.yaml``); batch normalization makes per-patch outputs depend on the
batch in training mode, so equivalence holds in eval mode (as painting runs).

Why hand-written: the patch network is a few torch layers; the dense rewrite is the point of
this module and exists nowhere as a library.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from bigpaint.painters.base import Painter, PainterConfig, batch_norm_nd, conv_nd

__all__ = ["DM2Gal", "DM2GalConfig"]


class DM2GalConfig(PainterConfig):
    """Architecture of dm2gal (defaults: 65^3 two-channel patches, kernels 7/7/5)."""

    in_channels: int = Field(2, ge=1)
    out_channels: int = Field(1, ge=1)
    patch: int = Field(65, ge=9)
    channels: int = Field(16, ge=1, description="capacity c: widths c,2c,2c,4c,4c,8c")
    kernels: tuple[int, int, int] = (7, 7, 5)
    hidden: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _exact_chain(self) -> DM2GalConfig:
        n, rf, jump = self.patch, 1, 1
        for k in self.kernels:
            for kk, s in ((k, 1), (3, 2)):
                if kk < 1 or (n - kk) % s or n < kk:
                    raise ValueError(
                        f"patch {self.patch} with kernels {self.kernels}: a stride-{s} layer of "
                        f"kernel {kk} does not tile {n} voxels exactly; use patch 65 with (7, 7, 5)"
                    )
                n = (n - kk) // s + 1
                rf += (kk - 1) * jump
                jump *= s
        rf += (n - 1) * jump
        if rf != self.patch:
            raise ValueError(f"receptive field {rf} != patch {self.patch}; adjust kernels")
        return self

    @property
    def latent(self) -> int:
        """Side of the latent volume the first fully connected layer flattens."""
        n = self.patch
        for k in self.kernels:
            n = ((n - k + 1) - 3) // 2 + 1
        return n

    @property
    def widths(self) -> tuple[int, ...]:
        c = self.channels
        return (c, 2 * c, 2 * c, 4 * c, 4 * c, 8 * c)


class DM2Gal(Painter):
    """dm2gal patch network with an exactly equivalent dense form (:meth:`infer`)."""

    family: ClassVar[str] = "dm2gal"
    Config: ClassVar[type[PainterConfig]] = DM2GalConfig
    config: DM2GalConfig
    mode: ClassVar[Any] = "valid"
    spatial_ndim: ClassVar[int] = 3

    def __init__(self, config: DM2GalConfig | None = None, *, ndim: int | None = None) -> None:
        config = config or DM2GalConfig()
        super().__init__(config, ndim=ndim)
        conv, bn = conv_nd(self.ndim), batch_norm_nd(self.ndim)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        cin = config.in_channels
        kernels = [k for big in config.kernels for k in (big, 3)]
        for cout, k, s in zip(config.widths, kernels, (1, 2) * 3, strict=True):
            self.convs.append(conv(cin, cout, k, stride=s))
            self.norms.append(bn(cout))
            cin = cout
        self.fc1 = nn.Linear(cin * config.latent**self.ndim, config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.out_channels)

    @classmethod
    def derive_context(cls, config: PainterConfig) -> int:
        """Analytic: the chain's receptive field is the patch (65 voxels -> 32 per side)."""
        from bigpaint.context import receptive_field_context

        assert isinstance(config, DM2GalConfig)
        layers = [layer for k in config.kernels for layer in ((k, 1), (3, 2))]
        layers += [(config.latent, 1), (1, 1)]
        return receptive_field_context(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-patch network: ``(B, C, patch^3)`` to ``(B, out, 1, 1, 1)``."""
        p = self.config.patch
        if tuple(x.shape[2:]) != (p,) * self.ndim:
            from bigpaint.errors import ShapeError

            raise ShapeError(
                f"dm2gal's patch network takes {p}^{self.ndim} patches, got {tuple(x.shape[2:])}; "
                "use infer() (the dense form) for volumes"
            )
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.relu(norm(conv(x)))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x).reshape(x.shape[0], -1, *(1,) * self.ndim)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Dense form: ``(B, C, *S)`` to ``(B, out, *(S - 64))``, one prediction per voxel.

        Uses the running statistics of batch normalization (eval-mode semantics) whatever the
        module's mode.
        """
        convnd = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[self.ndim]
        jump = 1
        # ModuleList yields nn.Module: these are the layers __init__ built
        layers = zip(
            cast("Iterable[nn.Conv1d | nn.Conv2d | nn.Conv3d]", self.convs),
            cast("Iterable[nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d]", self.norms),
            strict=True,
        )
        for conv, norm in layers:
            x = convnd(x, conv.weight, conv.bias, dilation=jump)
            x = F.batch_norm(
                x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps
            )
            x = F.relu(x)
            jump *= conv.stride[0]
        n = self.config.latent
        w1 = self.fc1.weight.reshape(self.fc1.out_features, -1, *(n,) * self.ndim)
        x = F.relu(convnd(x, w1, self.fc1.bias, dilation=jump))
        w2 = self.fc2.weight.reshape(*self.fc2.weight.shape, *(1,) * self.ndim)
        return convnd(x, w2, self.fc2.bias)
