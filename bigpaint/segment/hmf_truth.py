"""The truth a catalogue's halo mass function is judged against, and the report that judges it.

**Which truth.** ``bigpaint simulate`` writes two: the FoF catalogue (``halos.parquet``) and
the connected truth (``protohalos_connected.parquet``, :mod:`bigpaint.sim.connected_truth`):
each halo's largest face-connected Lagrangian region, the object its distance map is made
of. A segmentation yields connected regions, so FoF masses, whose Lagrangian regions are
often in pieces, are out of its reach; the connected truth is the fair reference. The kind
of a truth file is read from its metadata (or named: ``truth_kind``). The connected truth
holds every object above its ``complete_above`` mass only, so bins starting below it are
marked ``truth_complete = False`` and not judged.

:func:`hmf_report` reads a catalogue (and a truth), bins both
(:mod:`bigpaint.segment.hmf`), and writes the table and its plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bigpaint.errors import ConfigError, MetadataError
from bigpaint.segment.catalog import catalog_meta, read_catalog
from bigpaint.segment.hmf import (
    compare_mass_functions,
    mass_function,
    plot_mass_function,
)

__all__ = ["TRUTH_KINDS", "catalog_masses", "hmf_report", "truth_masses"]

#: Kinds of truth catalogue ``truth_kind`` may name (``auto``: read from the metadata).
TRUTH_KINDS = ("auto", "connected", "fof")

_KIND_TEXT = {
    "connected": "a connected-truth catalogue (protohalos_connected.parquet of bigpaint simulate)",
    "fof": "a FoF halo catalogue (halos.parquet of bigpaint simulate)",
    "catalog": "neither a connected-truth nor a FoF halo catalogue of bigpaint simulate (its "
    "metadata names neither)",
}


def catalog_masses(
    path: str | Path,
    *,
    column: str = "mass",
    box_size: float | Sequence[float] | None = None,
    table: Any = None,
) -> tuple[np.ndarray, float]:
    """Masses (Msun/h) and box volume ((Mpc/h)^3) of a Parquet catalogue.

    The box comes from ``box_size`` if given, else from the catalogue's metadata (bigpaint's
    ``bigpaint`` key, or a ``box_size`` entry in any JSON schema metadata value). ``table``
    is the file already read, if it was.
    """
    table = read_catalog(path) if table is None else table
    if column not in table.column_names:
        raise MetadataError(
            f"{path} has no {column!r} column (columns: {', '.join(table.column_names)}); "
            "name the mass column"
        )
    masses = np.asarray(table[column].to_numpy(zero_copy_only=False), dtype=np.float64)
    if box_size is None:
        box_size = _box_from_metadata(table)
        if box_size is None:
            raise MetadataError(f"{path} does not record its box size; give it (--box, Mpc/h)")
    box = np.broadcast_to(np.asarray(box_size, dtype=np.float64), (3,))
    return masses, float(np.prod(box))


def truth_masses(
    path: str | Path,
    *,
    kind: str = "auto",
    column: str = "mass",
    box_size: float | Sequence[float] | None = None,
) -> tuple[np.ndarray, float, str, float]:
    """Masses of a truth catalogue, its box volume, its kind and its completeness mass.

    Parameters
    ----------
    path : str or Path
        Parquet catalogue.
    kind : {"auto", "connected", "fof"}
        The kind the file must be; ``auto`` reads it from the metadata and also takes any
        other catalogue with a mass column (kind ``catalog``).
    column : str
        Mass column (Msun/h).
    box_size : float or sequence of 3 float, optional
        Box side(s) in Mpc/h, else from the metadata.

    Returns
    -------
    masses : numpy.ndarray
        Msun/h.
    volume : float
        (Mpc/h)^3.
    kind : str
        ``connected``, ``fof`` or ``catalog``.
    complete_above : float
        Msun/h; the truth holds every halo above it (0 but for the connected truth).

    Raises
    ------
    ConfigError
        ``kind`` is not one of :data:`TRUTH_KINDS`, or the file is of another kind.
    MetadataError
        A connected-truth file misses a column or metadata entry.
    """
    if kind not in TRUTH_KINDS:
        raise ConfigError(f"truth kind must be one of {', '.join(TRUTH_KINDS)}, got {kind!r}")
    table = read_catalog(path)
    info = catalog_meta(table)
    found = _truth_kind(info)
    if kind != "auto" and found != kind:
        other = "halos.parquet" if kind == "fof" else "protohalos_connected.parquet"
        wanted = "" if found == "catalog" else f", not {_KIND_TEXT[kind]}"
        raise ConfigError(
            f"{path} is {_KIND_TEXT[found]}{wanted}; give the simulation's {other}, or "
            "--truth-kind auto to compare with it as it is"
        )
    complete_above = 0.0
    if found == "connected":
        from bigpaint.sim.connected_truth import check_connected_truth

        complete_above = float(check_connected_truth(table, path)["complete_above"])
    masses, volume = catalog_masses(path, column=column, box_size=box_size, table=table)
    return masses, volume, found, complete_above


def _truth_kind(info: dict[str, Any]) -> str:
    """``connected``, ``fof`` or ``catalog`` from a catalogue's ``bigpaint`` metadata."""
    from bigpaint.sim.connected_truth import CONNECTED_FORMAT

    if info.get("format") == CONNECTED_FORMAT:
        return "connected"
    if "format" not in info and "particle_mass" in info:  # bigpaint.sim.fof.write_catalogue
        return "fof"
    return "catalog"


