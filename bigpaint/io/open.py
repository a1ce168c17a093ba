"""Opening a particle catalogue by what it is: a path, an array, a dask array or a source.

:func:`open_particles` is the one entry point the commands use. It tells the format from the
argument (``.npy``, Zarr, a Gadget HDF5, SWIFT HDF5 or Gadget binary snapshot or set of
files, in-memory and dask arrays), opens the matching
:class:`~bigpaint.io.particles.ParticleSource` (the snapshot readers are
:mod:`bigpaint.io.gadget`, :mod:`bigpaint.io.swift` and :mod:`bigpaint.io.gadget_binary`),
and settles the box size between the file and the
user, refusing a conflict or a catalogue without particles. It sits above the readers so that
none imports another.

Snapshots are told by content where that is cheap: a file starting with the HDF5 signature
is HDF5 whatever its name (SWIFT when its ``Units`` group names ``U_L``, else Gadget HDF5);
a file starting with a Gadget record marker (256, or 8 before ``HEAD``, in either byte
order) is a Gadget binary snapshot, as is any file named like one (no extension, or a
file number such as ``snap_004.3``), whose reader then says why it is not one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.errors import FieldNotFoundError, ShapeError
from bigpaint.io.box_size import resolve_box_size
from bigpaint.io.gadget import GadgetSnapshot, gadget_files
from bigpaint.io.gadget_binary import GadgetBinarySnapshot, is_gadget_binary
from bigpaint.io.particles import (
    DEFAULT_BATCH_SIZE,
    ArrayParticles,
    DaskParticles,
    NpyParticles,
    ParticleSource,
    ZarrParticles,
)
from bigpaint.io.swift import SwiftSnapshot, is_swift

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
        Gadget or SWIFT HDF5 snapshot (``.hdf5``/``.h5`` file, one file of a multi-file
        set, or a ``snapdir`` directory); Gadget-2/3 binary snapshot (``snap_004``,
        ``snap_004.0``, or its directory); in-memory (N, 3) array; dask (N, 3) array.
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
        SWIFT snapshots carry their units and refuse it.

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
    kind = _snapshot_kind(path)
    if kind is not None:
        if masses is not None:
            raise ShapeError(
                "masses come from the snapshot itself; do not pass masses with a snapshot"
            )
        snap: ParticleSource
        if kind == "binary":
            snap = GadgetBinarySnapshot(
                path, ptype=ptype, length_unit=length_unit, batch_size=batch_size
            )
        elif is_swift(gadget_files(path)[0]):
            if length_unit is not None:
                raise ShapeError(
                    f"{path} is a SWIFT snapshot, whose Units group gives its length unit; "
                    "drop the length unit option"
                )
            snap = SwiftSnapshot(path, ptype=ptype, batch_size=batch_size)
        else:
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
        f"cannot tell the format of {path}: give a .npy file, a Zarr store (.zarr), a Gadget or "
        "SWIFT HDF5 snapshot (.hdf5) or a Gadget binary snapshot"
    )


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _snapshot_kind(path: str) -> str | None:
    """``"hdf5"``, ``"binary"`` or None (not a snapshot) for a path, by content and name."""
    low = path.lower().rstrip("/")
    if "://" in path or low.endswith((".npy", ".zarr")):
        return None
    p = Path(path)
    if p.is_file():
        with open(p, "rb") as fh:
            head = fh.read(8)
        if head == _HDF5_SIGNATURE or low.endswith((".hdf5", ".h5")):
            return "hdf5"
        if is_gadget_binary(p) or p.suffix == "" or p.suffix[1:].isdigit():
            return "binary"
        return None
    if p.is_dir():
        if (p / "zarr.json").exists():
            return None
        if _is_snapdir(path):
            return "hdf5"
        if any(f.suffix[1:].isdigit() for f in p.iterdir()):
            return "binary"
        return None
    if low.endswith((".hdf5", ".h5")) or _gadget_stem(path):
        return "hdf5"
    if os.path.exists(path + ".0"):
        return "binary"
    return None


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
        new = dataclasses.replace(src, box_size=box)
        return new
    src.box_size = box  # pragma: no cover - non-dataclass plugin sources
    return src
