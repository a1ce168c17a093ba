"""Readers for external data: particle arrays (npy, Zarr, dask) and Gadget HDF5 snapshots."""

from bigpaint.io.gadget import GadgetSnapshot, gadget_files, read_header
from bigpaint.io.open import open_particles
from bigpaint.io.particles import (
    ArrayParticles,
    Batch,
    DaskParticles,
    NpyParticles,
    ParticleSource,
    ZarrParticles,
    resolve_box_size,
)

__all__ = [
    "ArrayParticles",
    "Batch",
    "DaskParticles",
    "GadgetSnapshot",
    "NpyParticles",
    "ParticleSource",
    "ZarrParticles",
    "gadget_files",
    "open_particles",
    "read_header",
    "resolve_box_size",
]
