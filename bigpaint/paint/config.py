"""The typed config of ``bigpaint paint CONFIG.yaml`` (flags override its keys)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bigpaint.config import ClusterConfig, LocalClusterConfig
from bigpaint.painters.card import MismatchName

__all__ = ["PaintConfig", "SlabConfig"]


class SlabConfig(BaseModel):
    """Projected slabs for 2-D painters: ``axis`` (x, y, z or 0, 1, 2) and ``thickness`` in
    voxels (default: the checkpoint's training projection depth)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    axis: Literal["x", "y", "z", 0, 1, 2] = 0
    thickness: int | None = Field(None, ge=1)


class PaintConfig(BaseModel):
    """One paint job (see :func:`bigpaint.paint.paint_field` for each key's meaning).

    Attributes
    ----------
    checkpoint, input, output : str
        Checkpoint directory (or ``pretrained:NAME``), input Field, output Field (paths or
        URLs).
    chunks : int or list of 3 int, optional
        Output write blocks in voxels.
    margin : int, optional
        Seam margin per side in voxels (U-Nets).
    device : {"auto", "cpu", "cuda"}
    memory_budget : str or int, optional
        Activation bytes per forward call (``"2GiB"``).
    autocast : {None, "bf16", "fp16"}
    slab : SlabConfig, optional
    seed : int
    fixed_tile : int, optional
        Tile edge in voxels of bit-identical painting across chunkings.
    allow_mismatch : list of str
        Model-card checks to let through (``cell_size``, ``redshift``, ``cosmology``,
        ``kind``, ``mass_assignment``); recorded in the output's provenance.
    overwrite : bool
    cluster : cluster config
        ``kind: local | slurm | local-cuda`` (as ``--cluster`` files).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str
    input: str
    output: str
    chunks: int | list[int] | None = None
    margin: int | None = Field(None, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    memory_budget: str | int | None = None
    autocast: Literal["bf16", "fp16"] | None = None
    slab: SlabConfig | None = None
    seed: int = 0
    fixed_tile: int | None = Field(None, ge=1)
    allow_mismatch: list[MismatchName] = Field(default_factory=list)
    overwrite: bool = False
    cluster: ClusterConfig = Field(default_factory=LocalClusterConfig)
