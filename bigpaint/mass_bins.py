"""The mass-bin record of a halo-count Field: which halo masses each channel counts.

A halo-count Field holds one channel per mass bin (channel ``i`` counts halos with
``edge_i <= M < edge_{i+1}``); the edges, in Msun/h, travel in the Field's provenance as
``mass_bins`` (with ``mass_units``), and every bigpaint command that writes such a Field
records them:

============  ===================================================================
``simulate``  the ``halo_counts.mass_bins`` of its config
``paint``     those of the painter's training target, which ``bigpaint train``
              keeps in the checkpoint's provenance (:func:`training_mass_bins`)
============  ===================================================================

Two Fields compare channel by channel only when their edges agree, so statistics that
combine halo-count Fields read them with :func:`mass_bins_of` and refuse a Field without
them rather than guess. Fields written by an older ``simulate`` kept the edges only inside
the recorded config (``provenance.config.halo_counts.mass_bins``); that spelling is read too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bigpaint.errors import MetadataError

__all__ = ["MASS_UNITS", "mass_bins_of", "training_mass_bins"]

#: The unit of every mass-bin edge bigpaint records.
MASS_UNITS = "Msun/h"


def _provenance(meta: Any) -> Mapping[str, Any]:
    prov = getattr(meta, "provenance", None)
    if prov is None and isinstance(meta, Mapping):
        prov = meta.get("provenance")
    return prov if isinstance(prov, Mapping) else {}


def _recorded(prov: Mapping[str, Any]) -> tuple[Any, Any]:
    if prov.get("mass_bins") is not None:
        return prov["mass_bins"], prov.get("mass_units", MASS_UNITS)
    config = prov.get("config")
    if prov.get("operation") == "simulate" and isinstance(config, Mapping):
        counts = config.get("halo_counts")
        if isinstance(counts, Mapping) and counts.get("mass_bins") is not None:
            return counts["mass_bins"], MASS_UNITS
    return None, None


def mass_bins_of(meta: Any, where: str = "Field") -> np.ndarray | None:
    """The mass-bin edges (Msun/h) a Field records, or None when it records none.

    Parameters
    ----------
    meta : FieldMeta or mapping
        A Field's metadata (:func:`bigpaint.field.field_meta`), or a mapping with its
        ``provenance`` (e.g. a training target recorded in a checkpoint).
    where : str
        Names the Field in the error message.

    Returns
    -------
    numpy.ndarray of float64 or None
        At least two positive, increasing edges in Msun/h.

    Raises
    ------
    MetadataError
        The record holds something that is not a list of increasing positive masses, or
        masses in another unit.
    """
    edges, units = _recorded(_provenance(meta))
    if edges is None:
        return None
    if units != MASS_UNITS:
        raise MetadataError(
            f"{where}: mass bins are recorded in {units!r}; bigpaint records them in "
            f"{MASS_UNITS!r}: rewrite the Field's provenance.mass_bins in {MASS_UNITS}"
        )
    try:
        arr = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.array([math.nan])
    if (
        arr.ndim != 1
        or arr.size < 2
        or not np.all(np.isfinite(arr))
        or arr[0] <= 0
        or np.any(np.diff(arr) <= 0)
    ):
        raise MetadataError(
            f"{where}: provenance.mass_bins {edges!r} is not a list of at least two positive, "
            "increasing masses in Msun/h; rewrite the Field's record"
        )
    return arr


def training_mass_bins(targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``mass_bins`` record a painted Field inherits from its training targets.

    Parameters
    ----------
    targets : sequence of mapping
        The ``targets`` of a checkpoint's provenance (kind, units and the provenance of
        each training target Field).

    Returns
    -------
    dict
        ``{"mass_bins": [...], "mass_units": "Msun/h"}`` when every target records the same
        edges; empty when none records them, they differ, or a record is damaged (the
        painted Field then has no mass bins, and statistics that need them refuse it).
    """
    found = set()
    for t in targets:
        try:
            edges = mass_bins_of(t, "training target")
        except MetadataError:
            return {}
        found.add(None if edges is None else tuple(float(e) for e in edges))
    if len(found) != 1:
        return {}
    (common,) = found
    if common is None:
        return {}
    return {"mass_bins": list(common), "mass_units": MASS_UNITS}
