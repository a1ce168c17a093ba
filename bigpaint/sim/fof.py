"""Friends-of-friends halos and their Parquet catalogue.

Two particles are friends when they are closer than the linking length ``b`` times the mean
interparticle separation (``b = 0.2``: Davis et al. 1985), with the periodic wrap; halos are
the connected components of the friendship graph with at least ``min_members`` particles.
The pairs come from ``scipy.spatial.cKDTree.query_pairs`` on the periodic box (``boxsize``)
and the components from ``scipy.sparse.csgraph.connected_components``: nothing is
hand-written but the bookkeeping.

The catalogue (:func:`halo_catalogue`) is a ``pyarrow.Table`` sorted by mass (largest first;
ties by the smallest member id), one row per halo:

=============  ===============  =====================================================
column         type             meaning
=============  ===============  =====================================================
id             int64            row index (0 = most massive)
n_particles    int64            members
mass           float64          ``n_particles * particle_mass`` in Msun/h
x, y, z        float64          centre of mass in Mpc/h, periodic, in ``[0, L)``
vx, vy, vz     float64          mean peculiar velocity in km/s
members        list<int64>      member particle ids (sorted)
=============  ===============  =====================================================

The centre of mass of a halo straddling the box edge is taken with the minimum-image
displacements from one member (halos are far smaller than ``L/2``). Catalogues are written as
Parquet with the box size, particle mass, linking length, redshift and cosmology in the file's
key-value metadata, and each column's units in its field metadata
(:mod:`bigpaint.catalog_units`; :func:`write_catalogue`, :func:`read_catalogue`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigpaint.catalog_units import HALO_UNITS, column_units, with_units
from bigpaint.errors import ConfigError, MetadataError, ShapeError

__all__ = [
    "RHO_CRIT",
    "fof_groups",
    "halo_catalogue",
    "measured_mass_function",
    "model_mass_function",
    "particle_mass",
    "read_catalogue",
    "write_catalogue",
]

#: Critical density today in (Msun/h) / (Mpc/h)^3 (colossus's ``RHO_CRIT_0_MPC3``).
RHO_CRIT = 2.77536627245708e11


def particle_mass(omega_m: float, box_size: float, n_particles: int) -> float:
    """Mass of one of ``n_particles`` equal particles filling the box, in Msun/h."""
    return float(omega_m * RHO_CRIT * box_size**3 / n_particles)


def _check_positions(positions: np.ndarray, box_size: float) -> np.ndarray:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ShapeError(f"positions must have shape (N, 3), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ShapeError("positions hold NaN or inf values")
    if pos.min(initial=0.0) < 0 or pos.max(initial=0.0) > box_size:
        raise ShapeError(
            f"positions lie outside the box [0, {box_size}] Mpc/h; wrap them periodically first"
        )
    pos = np.where(pos >= box_size, pos - box_size, pos)
    return pos


def fof_groups(positions: np.ndarray, box_size: float, linking_length: float) -> np.ndarray:
    """Friends-of-friends group of every particle (periodic).

    Parameters
    ----------
    positions : (N, 3) array
        Mpc/h, in ``[0, L]``.
    box_size : float
        Mpc/h.
    linking_length : float
        Absolute linking length in Mpc/h (``b * L / N^(1/3)``).

    Returns
    -------
    numpy.ndarray
        ``(N,)`` int64 group index per particle (singletons included), groups numbered in
        order of their first particle.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if not 0 < linking_length < box_size / 2:
        raise ConfigError(
            f"linking length must be in (0, L/2) Mpc/h, got {linking_length} for L = {box_size}"
        )
    pos = _check_positions(positions, box_size)
    n = len(pos)
    if n == 0:
        return np.zeros(0, np.int64)
    tree = cKDTree(pos, boxsize=box_size)
    pairs = tree.query_pairs(linking_length, output_type="ndarray")
    graph = coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    ).tocsr()
    del pairs
    _, labels = connected_components(graph, directed=False)
    # renumber by first occurrence: deterministic whatever csgraph's internal order
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse].astype(np.int64)


