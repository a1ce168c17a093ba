"""Painters: torch networks that paint one field from another, with the metadata the engine needs.

Five families, one per paper (each module's docstring cites it by title and arXiv id and
gives the architecture and every deviation): ``halo-painter``, ``protohalo-unet``,
``dm2gal``, ``ember`` and ``cosmic-web-gan``. :func:`build_painter` makes one from its config,
:func:`load_checkpoint` from a checkpoint directory.

A checkpoint may carry a model card (:mod:`bigpaint.painters.card`: training simulations,
cosmology, redshift, cell size, input, output, verdict), and painting refuses inputs the card
does not cover. Pretrained painters ship inside the package and are named
``pretrained:NAME`` wherever a checkpoint path goes (:mod:`bigpaint.painters.pretrained`).

The interface chunked painting relies on (:class:`Painter`): ``context`` (voxels per side,
derived from the architecture), ``alignment`` (offset granularity), ``mode`` (``"valid"``:
output = input - 2 context; ``"same"``; ``"tile"``), ``in_channels``/``out_channels``,
``ndim``, ``input_norm``/``output_norm`` with :meth:`Painter.paint` applying them around
:meth:`Painter.infer`, and :func:`paint_array`, whole-array periodic painting (the reference).
"""

from bigpaint.painters.base import (
    AffineNorm,
    EmberNorm,
    IdentityNorm,
    LogLikeNorm,
    Painter,
    PainterConfig,
    PainterMetadata,
    PowerNorm,
    apply_norms,
    invert_norms,
)
from bigpaint.painters.card import ModelCard, read_card, write_card
from bigpaint.painters.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    load_weights,
    read_metadata,
    save_checkpoint,
)
from bigpaint.painters.cosmic_web_gan import CosmicWebAutoencoder, CosmicWebConfig
from bigpaint.painters.dm2gal import DM2Gal, DM2GalConfig
from bigpaint.painters.ember import EmberUNet, EmberUNetConfig
from bigpaint.painters.halo_painter import HaloPainter, HaloPainterConfig
from bigpaint.painters.pretrained import pretrained_names, resolve_checkpoint
from bigpaint.painters.protohalo_unet import ProtohaloUNet, ProtohaloUNetConfig
from bigpaint.painters.registry import build_painter, families, painter_class, register_painter
from bigpaint.painters.whole_array import paint_array

for _cls in (HaloPainter, ProtohaloUNet, DM2Gal, EmberUNet, CosmicWebAutoencoder):
    register_painter(_cls)

__all__ = [
    "FORMAT_VERSION",
    "AffineNorm",
    "CosmicWebAutoencoder",
    "CosmicWebConfig",
    "DM2Gal",
    "DM2GalConfig",
    "EmberNorm",
    "EmberUNet",
    "EmberUNetConfig",
    "HaloPainter",
    "HaloPainterConfig",
    "IdentityNorm",
    "LogLikeNorm",
    "ModelCard",
    "Painter",
    "PainterConfig",
    "PainterMetadata",
    "PowerNorm",
    "ProtohaloUNet",
    "ProtohaloUNetConfig",
    "apply_norms",
    "build_painter",
    "families",
    "invert_norms",
    "load_checkpoint",
    "load_weights",
    "paint_array",
    "painter_class",
    "pretrained_names",
    "read_card",
    "read_metadata",
    "register_painter",
    "resolve_checkpoint",
    "save_checkpoint",
    "write_card",
]
