"""A halo catalogue binned into a per-mass-bin halo-count Field, the halo painter's target.

:func:`bin_halos` counts the halos whose centre falls in each cell, one channel per mass bin
(``edge_i <= M < edge_{i+1}``, Msun/h), with :func:`bigpaint.sim.truth.halo_counts`: the
function ``bigpaint simulate`` writes its ``halo_counts.zarr`` with, so the same halos give
the same Field. The metadata is simulate's too (kind ``halo_count``, units ``halos``, NGP
mass assignment, the edges as ``provenance.mass_bins`` in Msun/h, which
:func:`bigpaint.mass_bins.mass_bins_of` reads), plus where the halos came from: the
catalogue, its format, the columns and unit factors used, and how many halos fell below,
inside and above the bins.

The box is periodic: positions are wrapped into ``[0, L)`` (halo finders write centres a
hair outside the box). Positions further than one box outside are refused: they mean a
wrong length unit, which would otherwise pile every halo into a corner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bigpaint.catalogs.readers import HaloTable
from bigpaint.errors import ConfigError, FieldExistsError, MetadataError
from bigpaint.mass_bins import MASS_UNITS

__all__ = ["bin_halos", "wrap_positions"]


def wrap_positions(pos: np.ndarray, box_size: float, where: str) -> np.ndarray:
    """Positions (Mpc/h) wrapped into ``[0, L)``; more than one box outside is refused."""
    lo, hi = float(pos.min(initial=0.0)), float(pos.max(initial=0.0))
    if lo < -box_size or hi >= 2 * box_size:
        raise MetadataError(
            f"{where}: positions reach [{lo:g}, {hi:g}] Mpc/h, far outside the {box_size:g} Mpc/h "
            "box: check the length unit (--length-unit) and the box size"
        )
    out = np.mod(pos, box_size)
    return np.where(out >= box_size, out - box_size, out)


def bin_halos(
    halos: HaloTable,
    url: str,
    *,
    grid: int,
    mass_bins: Sequence[float],
    box_size: float | None = None,
    chunks: int = 64,
    redshift: float | None = None,
    cosmology: Mapping[str, float] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the halo-count Field of ``halos`` in ``mass_bins`` to ``url``.

    Parameters
    ----------
    halos : HaloTable
        From :func:`bigpaint.catalogs.read_halos`.
    url : str
        Output Field.
    grid : int
        Cells per side.
    mass_bins : sequence of float
        Increasing edges in Msun/h.
    box_size : float, optional
        Mpc/h; required when the catalogue records none, checked against it otherwise.
    chunks : int
        Write blocks (cells per side, at most the grid).
    redshift : float, optional
        Recorded (default: the catalogue's).
    cosmology : mapping, optional
        All five parameters, recorded (default: the catalogue's when it has all five).
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    dict
        The provenance written (numbers of halos binned, below and above the bins).
    """
    from bigpaint.field import Cosmology, write_array
    from bigpaint.io.box_size import resolve_box_size
    from bigpaint.outputs import writing
    from bigpaint.sim.truth import halo_counts
    from bigpaint.store import store_exists

    where = halos.info.get("catalogue", "the catalogue")
    stored = None
    if halos.box_size is not None:  # one number (FoF, sampled) or three (protohalo catalogues)
        sides = np.atleast_1d(np.asarray(halos.box_size, np.float64)).ravel()
        if sides.size not in (1, 3) or not np.allclose(sides, sides[0], rtol=1e-9):
            raise MetadataError(
                f"{where} records a box of {list(sides)} Mpc/h; bigpaint bin counts halos on "
                "a cubic box only"
            )
        stored = (float(sides[0]),) * 3
    box = resolve_box_size(stored, box_size, where=f"the box size recorded in {where}")[0]
    edges = np.asarray(mass_bins, np.float64)
    if edges.ndim != 1 or edges.size < 2 or edges[0] <= 0 or np.any(np.diff(edges) <= 0):
        raise ConfigError(
            f"mass bins must be at least two positive, increasing edges in Msun/h, got {list(edges)}"
        )
    if not all(math.isfinite(e) for e in edges):
        raise ConfigError(f"mass bins must be finite, got {list(edges)}")
    known = dict(halos.cosmology)
    if cosmology is None and all(k in known for k in Cosmology.model_fields):
        cosmology = {k: known[k] for k in Cosmology.model_fields}
    z = redshift if redshift is not None else halos.redshift
    pos = wrap_positions(halos.pos, box, where)
    import pyarrow as pa

    table = pa.table({"mass": halos.mass, "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2]})
    counts = halo_counts(table, grid, box, list(edges))
    provenance = {
        "operation": "bin",
        **halos.info,
        "mass_bins": [float(e) for e in edges],
        "mass_units": MASS_UNITS,
        "n_halos": len(halos.mass),
        "n_below_bins": int(np.count_nonzero(halos.mass < edges[0])),
        "n_above_bins": int(np.count_nonzero(halos.mass >= edges[-1])),
        "n_binned": int(counts.sum()),
        "catalogue_cosmology": known,
    }
    meta = {
        "box_size": box,
        "kind": "halo_count",
        "units": "halos",
        "redshift": z,
        "cosmology": None if cosmology is None else dict(cosmology),
        "provenance": provenance,
        "mass_assignment": {"scheme": "NGP", "interlaced": False},
    }
    with writing({"output": url}, {"catalogue": where}):
        if store_exists(url) and not overwrite:
            raise FieldExistsError(
                f"{url} already exists; choose another output or pass --overwrite"
            )
        write_array(url, counts, chunks=min(chunks, grid), meta=meta, overwrite=overwrite)
    return provenance