def halo_catalogue(
    positions: np.ndarray,
    velocities: np.ndarray | None,
    ids: np.ndarray | None,
    *,
    box_size: float,
    particle_mass: float,
    b: float = 0.2,
    min_members: int = 20,
    groups: np.ndarray | None = None,
) -> pa.Table:
    """Find FoF halos and build their catalogue (see the module docstring for the columns).

    Parameters
    ----------
    positions : (N, 3) array
        Mpc/h.
    velocities : (N, 3) array, optional
        Peculiar velocities in km/s (zeros when omitted).
    ids : (N,) int array, optional
        Particle ids (default ``arange(N)``).
    box_size : float
        Mpc/h.
    particle_mass : float
        Msun/h.
    b : float
        Linking length in units of the mean separation ``L / N^(1/3)``.
    min_members : int
        Smallest halo kept.
    groups : (N,) int array, optional
        Precomputed :func:`fof_groups` (else computed).

    Returns
    -------
    pyarrow.Table
    """
    pos = _check_positions(positions, box_size)
    n = len(pos)
    if min_members < 2:
        raise ConfigError(f"min_members must be at least 2, got {min_members}")
    vel = np.zeros_like(pos) if velocities is None else np.asarray(velocities, np.float64)
    pid = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    if vel.shape != pos.shape or pid.shape != (n,):
        raise ShapeError(
            f"velocities {vel.shape} and ids {pid.shape} must match positions {pos.shape}"
        )
    if groups is None:
        groups = fof_groups(pos, box_size, b * box_size / np.cbrt(n))
    counts = np.bincount(groups)
    keep = np.flatnonzero(counts >= min_members)
    member = np.isin(groups, keep)
    g = groups[member]
    p, v, i = pos[member], vel[member], pid[member]
    order = np.lexsort((i, g))  # by group, then by particle id
    g, p, v, i = g[order], p[order], v[order], i[order]
    if len(g):
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    else:
        starts = np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(g)]).astype(np.int64)
    ref = np.repeat(p[starts], sizes, axis=0)  # minimum-image offsets from the first member
    d = p - ref
    d -= box_size * np.round(d / box_size)
    com, vmean = np.zeros((len(starts), 3)), np.zeros((len(starts), 3))
    if len(g):
        com = p[starts] + np.add.reduceat(d, starts, axis=0) / sizes[:, None]
        vmean = np.add.reduceat(v, starts, axis=0) / sizes[:, None]
    com = np.mod(com, box_size)
    com = np.where(com >= box_size, com - box_size, com)
    first_id = i[starts]
    rank = np.lexsort((first_id, -sizes))  # mass descending, then smallest member id
    offsets = np.r_[starts, len(g)]
    member_lists = [i[offsets[h] : offsets[h + 1]] for h in rank]
    flat = np.concatenate(member_lists) if member_lists else np.zeros(0, np.int64)
    list_offsets = np.r_[0, np.cumsum([len(m) for m in member_lists])].astype(np.int32)
    nh = len(rank)
    return pa.table(
        {
            "id": pa.array(np.arange(nh, dtype=np.int64)),
            "n_particles": pa.array(sizes[rank].astype(np.int64)),
            "mass": pa.array(sizes[rank] * float(particle_mass)),
            "x": pa.array(com[rank, 0]),
            "y": pa.array(com[rank, 1]),
            "z": pa.array(com[rank, 2]),
            "vx": pa.array(vmean[rank, 0]),
            "vy": pa.array(vmean[rank, 1]),
            "vz": pa.array(vmean[rank, 2]),
            "members": pa.ListArray.from_arrays(pa.array(list_offsets), pa.array(flat)),
        }
    )


def write_catalogue(table: pa.Table, path: str | Path, metadata: Mapping[str, Any]) -> None:
    """Write a halo catalogue as Parquet, ``metadata`` (JSON-able) in the file's metadata.

    ``metadata`` must hold ``box_size`` (Mpc/h) and ``particle_mass`` (Msun/h).
    """
    for key in ("box_size", "particle_mass"):
        if key not in metadata:
            raise MetadataError(f"catalogue metadata needs {key!r}")
    meta = {
        b"bigpaint": json.dumps(
            {
                **dict(metadata),
                "units": column_units(with_units(table, HALO_UNITS).schema),
            },
            default=str,
        ).encode()
    }
    table = with_units(table, HALO_UNITS)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, **meta}), str(path))


def read_catalogue(path: str | Path) -> tuple[pa.Table, dict[str, Any]]:
    """Read a catalogue written by :func:`write_catalogue`: the table and its metadata."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no halo catalogue at {path}; check the path")
    table = pq.read_table(str(path))
    raw = (table.schema.metadata or {}).get(b"bigpaint")
    if raw is None:
        raise MetadataError(f"{path} is not a bigpaint halo catalogue (no 'bigpaint' metadata)")
    return table, json.loads(raw)


def measured_mass_function(
    masses: np.ndarray, box_size: float, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``dn/dln M`` of a halo sample in (h/Mpc)^3 per bin of mass ``edges`` (Msun/h).

    Returns
    -------
    m_mid : geometric bin centres (Msun/h)
    dndlnm : (h/Mpc)^3
    counts : halos per bin (for Poisson errors ``dndlnm / sqrt(counts)``)
    """
    edges = np.asarray(edges, np.float64)
    counts, _ = np.histogram(np.asarray(masses, np.float64), bins=edges)
    dln = np.diff(np.log(edges))
    return np.sqrt(edges[:-1] * edges[1:]), counts / (box_size**3 * dln), counts


def model_mass_function(
    cosmology: Any,
    masses: np.ndarray,
    redshift: float = 0.0,
    *,
    model: str = "watson13",
    mdef: str = "fof",
    edges: np.ndarray | None = None,
) -> np.ndarray:
    """``dn/dln M`` in (h/Mpc)^3 from colossus (e.g. Watson13 ``fof`` or Tinker08 ``200m``).

    With ``edges`` the bin average ``int dn/dlnM dlnM / Delta ln M`` is returned for each bin
    (comparable with :func:`measured_mass_function`), else the value at ``masses`` (Msun/h).
    """
    from colossus.cosmology import cosmology as ccosmo
    from colossus.lss import mass_function
    from scipy.integrate import trapezoid

    from bigpaint.ics.cosmology import as_cosmology, colossus_cosmology

    col = colossus_cosmology(as_cosmology(cosmology), interpolation=True)
    previous = ccosmo.current_cosmo
    ccosmo.setCurrent(col)
    try:
        if edges is None:
            return np.asarray(
                mass_function.massFunction(
                    np.asarray(masses, np.float64),
                    redshift,
                    mdef=mdef,
                    model=model,
                    q_out="dndlnM",
                ),
                np.float64,
            )
        edges = np.asarray(edges, np.float64)
        out = []
        for lo, hi in itertools.pairwise(edges):
            m = np.geomspace(lo, hi, 17)
            f = mass_function.massFunction(m, redshift, mdef=mdef, model=model, q_out="dndlnM")
            out.append(trapezoid(f, np.log(m)) / np.log(hi / lo))
        return np.asarray(out)
    finally:
        ccosmo.current_cosmo = previous
