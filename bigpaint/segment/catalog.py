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
    FloodTooLargeError,
    MetadataError,
)
from bigpaint.outputs import check_apart, job_path, owned_dir, remove_owned, writing
from bigpaint.segment.engine import DEFAULT_MAX_FLOOD_GIB, Segmentation, SegmentParams, segment
from bigpaint.segment.threshold import (
    Calibration,
    apply_calibration,
    map_source,
    resolve_calibration,
)

__all__ = [
    "RHO_CRIT",
    "build_catalog",
    "calibrate_catalog",
    "catalog_meta",
    "mean_density",
    "read_catalog",
    "segment_field",
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
    meta = {**table.schema.metadata, b"bigpaint": json.dumps(info, default=str).encode()}
    return table.replace_schema_metadata(meta)


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


def resolve_rho_bar(meta: Any, rho_bar: float | None, input: str) -> float:
    """``rho_bar`` in (Msun/h)/(Mpc/h)^3, or ``Omega_m rho_crit`` of the Field's cosmology."""
    if rho_bar is not None:
        return float(rho_bar)
    if meta.cosmology is None:
        raise MetadataError(
            f"{input} carries no cosmology, so masses cannot be computed; give rho_bar "
            "(--rho-bar, in (Msun/h)/(Mpc/h)^3)"
        )
    return mean_density(meta.cosmology.Omega_m)


def calibrated_params(params: SegmentParams | None, calibration: Calibration) -> SegmentParams:
    """The segmentation parameters of a calibrated run: the calibration's own.

    A correction fitted with one set of markers, merging and foreground is wrong for the
    regions of another, so ``params`` that differ from the calibration's (trajectory
    thresholds aside) are refused; None takes the calibration's. A calibration that does not
    record its parameters (older files) applies to ``params`` with its thresholds.
    """
    made = calibration.segment_params
    if made is None:
        base = params or SegmentParams()
        return SegmentParams(**{**base.__dict__, "trajectory_thresholds": calibration.thresholds})
    want = SegmentParams(**{**made, "trajectory_thresholds": tuple(calibration.thresholds)})
    if params is not None:
        have = {k: v for k, v in params.as_dict().items() if k != "trajectory_thresholds"}
        diff = [
            f"{k} {have[k]!r} (calibrated with {v!r})"
            for k, v in want.as_dict().items()
            if k != "trajectory_thresholds" and have.get(k) != v
        ]
        if diff:
            raise ConfigError(
                f"the calibration was made with other segmentation parameters: {', '.join(diff)}; "
                "drop those options (a calibration brings its own) or recalibrate"
            )
    return want


def params_with_calibration(calibration: Calibration, given: Mapping[str, Any]) -> SegmentParams:
    """The parameters of a calibrated run from the options a user set explicitly.

    ``given`` holds only the :class:`SegmentParams` fields the user set (CLI flags typed,
    pipeline keys written); the others come from the calibration. Differences from the
    calibration's are refused by :func:`calibrated_params`.
    """
    made = calibration.segment_params
    typed = {k: v for k, v in given.items() if k != "trajectory_thresholds"}
    if made is None:
        return SegmentParams(**{**typed, "trajectory_thresholds": tuple(calibration.thresholds)})
    if "threshold" in typed and typed.get("marker_threshold") is None:
        typed["marker_threshold"] = made["marker_threshold"]
    params = SegmentParams(
        **{**made, **typed, "trajectory_thresholds": tuple(calibration.thresholds)}
    )
    return calibrated_params(params, calibration)


def check_map_values(src: Any, threshold: float, where: str) -> None:
    """Refuse a map that cannot be segmented, before anything is written.

    One pass over the Field (a dask reduction, on the cluster when one is open) finds its
    range: a per-object normalized map (kind ``distance``, units ``1``) must lie in
    ``[0, 1]`` (a small float tolerance above 1), and some voxel must lie above the
    foreground ``threshold``. NaN, inf and negative values are refused block by block by the
    engine, naming the voxel.
    """
    import dask.array as da

    arr = src[src.attrs["bigpaint_variable"]].data
    lo, hi = (float(v) for v in da.compute(da.nanmin(arr), da.nanmax(arr)))
    normalized = src.attrs.get("kind") == "distance" and str(src.attrs.get("units")) == "1"
    if normalized and hi > 1.0 + NORMALIZED_TOLERANCE:
        raise ConfigError(
            f"{where} holds values up to {hi:.4g}, and a per-object normalized distance map "
            "lies in [0, 1]: give a normalized map (true maps and protohalo painters' "
            "paintings are), or a map in cells with its units set to 'cells'"
        )
    if not hi > threshold:
        raise ConfigError(
            f"{where} has no voxel above the foreground threshold {threshold:g} (its values "
            f"span [{lo:.4g}, {hi:.4g}]), so there is nothing to segment; lower --threshold "
            "or check the map"
        )


#: How far above 1 a normalized map may reach (float rounding of the normalization).
NORMALIZED_TOLERANCE = 1e-5


def segment_field(
    input: str,
    output: str,
    params: SegmentParams | None = None,
    *,
    calibration: str | Calibration | None = None,
    labels: str | None = None,
    rho_bar: float | None = None,
    chunks: int | Sequence[int] | None = None,
    overwrite: bool = False,
    workdir: str | None = None,
    max_flood_gib: float | None = DEFAULT_MAX_FLOOD_GIB,
    progress: bool = False,
) -> pa.Table:
    """Segment a distance-map Field and write its protohalo catalogue (``bigpaint segment``).

    Resumable: the run keeps its finished blocks in a scratch directory named by the job
    (input, parameters, blocks, calibration, ``rho_bar``, labels path) next to ``output``
    (or under ``workdir``), so the same call after an interruption skips them (see
    :func:`bigpaint.segment.segment`). The catalogue is written atomically, then the
    scratch removed; the same call on a finished catalogue of this job returns it.

    Parameters
    ----------
    input : str
        Path or URL of a Field of kind ``distance``.
    output : str
        Parquet catalogue to write.
    params : SegmentParams, optional
        With a calibration, its trajectory thresholds replace ``params``'s.
    calibration : str or Calibration, optional
        Adaptive-threshold calibration (JSON from ``bigpaint calibrate-threshold``); it must
        be for this map's resolution.
    labels : str, optional
        Also write the region labels as a Field (kind ``labels``, int64) here.
    rho_bar : float, optional
        Mean density in (Msun/h)/(Mpc/h)^3; default ``Omega_m * rho_crit`` from the Field's
        cosmology.
    chunks : int or sequence of 3 int, optional
        Block size in voxels; default the Field's chunks.
    overwrite : bool
        Replace existing outputs.
    workdir : str, optional
        Where the resumable scratch goes, visible to all workers (default: next to
        ``output``).
    max_flood_gib : float or None
        Memory budget of flooding one component (see :func:`bigpaint.segment.segment`).

    Returns
    -------
    pyarrow.Table
        The catalogue written.
    """
    from bigpaint.field import create_field, field_meta, job_token, open_field, zarr_array

    given = params
    params = params or SegmentParams()
    inputs = {
        "input": input,
        "calibration": calibration if isinstance(calibration, (str, Path)) else None,
    }
    check_apart({"output": output, "--labels": labels}, inputs)
    src = open_field(input)
    meta = field_meta(src)
    shape = tuple(int(n) for n in zarr_array(src).shape)
    cell = meta.cell_size(shape)
    cal = resolve_calibration(calibration) if isinstance(calibration, (str, Path)) else calibration
    if cal is not None:
        cal.check_compatible(cell)
        cal.check_map(dict(src.attrs), input)
        params = calibrated_params(given, cal)
    rho_bar = resolve_rho_bar(meta, rho_bar, input)
    check_map_values(src, params.threshold, input)
    job = job_token(
        operation="segment-catalog",
        input=job_path(input),
        input_finished=src.attrs.get("bigpaint_finished"),
        params=params.as_dict(),
        chunks=None if chunks is None else np.broadcast_to(chunks, 3).tolist(),
        rho_bar=float(rho_bar),
        calibration=None if cal is None else cal.to_json(),
        labels=None if labels is None else job_path(labels),
    )
    with writing({"output": output, "--labels": labels}):
        out = Path(output)
        scratch = (
            Path(workdir) / f"segment-{job[:12]}"
            if workdir
            else out.parent / f".{out.name}.segment-{job[:12]}"
        )
        check_apart({"scratch directory": scratch, "output": output, "--labels": labels}, inputs)
        if out.exists() and not overwrite:
            try:
                done = catalog_meta(read_catalog(out)).get("job") == job
            except MetadataError:
                done = False
            if not done:
                raise FieldExistsError(
                    f"output {output} already exists (written by another job); choose another "
                    "path or pass --overwrite"
                )
            remove_owned(scratch)  # a run killed while cleaning up
            return read_catalog(out)
        if overwrite or (labels is not None and not Path(labels).exists()):
            remove_owned(scratch)  # saved blocks need their partial labels
        writer = None
        if labels is not None:
            arr = zarr_array(src)
            block = chunks if chunks is not None else (getattr(arr, "shards", None) or arr.chunks)
            writer = create_field(
                labels,
                shape=shape,
                chunks=block,
                meta=meta.model_copy(
                    update={
                        "kind": "labels",
                        "units": "1",
                        "provenance": {
                            "operation": "segment",
                            "inputs": [str(input)],
                            "config": params.as_dict(),
                        },
                    }
                ),
                dtype="i8",
                job=job_token(operation="segment", input=job_path(input), params=params.as_dict()),
                overwrite=overwrite,
            )
        owned_dir(scratch, purpose="segmentation scratch")
        try:
            seg = segment(
                src, params, chunks=chunks, labels=writer, scratch=str(scratch),
                max_flood_gib=max_flood_gib, progress=progress,
            )  # fmt: skip
        except FloodTooLargeError:
            remove_owned(scratch)  # the fix is another job (threshold)
            raise
        table = build_catalog(
            seg,
            box_size=meta.box_size,
            rho_bar=rho_bar,
            calibration=cal,
            meta={
                "input": str(input),
                "input_finished": src.attrs.get("bigpaint_finished"),
                "redshift": meta.redshift,
                "cosmology": None if meta.cosmology is None else meta.cosmology.model_dump(),
                "labels": labels,
                "job": job,
                "map": map_source(dict(src.attrs)),
            },
        )
        write_catalog(table, output, overwrite=overwrite)
        remove_owned(scratch)
        return table


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
