"""Opening a particle catalogue by what it is: a path, an array, a dask array or a source.

:func:`open_particles` is the one entry point the commands use. It tells the format from the
argument (``.npy``, Zarr, a Gadget HDF5 snapshot or set of files, in-memory and dask
arrays), opens the matching :class:`~bigpaint.io.particles.ParticleSource` (the Gadget
reader is :mod:`bigpaint.io.gadget`), and settles the box size between the file and the
user, refusing a conflict or a catalogue without particles. It sits above both readers so
that neither imports the other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.errors import FieldNotFoundError, ShapeError
from bigpaint.io.gadget import GadgetSnapshot
from bigpaint.io.particles import (
    DEFAULT_BATCH_SIZE,
    ArrayParticles,
    DaskParticles,
    NpyParticles,
    ParticleSource,
    ZarrParticles,
    resolve_box_size,
)

__all__ = ["open_particles"]


def open_particles(
    source: Any,
    *,
    box_size: float | Sequence[float] | None = None,
    masses: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    mass_units: str = "1",
    ptype: int = 1,
    length_unit: str | float | None = None,
) -> ParticleSource:
    """Open particles from a path, array or dask array, and settle the box size.

    Parameters
    ----------
    source : str, Path, numpy.ndarray, dask.array.Array or ParticleSource
        ``.npy`` file (N, 3); Zarr store (``.zarr`` or a directory holding ``zarr.json``);
        Gadget HDF5 snapshot (``.hdf5``/``.h5`` file, one file of a multi-file set, or a
        ``snapdir`` directory); in-memory (N, 3) array; dask (N, 3) array.
    box_size : float or 3 floats, optional
        Box in Mpc/h. Required when the input carries none; must agree with it otherwise.
    masses : str, array or dask array, optional
        Per-particle masses for ``.npy`` and array inputs (a ``.npy`` path for ``.npy``).
    batch_size : int
        Particles per batch.
    mass_units : str
        Units of ``masses``.
    ptype : int
        Gadget particle type (1: dark matter).
    length_unit : {"kpc/h", "Mpc/h"} or float, optional
        Gadget length unit (or factor to Mpc/h); default from the snapshot, else kpc/h.

    Returns
    -------
    ParticleSource
        With ``box_size`` set (Mpc/h).
    """
    import dask.array as da

    if isinstance(source, ParticleSource):
        src = source
        box = resolve_box_size(src.box_size, box_size, where="the particle source")
        if box != src.box_size:
            src = _with_box(src, box)
        return src
    if isinstance(source, da.Array):
        src = DaskParticles(source, masses, box_size=None, mass_units=mass_units)
        return _with_box(src, resolve_box_size(None, box_size, where="a dask array"))
    if isinstance(source, np.ndarray):
        box = resolve_box_size(None, box_size, where="an in-memory array")
        return ArrayParticles(
            source, masses, box_size=box, batch_size=batch_size, mass_units=mass_units
        )
    path = str(source)
    low = path.lower().rstrip("/")
    if low.endswith((".hdf5", ".h5")) or _is_snapdir(path) or _gadget_stem(path):
        if masses is not None:
            raise ShapeError(
                "masses come from the snapshot itself; do not pass masses with a Gadget file"
            )
        snap = GadgetSnapshot(path, ptype=ptype, length_unit=length_unit, batch_size=batch_size)
        return _with_box(
            snap, resolve_box_size(snap.box_size, box_size, where=f"the snapshot header of {path}")
        )
    if low.endswith(".npy"):
        src = NpyParticles(
            path,
            None if masses is None else str(masses),
            batch_size=batch_size,
            mass_units=mass_units,
        )
        return _with_box(
            src, resolve_box_size(None, box_size, where=f"{path} (.npy has no box size)")
        )
    if low.endswith(".zarr") or os.path.exists(os.path.join(path, "zarr.json")) or "://" in path:
        if masses is not None:
            raise ShapeError(
                "store masses in the Zarr group as 'masses'; do not pass them separately"
            )
        src = ZarrParticles(path, batch_size=batch_size)
        return _with_box(
            src,
            resolve_box_size(src.box_size, box_size, where=f"the 'box_size' attribute of {path}"),
        )
    if not os.path.exists(path):
        raise FieldNotFoundError(f"no particle file at {path}; check the path")
    raise ShapeError(
        f"cannot tell the format of {path}: give a .npy file, a Zarr store (.zarr) or a Gadget "
        "HDF5 snapshot (.hdf5)"
    )


def _is_snapdir(path: str) -> bool:
    p = Path(path)
    return p.is_dir() and not (p / "zarr.json").exists() and any(p.glob("*.hdf5"))


def _gadget_stem(path: str) -> bool:
    """``snap_004`` given for ``snap_004.hdf5`` or ``snap_004.0.hdf5``."""
    return not os.path.exists(path) and (
        os.path.exists(path + ".hdf5") or os.path.exists(path + ".0.hdf5")
    )


def _with_box(src: ParticleSource, box: tuple[float, float, float] | None) -> ParticleSource:
    import dataclasses

    if src.n_particles == 0:  # before any output exists: a deposit of nothing is no density
        ptype = getattr(src, "ptype", None)
        if ptype is not None:
            header = getattr(src, "header", {}).get("NumPart_Total", ())
            held = [str(t) for t, n in enumerate(header) if int(n) > 0]
            raise ShapeError(
                f"{src.describe()} holds no particles of type {ptype}; choose --ptype from the "
                f"types it holds ({', '.join(held) or 'none'})"
            )
        raise ShapeError(f"{src.describe()} holds no particles; give a file with particles")

    if dataclasses.is_dataclass(src) and "box_size" in {f.name for f in dataclasses.fields(src)}:
        if src.box_size == box:
            return src
        new = dataclasses.replace(src, box_size=box)  # type: ignore[type-var]
        return new
    src.box_size = box  # pragma: no cover - non-dataclass plugin sources
    return src
