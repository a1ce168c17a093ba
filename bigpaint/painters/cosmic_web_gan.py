"""Cosmic-web GAN and its autoencoder (M. Ullmo, A. Decelle & N. Aghanim 2021, "Encoding
large scale cosmological structure with Generative Adversarial Networks", arXiv:2011.05244).

A 2-D DCGAN learns 128^2 log-transformed density images (eq. 2,
:class:`bigpaint.painters.base.LogLikeNorm`: ``c = 1e-3``, ``b = log 2632``); its trained
generator then serves as the frozen decoder of an autoencoder whose encoder (the
discriminator's architecture with a 100-unit linear head) is trained to minimise the
distance between the discriminator's penultimate features of an image and of its
reconstruction (eq. 7, ``L_AE = ||TD(x) - TD(G(E(x)))||^2``).

Architectures (Appendix A, Fig. A.1): 5x5 kernels, stride 2 everywhere. Generator: the
100-d latent is mapped linearly to 512 x 4 x 4, then five transposed convolutions with
256, 128, 64, 32, 1 filters (4 -> 128 pixels), ReLU, tanh output. Discriminator: five
convolutions with 32, 64, 128, 256, 512 filters (128 -> 4 pixels), leaky ReLU, then the
8192 -> 1 linear layer (sigmoid; the loss takes logits). Encoder: the discriminator's
architecture with an 8192 -> 100 linear head and no activation. Adam with lr 2e-4,
beta1 0.5 for both stages; the GAN minimises the binary cross-entropy (eq. 4) with a small
fraction of flipped labels.

As a painter (:class:`CosmicWebAutoencoder`, family ``cosmic-web-gan``) the model is the
autoencoder ``x -> G(E(x))`` on fixed 128^2 tiles (``mode="tile"``): it is a whole-image
model, not translation-equivariant, so it has no context; the engine paints it tile by tile.
The discriminator is a training partner and is saved in the training state, not in the
painter checkpoint.

Deviations, stated: "same" padding (2 pixels, output padding 1 for the transposed
convolutions) so that every layer exactly halves or doubles the size (the table's padding row
{0,0,0,0,1} does not give 128 -> 4 with 5x5 kernels); batch normalization after every hidden
layer (the DCGAN convention; the paper does not say); leaky-ReLU slope 0.2 (DCGAN); the
generator's first feature map has 512 channels (the discriminator's last width; the paper
gives no number); label flipping probability 5% (the paper: "a small noisy component").

Why hand-written: a DCGAN is a few torch layers; the encoder-through-frozen-generator
training is the paper's own construction.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator
from torch import nn

from bigpaint.painters.base import Painter, PainterConfig

__all__ = [
    "CosmicWebAutoencoder",
    "CosmicWebConfig",
    "DCGANDiscriminator",
    "DCGANGenerator",
]


class CosmicWebConfig(PainterConfig):
    """Architecture of the cosmic-web DCGAN and encoder (defaults: the paper's)."""

    in_channels: int = Field(1, ge=1)
    out_channels: int = Field(1, ge=1)
    image: int = Field(128, ge=8)
    latent: int = Field(100, ge=1)
    generator_filters: tuple[int, ...] = (256, 128, 64, 32)
    discriminator_filters: tuple[int, ...] = (32, 64, 128, 256, 512)
    kernel: int = Field(5, ge=3)
    negative_slope: float = Field(0.2, ge=0)
    batch_norm: bool = True

    @model_validator(mode="after")
    def _sizes(self) -> CosmicWebConfig:
        n = len(self.discriminator_filters)
        if len(self.generator_filters) + 1 != n:
            raise ValueError(
                "the generator has one transposed convolution per discriminator convolution: "
                f"give {n - 1} generator_filters (the last layer has out_channels filters)"
            )
        if self.image % 2**n:
            raise ValueError(f"image {self.image} must be divisible by 2^{n}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd for 'same' padding, got {self.kernel}")
        return self

    @property
    def start(self) -> int:
        """Side of the generator's first feature map (and the discriminator's last)."""
        return self.image // 2 ** len(self.discriminator_filters)


def _bn(c: int, on: bool) -> nn.Module:
    return nn.BatchNorm2d(c) if on else nn.Identity()


class DCGANGenerator(nn.Module):
    """Latent ``(B, latent)`` to an image ``(B, out, image, image)`` in ``[-1, 1]``."""

    def __init__(self, config: CosmicWebConfig) -> None:
        super().__init__()
        self.config = config
        c0 = config.discriminator_filters[-1]
        self.project = nn.Linear(config.latent, c0 * config.start**2)
        self.bn0 = _bn(c0, config.batch_norm)
        layers: list[nn.Module] = []
        widths = [c0, *config.generator_filters, config.out_channels]
        k = config.kernel
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.ConvTranspose2d(a, b, k, stride=2, padding=k // 2, output_padding=1))
            if i < len(widths) - 2:
                layers += [_bn(b, config.batch_norm), nn.ReLU()]
        layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c0, s = self.config.discriminator_filters[-1], self.config.start
        h = torch.relu(self.bn0(self.project(z).reshape(-1, c0, s, s)))
        return self.net(h)


class DCGANDiscriminator(nn.Module):
    """Image to ``head`` outputs (1 logit for the discriminator, ``latent`` for the encoder)."""

    def __init__(self, config: CosmicWebConfig, head: int = 1) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        cin = config.in_channels
        k = config.kernel
        for i, c in enumerate(config.discriminator_filters):
            layers.append(nn.Conv2d(cin, c, k, stride=2, padding=k // 2))
            if i > 0:
                layers.append(_bn(c, config.batch_norm))
            layers.append(nn.LeakyReLU(config.negative_slope))
            cin = c
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(cin * config.start**2, head)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation (``TD`` of eq. 7), ``(B, 8192)`` for the paper's sizes."""
        return self.net(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CosmicWebAutoencoder(Painter):
    """The autoencoder ``G(E(x))`` on 128^2 tiles; ``generator`` is the trained DCGAN's."""

    family: ClassVar[str] = "cosmic-web-gan"
    Config: ClassVar[type[PainterConfig]] = CosmicWebConfig
    config: CosmicWebConfig
    mode: ClassVar[Any] = "tile"
    spatial_ndim: ClassVar[int] = 2

    def __init__(self, config: CosmicWebConfig | None = None, *, ndim: int | None = None) -> None:
        config = config or CosmicWebConfig()
        super().__init__(config, ndim=ndim)
        self.generator = DCGANGenerator(config)
        self.encoder = DCGANDiscriminator(config, head=config.latent)

    @property
    def tile(self) -> int:
        return int(self.config.image)

    @property
    def alignment(self) -> int:
        return self.tile

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image ``(B, 1, 128, 128)`` (eq. 2 units) to latent ``(B, 100)``."""
        return self.encoder(x)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Latent to image (eq. 2 units, ``[-1, 1]``)."""
        return self.generator(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(self.encoder(x))
