"""Halo catalogues users bring: reading them, binning them into halo-count Fields, and
friends-of-friends halos of their snapshots."""

from bigpaint.catalogs.binning import bin_halos, wrap_positions
from bigpaint.catalogs.fof import fof_memory_bytes, snapshot_halos
from bigpaint.catalogs.readers import FORMATS, HaloTable, read_halos

__all__ = [
    "FORMATS",
    "HaloTable",
    "bin_halos",
    "fof_memory_bytes",
    "read_halos",
    "snapshot_halos",
    "wrap_positions",
]
