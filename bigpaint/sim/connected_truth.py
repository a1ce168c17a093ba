"""The connected-truth protohalo catalogue: the reference a segmented distance map can reach.

A FoF halo traced back to the initial conditions is not one Lagrangian region: particles
accreted from afar and cells won by a larger halo cut it into pieces (numbers in
:mod:`bigpaint.sim.truth`). A segmentation of the distance map yields one connected region
per object, so FoF masses are out of its reach, and a mass function compared with them
measures the FoF definition as much as the segmentation. The fair reference is the
catalogue of the objects the distance map is made of: for each labelled halo, the largest
periodic face-connected piece of its label (:func:`bigpaint.sim.truth.connected_protohalos`,
the label image of ``protohalo_labels.zarr``), one row per object:

===============  =======  ================================================================
column           type     meaning
===============  =======  ================================================================
id               int64    the object's label in ``protohalo_labels.zarr`` (``halo_id + 1``)
halo_id          int64    row of the FoF catalogue (``halos.parquet``) it came from
n_cells          int64    cells of the connected region
mass             float64  ``n_cells * cell_mass`` in Msun/h
x, y, z          float64  Lagrangian centre in Mpc/h, periodic, in ``[0, L)``
fof_mass         float64  the FoF mass of the halo in Msun/h
fof_n_particles  int64    its FoF members
mass_fraction    float64  ``mass / fof_mass``
===============  =======  ================================================================

**Mass rule.** ``cell_mass = particle_mass * (particles / grid)^3 = rho_bar * cell volume``:
one particle per cell in Lagrangian space when the label grid is the particle grid, and
otherwise the mean mass of a cell, the same ``rho_bar * V`` rule as a segmented catalogue
(:mod:`bigpaint.segment.catalog`), so the two compare like with like.

**Centre.** The mean of the cell centres with minimum-image offsets from the region's
lowest-index cell. It is defined along an axis when the region's cells span less than half
the box along it (then the offsets are the true ones); a region that spans more gets NaN
there, counted in the metadata (``centre_undefined``), never a wrong number.

**Completeness.** Only halos with a FoF mass of at least the protohalo cut ``min_mass`` get
labels, and ``n_cells <= n_particles`` (each cell of a label holds one of its particles), so
``mass <= fof_mass * max(1, (particles / grid)^3)``: the catalogue holds every object
with ``mass >= complete_above = min_mass * max(1, (particles / grid)^3)``. Below that
objects are missing, and :mod:`bigpaint.segment.hmf` does not judge those bins. Halos above
the cut whose every cell went to a larger halo are no object of the map and get no row
(``halos_without_cells``).

The file is Parquet with its description (format, box, grid, masses, cut, cosmology,
provenance) as JSON under the schema metadata key ``bigpaint``, as the other catalogues.

Why hand-written: counting cells per label is a ``numpy.unique``, the centre a
minimum-image mean (the FoF catalogue's convention); connectivity is scipy's, through
:func:`~bigpaint.sim.truth.connected_protohalos`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigpaint.catalog_units import halo_ids, with_units
from bigpaint.errors import FieldExistsError, FieldNotFoundError, MetadataError, ShapeError
from bigpaint.sim.truth import connected_protohalos

__all__ = [
    "CONNECTED_FORMAT",
    "FILENAME",
    "check_connected_truth",
    "connected_truth",
    "read_connected_truth",
    "write_connected_truth",
]

#: ``format`` of the catalogue's ``bigpaint`` metadata.
CONNECTED_FORMAT = "bigpaint-connected-protohalos"
#: Its name in a simulation's output directory.
FILENAME = "protohalos_connected.parquet"

COLUMNS = {
    "id": "1",
    "halo_id": "1",
    "n_cells": "cells",
    "mass": "Msun/h",
    "x": "Mpc/h",
    "y": "Mpc/h",
    "z": "Mpc/h",
    "fof_mass": "Msun/h",
    "fof_n_particles": "particles",
    "mass_fraction": "1",
}

MASS_RULE = (
    "mass = n_cells * cell_mass, cell_mass = particle_mass * (particles / grid)^3 "
    "(one particle per cell when grid = particles)"
)


def connected_truth(
    labels: np.ndarray,
    catalogue: pa.Table,
    *,
    box_size: float,
    particle_mass: float,
    particles: int,
    min_mass: float,
    meta: Mapping[str, Any] | None = None,
) -> tuple[pa.Table, np.ndarray, dict[str, int]]:
    """The connected-truth catalogue of a protohalo label image.

    Parameters
    ----------
    labels : (g, g, g) int array
        Protohalo labels, ``halo_id + 1`` (0 is background), periodic; raw largest-halo-wins
        labels or already connected ones (:func:`~bigpaint.sim.truth.protohalo_labels`).
    catalogue : pyarrow.Table
        The FoF catalogue the labels name (columns ``halo_id``, ``mass`` in Msun/h,
        ``n_particles``).
    box_size : float
        Box side in Mpc/h.
    particle_mass : float
        Msun/h.
    particles : int
        Particles per side of the simulation.
    min_mass : float
        The FoF mass cut (Msun/h) the labels were made with.
    meta : mapping, optional
        Extra JSON-able metadata (redshifts, cosmology, provenance).

    Returns
    -------
    table : pyarrow.Table
        One row per object, sorted by ``id`` (columns in the module docstring), its
        description under the schema metadata key ``bigpaint``.
    labels : numpy.ndarray
        int32, the connected labels (each label one periodic face-connected region).
    pieces : dict
        The fragment statistics of :func:`~bigpaint.sim.truth.connected_protohalos`.
    """
    lab, pieces = connected_protohalos(labels)
    shape = np.asarray(lab.shape, np.int64)
    if len(set(lab.shape)) != 1:
        raise ShapeError(f"labels must be a cube (grid^3), got shape {lab.shape}")
    grid = int(shape[0])
    cell_mass = float(particle_mass) * (particles / grid) ** 3
    cells = np.flatnonzero(lab)
    which = lab.ravel()[cells].astype(np.int64)
    order = np.argsort(which, kind="stable")  # by label, then by cell index
    cells, which = cells[order], which[order]
    ids, starts, n_cells = np.unique(which, return_index=True, return_counts=True)
    xyz = np.stack(np.unravel_index(cells, lab.shape), axis=1).astype(np.int64)
    centre = np.zeros((len(ids), 3))
    span = np.zeros((len(ids), 3), np.int64)
    if len(ids):
        d = (xyz - np.repeat(xyz[starts], n_cells, axis=0) + shape // 2) % shape - shape // 2
        span = np.maximum.reduceat(d, starts, axis=0) - np.minimum.reduceat(d, starts, axis=0)
        mean = np.add.reduceat(d, starts, axis=0) / n_cells[:, None]
        centre = np.mod(xyz[starts] + mean + 0.5, shape) * (box_size / grid)
        centre = np.where(centre >= box_size, centre - box_size, centre)
    undefined = 2 * span >= shape
    centre[undefined] = np.nan

    hid = halo_ids(catalogue).to_numpy()
    fof_mass = catalogue.column("mass").to_numpy()
    fof_n = catalogue.column("n_particles").to_numpy()
    row = np.searchsorted(hid, ids - 1)
    found = len(ids) == 0 or (
        len(hid) > 0
        and bool(np.all(np.diff(hid) > 0))
        and np.array_equal(hid[np.minimum(row, len(hid) - 1)], ids - 1)
    )
    if not found:
        raise MetadataError(
            "the protohalo labels name halos the FoF catalogue does not hold (labels are "
            "halo_id + 1 of that catalogue); give the catalogue the labels were made from"
        )
    mass = n_cells * cell_mass
    above = int(np.count_nonzero(fof_mass >= min_mass))
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "halo_id": pa.array(ids - 1, pa.int64()),
            "n_cells": pa.array(n_cells.astype(np.int64)),
            "mass": pa.array(mass.astype(np.float64)),
            "x": pa.array(centre[:, 0]),
            "y": pa.array(centre[:, 1]),
            "z": pa.array(centre[:, 2]),
            "fof_mass": pa.array(fof_mass[row].astype(np.float64)),
            "fof_n_particles": pa.array(fof_n[row].astype(np.int64)),
            "mass_fraction": pa.array(mass / fof_mass[row]),
        }
    )
    info = {
        "format": CONNECTED_FORMAT,
        "version": 1,
        "box_size": [float(box_size)] * 3,
        "grid": grid,
        "particles": int(particles),
        "particle_mass": float(particle_mass),
        "cell_mass": cell_mass,
        "mass_rule": MASS_RULE,
        "min_mass": float(min_mass),
        "complete_above": float(min_mass) * max(1.0, (particles / grid) ** 3),
        "halos_above_cut": above,
        "halos_without_cells": above - len(ids),
        "centre_undefined": int(np.count_nonzero(undefined.any(axis=1))),
        "pieces": pieces,
        "units": COLUMNS,
        **dict(meta or {}),
    }
    table = with_units(table, COLUMNS)
    meta_out = {**table.schema.metadata, b"bigpaint": json.dumps(info, default=str).encode()}
    return table.replace_schema_metadata(meta_out), lab, pieces


def write_connected_truth(table: pa.Table, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the catalogue as Parquet (a temporary file renamed into place)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FieldExistsError(f"{path} already exists; choose another path or overwrite")
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def check_connected_truth(table: pa.Table, path: str | Path) -> dict[str, Any]:
    """The ``bigpaint`` metadata of a connected-truth table, after checking it is one.

    Raises
    ------
    MetadataError
        The table is not a connected-truth catalogue, or misses a column or metadata entry.
    """
    raw = (table.schema.metadata or {}).get(b"bigpaint")
    info = json.loads(raw) if raw else {}
    if info.get("format") != CONNECTED_FORMAT:
        raise MetadataError(
            f"{path} is not a connected-truth catalogue (no {CONNECTED_FORMAT!r} metadata); "
            f"give the {FILENAME} that bigpaint simulate writes"
        )
    missing = [c for c in COLUMNS if c not in table.column_names]
    missing += [k for k in ("box_size", "cell_mass", "complete_above") if k not in info]
    if missing:
        raise MetadataError(
            f"{path} is a damaged connected-truth catalogue (missing {', '.join(missing)}); "
            "write it again with bigpaint simulate"
        )
    return info


def read_connected_truth(path: str | Path) -> tuple[pa.Table, dict[str, Any]]:
    """Read a connected-truth catalogue: the table and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise FieldNotFoundError(f"no connected-truth catalogue at {path}; check the path")
    try:
        table = pq.read_table(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise MetadataError(
            f"{path} is not a Parquet catalogue ({exc}); give a .parquet file"
        ) from None
    return table, check_connected_truth(table, path)
