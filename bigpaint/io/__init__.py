"""Readers for external data: particle arrays (npy, Zarr, dask) and snapshots (Gadget HDF5,
Gadget-2/3 binary, SWIFT HDF5)."""

from bigpaint.io.box_size import resolve_box_size
from bigpaint.io.gadget import GadgetSnapshot, gadget_files, read_header
from bigpaint.io.gadget_binary import GadgetBinarySnapshot, binary_files
from bigpaint.io.open import open_particles
from bigpaint.io.particles import (
    ArrayParticles,
    Batch,
    DaskParticles,
    NpyParticles,
    ParticleSource,
    ZarrParticles,
)
from bigpaint.io.swift import SwiftSnapshot

__all__ = [
    "ArrayParticles",
    "Batch",
    "DaskParticles",
    "GadgetBinarySnapshot",
    "GadgetSnapshot",
    "NpyParticles",
    "ParticleSource",
    "SwiftSnapshot",
    "ZarrParticles",
    "binary_files",
    "gadget_files",
    "open_particles",
    "read_header",
    "resolve_box_size",
]
