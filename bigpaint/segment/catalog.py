"""Protohalo catalogues: regions in physical units, written to and read from Parquet.

One row per watershed region. Positions are Lagrangian (the map is of the initial
conditions) in Mpc/h, wrapped into the box; volumes are in cells; masses are
``M = rho_bar * V * cell volume`` in Msun/h (protohalo paper, section 4.1), with
``rho_bar = Omega_m * rho_crit`` and ``rho_crit = 2.775e11 h^2 Msun / Mpc^3`` (that is
2.775e11 (Msun/h) / (Mpc/h)^3). Each column's units sit in its Parquet field metadata
(:mod:`bigpaint.catalog_units`); the schema metadata (key ``bigpaint``) holds the
box, grid, mean density, segmentation parameters, calibration and provenance, so a
catalogue is self-describing for :mod:`bigpaint.segment.hmf`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigpaint.catalog_units import with_units
from bigpaint.errors import (
    ConfigError,
    FieldExistsError,
    FieldNotFoundError,
    MetadataError,
)
from bigpaint.segment.calibration import Calibration
from bigpaint.segment.engine import Segmentation
from bigpaint.segment.threshold import apply_calibration

__all__ = [
    "RHO_CRIT",
    "build_catalog",
    "calibrate_catalog",
    "catalog_meta",
    "mean_density",
    "read_catalog",
    "write_catalog",
]

#: Critical density today in (Msun/h) / (Mpc/h)^3.
RHO_CRIT = 2.77536627e11

_FORMAT = "bigpaint-catalog"

UNITS = {
    "id": "1",
    "x": "Mpc/h",
    "y": "Mpc/h",
    "z": "Mpc/h",
    "peak_x": "Mpc/h",
    "peak_y": "Mpc/h",
    "peak_z": "Mpc/h",
    "volume": "cells",
    "volume_raw": "cells",
    "mass": "Msun/h",
    "mass_raw": "Msun/h",
    "peak_distance": "map units",
    "mean_distance": "map units",
    "threshold": "map units",
    "component": "1",
    "trajectory_volume": "cells",
    "trajectory_sum": "map units",
}
_VOLUME_NOTES = {
    name: "cells of the segmented map; times cell_volume ((Mpc/h)^3, in the bigpaint metadata)"
    for name in ("volume", "volume_raw", "trajectory_volume")
}


def mean_density(omega_m: float) -> float:
    """Mean matter density ``Omega_m * rho_crit`` in (Msun/h) / (Mpc/h)^3."""
    if not np.isfinite(omega_m) or omega_m <= 0:
        raise ConfigError(f"Omega_m must be > 0, got {omega_m}")
    return float(omega_m) * RHO_CRIT


def build_catalog(
    seg: Segmentation,
    *,
    box_size: Sequence[float],
    rho_bar: float,
    calibration: Calibration | None = None,
    meta: Mapping[str, Any] | None = None,
) -> pa.Table:
    """The Parquet-ready catalogue of a segmentation.

    Parameters
    ----------
    seg : Segmentation
    box_size : sequence of 3 float
        Box side lengths in Mpc/h.
    rho_bar : float
        Mean matter density in (Msun/h) / (Mpc/h)^3 (see :func:`mean_density`).
    calibration : Calibration, optional
        Adaptive-threshold correction; the segmentation must carry trajectories at its
        thresholds, and the box the calibration's resolution.
    meta : mapping, optional
        Extra metadata (input, cosmology, redshift, ...).

    Returns
    -------
    pyarrow.Table
        Columns id, x, y, z, peak_x, peak_y, peak_z [Mpc/h], volume, volume_raw [cells],
        mass, mass_raw [Msun/h], peak_distance, mean_distance, threshold [map units],
        component, and trajectory_volume / trajectory_sum lists when trajectories were taken.
    """
    box = np.asarray(box_size, dtype=np.float64).reshape(3)
    shape = np.asarray(seg.shape)
    cell = box / shape
    cell_volume = float(np.prod(cell))
    if not np.isfinite(rho_bar) or rho_bar <= 0:
        raise ConfigError(f"rho_bar must be > 0 (Msun/h)/(Mpc/h)^3, got {rho_bar}")
    volume = seg.volume.astype(np.int64)
    threshold = np.full(len(seg), np.nan)
    if calibration is not None:
        calibration.check_compatible(tuple(cell), seg.params.trajectory_thresholds)
        volume, threshold = apply_calibration(
            seg.trajectory_volume, seg.trajectory_sum, seg.volume, calibration
        )
    centre = seg.centre * cell
    peak = (seg.marker + 0.5) * cell
    cols: dict[str, Any] = {
        "id": pa.array(seg.id, pa.int64()),
        "x": centre[:, 0],
        "y": centre[:, 1],
        "z": centre[:, 2],
        "peak_x": peak[:, 0],
        "peak_y": peak[:, 1],
        "peak_z": peak[:, 2],
        "volume": pa.array(volume, pa.int64()),
        "volume_raw": pa.array(seg.volume, pa.int64()),
        "mass": rho_bar * cell_volume * volume.astype(np.float64),
        "mass_raw": rho_bar * cell_volume * seg.volume.astype(np.float64),
        "peak_distance": seg.peak_distance.astype(np.float64),
        "mean_distance": seg.mean_distance.astype(np.float64),
        "threshold": threshold,
        "component": pa.array(seg.component, pa.int64()),
    }
    t = len(seg.params.trajectory_thresholds)
    if t:
        cols["trajectory_volume"] = pa.FixedSizeListArray.from_arrays(
            pa.array(seg.trajectory_volume.ravel(), pa.int64()), t
        )
        cols["trajectory_sum"] = pa.FixedSizeListArray.from_arrays(
            pa.array(seg.trajectory_sum.ravel(), pa.float64()), t
        )
    from bigpaint.version import __version__

    info = {
        "format": _FORMAT,
        "version": 1,
        "box_size": box.tolist(),
        "shape": [int(n) for n in shape],
        "cell_size": cell.tolist(),
        "cell_volume": cell_volume,
        "rho_bar": float(rho_bar),
        "params": seg.params.as_dict(),
        "calibration": None if calibration is None else json.loads(calibration.to_json()),
        "stats": {k: (float(v) if isinstance(v, float) else v) for k, v in seg.stats.items()},
        "units": UNITS,
        "bigpaint_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **dict(meta or {}),
    }
    table = with_units(pa.table(cols), UNITS, _VOLUME_NOTES)
    schema_meta = {**table.schema.metadata, b"bigpaint": json.dumps(info, default=str).encode()}
    return table.replace_schema_metadata(schema_meta)


def catalog_meta(table: pa.Table) -> dict[str, Any]:
    """The ``bigpaint`` metadata of a catalogue table (empty dict when absent)."""
    raw = (table.schema.metadata or {}).get(b"bigpaint")
    return json.loads(raw) if raw else {}


def write_catalog(table: pa.Table, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a catalogue to Parquet atomically (a temporary file renamed into place)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FieldExistsError(
            f"output {path} already exists; choose another path or pass --overwrite"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_catalog(path: str | Path) -> pa.Table:
    """Read a Parquet catalogue (bigpaint's, or another with at least a ``mass`` column)."""
    path = Path(path)
    if not path.exists():
        raise FieldNotFoundError(f"no catalogue at {path}: the path does not exist; check the path")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MetadataError(
            f"{path} is not a Parquet catalogue ({exc}); give a .parquet file"
        ) from None


def calibrate_catalog(
    catalog: str | Path,
    truth: str | Path,
    output: str | Path | None = None,
    *,
    truth_column: str = "mass",
    volume_bins: int = 8,
    distance_bins: int = 40,
    segments: int = 2,
    min_count: int = 5,
) -> Calibration:
    """Calibrate the adaptive threshold from a catalogue with trajectories and a truth
    catalogue of the same box (``bigpaint calibrate-threshold``); save it to ``output``.

    Truth masses (Msun/h) become volumes in cells with the catalogue's ``rho_bar`` and cell
    volume, so both catalogues must describe the same box and cosmology.
    """
    from bigpaint.segment.threshold import calibrate

    table = read_catalog(catalog)
    info = catalog_meta(table)
    if info.get("format") != _FORMAT:
        raise MetadataError(f"{catalog} is not a bigpaint catalogue; segment a distance map first")
    if "trajectory_volume" not in table.column_names:
        raise ConfigError(
            f"{catalog} has no trajectories; segment with --trajectories N (e.g. 41) to calibrate"
        )
    truth_table = read_catalog(truth)
    if truth_column not in truth_table.column_names:
        raise MetadataError(f"{truth} has no {truth_column!r} column; name the mass column")
    tmass = np.asarray(truth_table[truth_column].to_numpy(zero_copy_only=False), dtype=np.float64)
    tvol = tmass / (info["rho_bar"] * info["cell_volume"])
    t = len(info["params"]["trajectory_thresholds"])

    def matrix(name: str) -> np.ndarray:
        col = table[name].combine_chunks()
        return np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(-1, t)

    cal = calibrate(
        matrix("trajectory_volume"),
        matrix("trajectory_sum"),
        table["volume_raw"].to_numpy(),
        tvol,
        thresholds=info["params"]["trajectory_thresholds"],
        cell_size=info["cell_size"],
        shape=info["shape"],
        box_size=info["box_size"],
        normalized=True,
        volume_bins=volume_bins,
        distance_bins=distance_bins,
        segments=segments,
        min_count=min_count,
        info={
            "catalog": str(catalog),
            "truth": str(truth),
            "segment_params": info["params"],
            "map": info.get("map"),
        },
    )
    if output is not None:
        cal.save(output)
    return cal
