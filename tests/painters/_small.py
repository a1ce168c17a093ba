"""Small painter configs that keep every structural feature of the papers, shared by the
painter and training tests, and a fixture pinning torch to one thread (shared CPUs)."""

from __future__ import annotations

import pytest
import torch

from bigpaint.painters import (
    CosmicWebConfig,
    DM2GalConfig,
    EmberUNetConfig,
    HaloPainterConfig,
    ProtohaloUNetConfig,
    build_painter,
)

#: family -> a small architecture that keeps every structural feature of the paper's
SMALL = {
    "halo-painter": HaloPainterConfig(),
    "protohalo-unet": ProtohaloUNetConfig(levels=2, filters=2),
    "dm2gal": DM2GalConfig(channels=2, hidden=8),
    "ember": EmberUNetConfig(levels=2, filters=2, noise=True),
    "cosmic-web-gan": CosmicWebConfig(
        image=32, generator_filters=(8, 8, 4, 4), discriminator_filters=(4, 4, 8, 8, 8)
    ),
}


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def small(family: str, seed: int = 0, **update):
    torch.manual_seed(seed)
    cfg = SMALL[family].model_copy(update=update) if update else SMALL[family]
    return build_painter(family, cfg)
