"""A distance-map Field to its protohalo catalogue: the resumable ``bigpaint segment`` job.

:func:`segment_field` checks the map and the options before anything is written (the
calibration fits this map and these parameters, the map has a cosmology or a ``rho_bar``,
its values can be segmented), names the job by its inputs and parameters, runs the chunked
segmentation (:func:`bigpaint.segment.segment`) with its scratch next to the output, and
writes the catalogue (:mod:`bigpaint.segment.catalog`) atomically. The same call after an
interruption resumes; on a finished catalogue of the same job it returns it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bigpaint.errors import ConfigError, FieldExistsError, FloodTooLargeError, MetadataError
from bigpaint.outputs import check_apart, job_path, owned_dir, remove_owned, writing
from bigpaint.segment.calibration import Calibration, map_source, resolve_calibration
from bigpaint.segment.catalog import (
    build_catalog,
    catalog_meta,
    mean_density,
    read_catalog,
    write_catalog,
)
from bigpaint.segment.engine import DEFAULT_MAX_FLOOD_GIB, SegmentParams, segment

__all__ = [
    "NORMALIZED_TOLERANCE",
    "calibrated_params",
    "check_map_values",
    "params_with_calibration",
    "resolve_rho_bar",
    "segment_field",
]


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
    from bigpaint.field import field_meta, open_field, zarr_array

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
    cal = resolve_calibration(calibration) if isinstance(calibration, (str, Path)) else calibration
    if cal is not None:  # it must fit this map and these parameters
        params = _calibrated(cal, given, src, meta.cell_size(shape), input)
    rho_bar = resolve_rho_bar(meta, rho_bar, input)
    check_map_values(src, params.threshold, input)
    job = _job_token(input, src, params, chunks, rho_bar, cal, labels)
    with writing({"output": output, "--labels": labels}):
        out = Path(output)
        name = f"segment-{job[:12]}"  # the scratch of this job, visible to all workers
        scratch = Path(workdir) / name if workdir else out.parent / f".{out.name}.{name}"
        check_apart({"scratch directory": scratch, "output": output, "--labels": labels}, inputs)
        if out.exists() and not overwrite:
            return _finished(out, output, job, scratch)
        if overwrite or (labels is not None and not Path(labels).exists()):
            remove_owned(scratch)  # saved blocks need their partial labels
        writer = None
        if labels is not None:
            writer = _labels_writer(src, meta, labels, input, params, chunks, overwrite)
        owned_dir(scratch, purpose="segmentation scratch")
        try:
            seg = segment(
                src, params, chunks=chunks, labels=writer, scratch=str(scratch),
                max_flood_gib=max_flood_gib, progress=progress,
            )  # fmt: skip
        except FloodTooLargeError:
            remove_owned(scratch)  # the fix is another job (threshold)
            raise
        table = _catalog(seg, src, meta, input, rho_bar, cal, labels, job)
        write_catalog(table, output, overwrite=overwrite)
        remove_owned(scratch)
        return table


def _job_token(
    input: str,
    src: Any,
    params: SegmentParams,
    chunks: int | Sequence[int] | None,
    rho_bar: float,
    cal: Calibration | None,
    labels: str | None,
) -> str:
    """The name of a segmentation job: its input (and when that was finished), parameters,
    blocks, ``rho_bar``, calibration and labels path."""
    from bigpaint.field import job_token

    return job_token(
        operation="segment-catalog",
        input=job_path(input),
        input_finished=src.attrs.get("bigpaint_finished"),
        params=params.as_dict(),
        chunks=None if chunks is None else np.broadcast_to(chunks, 3).tolist(),
        rho_bar=float(rho_bar),
        calibration=None if cal is None else cal.to_json(),
        labels=None if labels is None else job_path(labels),
    )


def _catalog(
    seg: Any,
    src: Any,
    meta: Any,
    input: str,
    rho_bar: float,
    cal: Calibration | None,
    labels: str | None,
    job: str,
) -> pa.Table:
    """The catalogue of a segmentation, with what it was made from in its metadata."""
    return build_catalog(
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


def _calibrated(
    cal: Calibration, given: SegmentParams | None, src: Any, cell: Any, input: str
) -> SegmentParams:
    """The parameters of a run with ``cal``, which must fit the map's cells and maker."""
    cal.check_compatible(cell)
    cal.check_map(dict(src.attrs), input)
    return calibrated_params(given, cal)


def _finished(out: Path, output: str, job: str, scratch: Path) -> pa.Table:
    """The catalogue already at ``out`` when this job wrote it (else refused)."""
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


def _labels_writer(
    src: Any,
    meta: Any,
    labels: str,
    input: str,
    params: SegmentParams,
    chunks: int | Sequence[int] | None,
    overwrite: bool,
) -> Any:
    """The labels Field (kind ``labels``, int64) in the blocks of the segmentation."""
    from bigpaint.field import create_field, job_token, zarr_array

    arr = zarr_array(src)
    block = chunks if chunks is not None else (getattr(arr, "shards", None) or arr.chunks)
    return create_field(
        labels,
        shape=tuple(int(n) for n in arr.shape),
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
