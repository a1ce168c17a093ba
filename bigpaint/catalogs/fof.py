"""Friends-of-friends halos of a user's snapshot, as the catalogue ``bigpaint simulate`` writes.

:func:`snapshot_halos` reads every particle of a :class:`~bigpaint.io.particles.ParticleSource`
(Gadget HDF5 or binary, SWIFT, Zarr, ``.npy``) into memory and runs the engine's own FoF
(:func:`bigpaint.sim.fof.fof_groups` and :func:`~bigpaint.sim.fof.halo_catalogue`): periodic,
linking length ``b`` times the mean interparticle separation ``L / N^(1/3)`` (exactly
``b L / n`` when ``N = n^3``, as ``simulate`` computes it), halos of at least
``min_members`` particles. The same particles give the same catalogue, columns and order
as ``simulate``'s ``halos.parquet``.

Memory. The whole snapshot is held at once: before reading a particle the job's peak is
estimated (:func:`fof_memory_bytes`) and compared with ``memory_limit`` (default: the memory
the machine has available now); above it the job is refused in one line giving the estimate
and the fix. The estimate counts the float64 positions and velocities and int64 ids with the
copies made while reading, the k-d tree, the group labels, and the friend pairs with their
sparse graph, taking ``10 (b / 0.2)^3`` pairs per particle (typical of z = 0 at ``b = 0.2``;
a snapshot far denser than that can need more).

Masses: FoF needs one particle mass, in Msun/h. It comes from the snapshot (a Gadget
``MassTable`` entry, or per-particle masses that must all be equal) or from
``particle_mass``; a snapshot without one, and no ``particle_mass``, is refused. Velocities
and ids come from the snapshot when it stores them (peculiar km/s); otherwise the catalogue's
velocities are NaN and the ids are the particles' order in the snapshot, and its metadata
says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bigpaint.catalogs.binning import wrap_positions
from bigpaint.errors import ConfigError, MetadataError, TooLargeError

__all__ = ["PAIRS_PER_PARTICLE", "fof_memory_bytes", "snapshot_halos"]

#: Friend pairs per particle assumed by the memory estimate at ``b = 0.2`` (scales as b^3).
PAIRS_PER_PARTICLE = 10.0
#: Bytes per particle held besides the pairs: float64 positions and velocities (48), int64 ids
#: (8), their reading copies (64), the k-d tree (~24) and the group labels (~40).
_BYTES_PER_PARTICLE = 184
#: Bytes per friend pair: the (i, j) int64 array (16), the COO graph (17) and its CSR (9).
_BYTES_PER_PAIR = 42


def fof_memory_bytes(n_particles: int, b: float = 0.2) -> int:
    """Estimated peak memory of :func:`snapshot_halos` on ``n_particles``, in bytes."""
    pairs = PAIRS_PER_PARTICLE * (b / 0.2) ** 3
    return int(n_particles * (_BYTES_PER_PARTICLE + _BYTES_PER_PAIR * pairs))


def _available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def _particle_mass(src: Any, masses: np.ndarray | None, given: float | None) -> float:
    """One particle mass in Msun/h, from the snapshot or ``given``; refused when unknown."""
    factor = getattr(src, "mass_to_msun_h", None)
    if factor is None and getattr(src, "mass_units", "1") == "Msun/h":
        factor = 1.0
    found = None
    if masses is not None and masses.size:
        lo, hi = float(masses.min()), float(masses.max())
        if not math.isclose(lo, hi, rel_tol=1e-6):
            raise MetadataError(
                f"{src.describe()}: particle masses range from {lo:g} to {hi:g}; FoF here needs "
                "equal-mass particles: select one particle type (--ptype) with a single mass"
            )
        found = lo
    elif src.particle_mass is not None:
        found = float(src.particle_mass)
    if found is not None:
        if factor is None:
            if given is None:
                raise MetadataError(
                    f"{src.describe()}: its masses are in {src.mass_units!r}, not Msun/h; give "
                    "--particle-mass in Msun/h"
                )
            return float(given)
        mp = found * float(factor)
        if given is not None and not math.isclose(mp, given, rel_tol=1e-4):
            raise MetadataError(
                f"--particle-mass {given:g} Msun/h disagrees with the snapshot's {mp:g} Msun/h; "
                "drop the option"
            )
        return mp
    if given is None:
        raise MetadataError(
            f"{src.describe()} records no particle mass; give --particle-mass in Msun/h "
            "(Omega_m * 2.775e11 * L^3 / N for a dark-matter-only run)"
        )
    return float(given)


def snapshot_halos(
    src: Any,
    *,
    b: float = 0.2,
    min_members: int = 20,
    particle_mass: float | None = None,
    memory_limit: int | None = None,
    redshift: float | None = None,
    cosmology: Mapping[str, float] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """FoF halos of a particle source: the catalogue table and its metadata.

    Parameters
    ----------
    src : ParticleSource
        With ``box_size`` set (:func:`bigpaint.io.open_particles`); a cubic box.
    b : float
        Linking length in mean interparticle separations.
    min_members : int
        Smallest halo kept (particles).
    particle_mass : float, optional
        Msun/h; required when the snapshot records none.
    memory_limit : int, optional
        Bytes the job may use (default: the machine's available memory).
    redshift : float, optional
        Recorded (default: the snapshot's).
    cosmology : mapping, optional
        Recorded (all five parameters); the snapshot header's partial cosmology is recorded
        separately as ``header_cosmology``.

    Returns
    -------
    table : pyarrow.Table
        The :func:`bigpaint.sim.fof.halo_catalogue` columns.
    metadata : dict
        For :func:`bigpaint.sim.fof.write_catalogue`.

    Raises
    ------
    TooLargeError
        The estimate exceeds the memory limit (before any particle is read).
    MetadataError
        Unknown or unequal particle masses, a non-cubic box, positions far outside the box.
    """
    from bigpaint.sim.fof import fof_groups, halo_catalogue

    if not 0 < b < 1:
        raise ConfigError(f"the linking length b must be in (0, 1) mean separations, got {b}")
    if min_members < 2:
        raise ConfigError(f"--min-members must be at least 2, got {min_members}")
    n = int(src.n_particles)
    box3 = src.box_size
    if len(set(box3)) != 1:
        raise MetadataError(f"{src.describe()}: FoF needs a cubic box, got {box3} Mpc/h")
    box = float(box3[0])
    need = fof_memory_bytes(n, b)
    limit = _available_bytes() if memory_limit is None else int(memory_limit)
    if need > limit:
        source = "--memory-limit" if memory_limit is not None else "available on this machine"
        raise TooLargeError(
            f"FoF of {n} particles needs about {_gib(need)} in memory, more than the "
            f"{_gib(limit)} {source}; run it on a machine with more memory, or raise "
            "--memory-limit if you know it fits"
        )
    pos_parts, mass_parts, vel_parts, id_parts = [], [], [], []
    ids_known = True
    for batch in src.batches():
        pos, mass = src.load(batch, None)
        pos_parts.append(np.asarray(pos, np.float64))
        if mass is not None:
            mass_parts.append(np.asarray(mass, np.float64))
        vel_parts.append(src.extra(batch, "velocities"))
        ids = src.extra(batch, "ids")
        ids_known = ids_known and ids is not None
        id_parts.append(ids if ids is not None else batch.start + np.arange(batch.count))
    pos = wrap_positions(np.concatenate(pos_parts), box, src.describe())
    del pos_parts
    masses = np.concatenate(mass_parts) if mass_parts else None
    mp = _particle_mass(src, masses, particle_mass)
    has_vel = all(v is not None for v in vel_parts)
    vel = np.concatenate(vel_parts) if has_vel else np.full((n, 3), np.nan)
    ids = np.concatenate(id_parts).astype(np.int64)
    del vel_parts, id_parts
    side = round(n ** (1 / 3))
    spacing = box / side if side**3 == n else box / float(np.cbrt(n))
    groups = fof_groups(pos, box, b * spacing)
    table = halo_catalogue(
        pos, vel, ids, box_size=box, particle_mass=mp, b=b, min_members=min_members, groups=groups
    )
    header: dict[str, Any] = getattr(src, "provenance", dict)()
    metadata = {
        "box_size": box,
        "particle_mass": mp,
        "redshift": redshift if redshift is not None else src.redshift,
        "linking_length_b": b,
        "min_members": min_members,
        "n_particles": n,
        "cosmology": None if cosmology is None else dict(cosmology),
        "header_cosmology": header.get("cosmology", {}),
        "header_cosmology_missing": header.get("cosmology_missing"),
        "input": src.describe(),
        "snapshot": header,
        "velocities": "peculiar km/s from the snapshot" if has_vel else "not in the snapshot (NaN)",
        "ids": "from the snapshot" if ids_known else "particle order in the snapshot",
        "operation": "fof",
    }
    return table, metadata