def _box_from_metadata(table: Any) -> Any:
    info = catalog_meta(table)
    if "box_size" in info:
        return info["box_size"]
    import json

    for raw in (table.schema.metadata or {}).values():
        try:
            d = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(d, dict) and "box_size" in d:
            return d["box_size"]
    return None


def hmf_report(
    catalog: str | Path,
    *,
    truth: str | Path | None = None,
    out: str | Path | None = None,
    bins: int | Sequence[float] = 12,
    column: str = "mass",
    truth_column: str = "mass",
    box_size: float | None = None,
    min_count: int = 20,
    min_mass: float = 0.0,
    truth_kind: str = "auto",
) -> tuple[xr.Dataset, list[Path]]:
    """Mass function of a catalogue (and its comparison with a truth catalogue); ``bigpaint hmf``.

    Parameters
    ----------
    catalog : str or Path
        Parquet catalogue with a mass column (Msun/h).
    truth : str or Path, optional
        Truth catalogue: the connected truth or the FoF catalogue of ``bigpaint simulate``
        (see the module docstring), or any catalogue with a mass column.
    out : str or Path, optional
        Writes ``OUT.csv`` (the table, units in the headers) and ``OUT.png``.
    bins : int or sequence of float
        Number of log-spaced bins, or edges in Msun/h.
    column, truth_column : str
        Mass columns (Msun/h).
    box_size : float, optional
        Box side in Mpc/h when the catalogues do not record it.
    min_count : int
        Truth haloes a bin needs to be judged.
    min_mass : float
        Msun/h; lighter haloes are dropped from both catalogues first (e.g. the protohalo
        mass cut, when the truth is a FoF catalogue of all haloes).
    truth_kind : {"auto", "connected", "fof"}
        The kind the truth must be (``auto``: read from its metadata).

    Returns
    -------
    ds : xarray.Dataset
        :func:`mass_function` or :func:`compare_mass_functions`; ``attrs['truth_kind']``.
    paths : list of Path
        The files written.
    """
    from bigpaint.stats.tables import write_table

    if truth is None and truth_kind != "auto":
        raise ConfigError(f"--truth-kind {truth_kind} names the kind of --truth; give --truth")
    masses, vol = catalog_masses(catalog, column=column, box_size=box_size)
    masses = masses[masses >= min_mass]
    if truth is not None:
        tmass, tvol, kind, complete_above = truth_masses(
            truth, kind=truth_kind, column=truth_column, box_size=box_size
        )
        tmass = tmass[tmass >= min_mass]
        if not np.isclose(vol, tvol, rtol=1e-6):
            raise MetadataError(
                f"the catalogue's box ({vol:.6g} (Mpc/h)^3) differs from the truth's ({tvol:.6g}); "
                "compare catalogues of the same box"
            )
        ds = compare_mass_functions(
            masses, tmass, vol, bins, min_count=min_count, truth_complete_above=complete_above
        )
        ds.attrs["truth_kind"] = kind
    else:
        ds = mass_function(masses, vol, bins)
    ds.attrs["catalog"] = str(catalog)
    ds.attrs["min_mass"] = float(min_mass)
    if truth is not None:
        ds.attrs["truth"] = str(truth)
    paths: list[Path] = []
    if out is not None:
        out = Path(out)
        csv = ds.copy()
        for flag in ("well_sampled", "truth_complete"):
            if flag in csv:
                csv[flag] = csv[flag].astype(int)
        paths.append(write_table(csv, out.with_suffix(".csv")))
        paths.append(plot_mass_function(ds, out.with_suffix(".png"), label=Path(catalog).stem))
    return ds, paths
