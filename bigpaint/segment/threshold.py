"""Adaptive threshold (protohalo paper, section 4.1): trajectories, calibration, correction.

A plain watershed of a predicted distance map fills every voxel above the foreground
threshold, so regions with smeared borders come out too large, by an amount that depends on
their size. The paper corrects this per region:

1. **Trajectories.** Raising a threshold ``t_j`` inside each region traces its size
   ``V_j`` (cells with ``distance > t_j``) and mean distance. The normalized map is turned
   back into cells with the spherical approximation of eq. (4),
   ``d = d_hat * (3 V / 4 pi)^(1/3)`` with ``V`` the uncorrected size, so each region gives a
   curve ``(V_j, dbar_j)`` in cells.
2. **Calibration** against a reference halo mass function (the simulator's FoF catalogue of
   the same box): every trajectory marks the cells of a 2-D histogram over (log V, dbar)
   it passes through; for each volume bin the dbar bin whose count is closest to the number
   of reference haloes in that bin is chosen (the smallest dbar on ties: the least
   correction), and a continuous piecewise-linear function ``dbar(log10 V)`` is fitted
   through the chosen points by least squares (the paper fitted by hand).
3. **Correction.** Each region is cut at the first threshold where its trajectory reaches
   the fitted relation, ``dbar_j >= f(V_j)``; its corrected size is ``V_j``.

A calibration is tied to a grid resolution, the threshold ladder, the segmentation
parameters and the maps it was made on; :mod:`bigpaint.segment.calibration` holds the record
(:class:`~bigpaint.segment.calibration.Calibration`) and its file.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bigpaint.axes import float3, int3
from bigpaint.errors import ConfigError, MetadataError
from bigpaint.segment.calibration import Calibration

__all__ = [
    "apply_calibration",
    "calibrate",
    "check_calibration_bins",
    "check_thresholds",
    "trajectory_curves",
    "trajectory_ladder",
]


def check_thresholds(threshold: float, marker_threshold: float | None = None) -> None:
    """Refuse a foreground or marker threshold outside a distance map's range.

    A distance map is >= 0 everywhere, so a negative threshold makes every voxel foreground
    (one region filling the box) and a negative marker threshold admits the background.
    """
    for name, value in (("--threshold", threshold), ("--marker-threshold", marker_threshold)):
        if value is None:
            continue
        if not math.isfinite(value) or value < 0:
            raise ConfigError(
                f"{name} {value} is outside a distance map's range: the map is >= 0 "
                "everywhere, so it would take every voxel; give a value >= 0 (0 for true "
                "maps, e.g. 0.1 for predicted ones)"
            )


def trajectory_ladder(threshold: float, n: int) -> tuple[float, ...]:
    """The ``n`` trajectory thresholds, evenly from the foreground ``threshold`` to 1 (the
    centre of a normalized map); empty for ``n = 0``.

    Refuses (one-line ConfigError) a single threshold (a trajectory needs two points to
    calibrate) and a foreground threshold at or above 1 (the ladder would run downwards).
    """
    if n == 0:
        return ()
    if n < 2:
        raise ConfigError(
            f"--trajectories {n} records one threshold, and calibrating needs a trajectory of "
            "at least 2; give 0 (none) or e.g. 41"
        )
    if not threshold < 1.0:
        raise ConfigError(
            f"trajectories run from --threshold up to 1 (a normalized map's centre), and "
            f"--threshold {threshold} is not below 1; lower --threshold or give --trajectories 0"
        )
    return tuple(float(t) for t in np.linspace(threshold, 1.0, n))


def check_calibration_bins(
    volume_bins: int | Sequence[float], distance_bins: int, segments: int, min_count: int
) -> None:
    """Refuse calibration settings that cannot work, whatever the catalogues hold.

    The fit goes through at most one point per volume bin, so ``segments`` pieces need more
    than ``segments`` bins (with fewer, the fit would silently have fewer pieces).
    """
    n_bins = volume_bins if isinstance(volume_bins, int) else len(volume_bins) - 1
    if n_bins < 2:
        raise ConfigError(f"--volume-bins must be >= 2, got {n_bins}")
    if distance_bins < 2:
        raise ConfigError(f"--distance-bins must be >= 2, got {distance_bins}")
    if segments < 1:
        raise ConfigError(f"--segments must be >= 1, got {segments}")
    if segments >= n_bins:
        raise ConfigError(
            f"--segments {segments} needs more than {segments} volume bins (one fit point per "
            f"bin), got --volume-bins {n_bins}; give fewer segments or more volume bins"
        )
    if min_count < 1:
        raise ConfigError(f"--min-count must be >= 1, got {min_count}")


def trajectory_curves(
    volume: np.ndarray, dsum: np.ndarray, volume_raw: np.ndarray, *, normalized: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Trajectories ``(V_j, dbar_j)`` of regions, in cells.

    Parameters
    ----------
    volume : numpy.ndarray of int, (n, T)
        Cells of each region above each threshold.
    dsum : numpy.ndarray of float, (n, T)
        Summed distance over those cells (map units).
    volume_raw : numpy.ndarray of int, (n,)
        Uncorrected region sizes in cells.
    normalized : bool
        The map is normalized per object (centre = 1): scale by ``(3 V_raw / 4 pi)^(1/3)``
        (eq. 4 of the protohalo paper). False: the map is already in cells.

    Returns
    -------
    V : numpy.ndarray of float64, (n, T)
        Volumes in cells (NaN where the region has no cell above the threshold).
    dbar : numpy.ndarray of float64, (n, T)
        Mean distance in cells (NaN likewise).
    """
    v = np.asarray(volume, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(v > 0, np.asarray(dsum, dtype=np.float64) / v, np.nan)
    if normalized:
        mean = (
            mean * np.cbrt(3.0 * np.asarray(volume_raw, dtype=np.float64) / (4.0 * np.pi))[:, None]
        )
    return np.where(v > 0, v, np.nan), mean


def _visits(
    logv: np.ndarray, dbar: np.ndarray, v_edges: np.ndarray, d_edges: np.ndarray, substeps: int
) -> np.ndarray:
    """Histogram over (volume bin, distance bin) of how many trajectories pass each cell."""
    nv, nd = v_edges.size - 1, d_edges.size - 1
    hist = np.zeros((nv, nd), dtype=np.int64)
    frac = np.linspace(0.0, 1.0, substeps, endpoint=False)
    for lv, db in zip(logv, dbar, strict=True):
        ok = np.isfinite(lv) & np.isfinite(db)
        lv, db = lv[ok], db[ok]
        if lv.size == 0:
            continue
        if lv.size > 1:  # sample the polyline between the thresholds too
            xs = (lv[:-1, None] + (lv[1:] - lv[:-1])[:, None] * frac).ravel()
            ys = (db[:-1, None] + (db[1:] - db[:-1])[:, None] * frac).ravel()
            xs = np.append(xs, lv[-1])
            ys = np.append(ys, db[-1])
        else:
            xs, ys = lv, db
        iv = np.searchsorted(v_edges, xs, side="right") - 1
        idd = np.searchsorted(d_edges, ys, side="right") - 1
        inside = (iv >= 0) & (iv < nv) & (idd >= 0) & (idd < nd)
        cells = np.unique(iv[inside] * nd + idd[inside])
        hist.ravel()[cells] += 1
    return hist


def _piecewise_fit(x: np.ndarray, y: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Least-squares values at ``knots`` of the continuous piecewise-linear fit to (x, y)."""
    basis = np.stack(
        [np.interp(x, knots, np.eye(knots.size)[i]) for i in range(knots.size)], axis=1
    )
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return coef


def calibrate(
    volume: np.ndarray,
    dsum: np.ndarray,
    volume_raw: np.ndarray,
    truth_volume: np.ndarray,
    *,
    thresholds: Sequence[float],
    cell_size: Sequence[float],
    shape: Sequence[int],
    box_size: Sequence[float],
    normalized: bool = True,
    volume_bins: int | Sequence[float] = 8,
    distance_bins: int = 40,
    segments: int = 2,
    min_count: int = 5,
    substeps: int = 8,
    info: dict[str, Any] | None = None,
) -> Calibration:
    """Calibrate the adaptive threshold against a reference catalogue of the same box.

    Parameters
    ----------
    volume, dsum : numpy.ndarray, (n, T)
        Trajectories of the segmented regions (cells above each threshold, summed distance),
        e.g. the ``trajectory_volume`` and ``trajectory_sum`` of a Segmentation.
    volume_raw : numpy.ndarray, (n,)
        Uncorrected region sizes in cells.
    truth_volume : numpy.ndarray
        Reference (FoF) object sizes in cells (mass / (rho_bar * cell volume)).
    thresholds : sequence of float
        The T trajectory thresholds.
    cell_size, shape, box_size
        Resolution (Mpc/h), grid (voxels) and box (Mpc/h) of the calibration box.
    normalized : bool
        The map is per-object normalized (see :func:`trajectory_curves`).
    volume_bins : int or sequence of float
        Number of log-spaced volume bins over the reference range, or edges in cells.
    distance_bins : int
        Number of mean-distance bins over the range the trajectories cover.
    segments : int
        Pieces of the piecewise-linear fit (knots equally spaced in log10 V).
    min_count : int
        Volume bins with fewer reference objects are not used.
    substeps : int
        Samples per trajectory step when marking histogram cells.

    Returns
    -------
    Calibration
    """
    truth = np.asarray(truth_volume, dtype=np.float64)
    truth = truth[truth > 0]
    if truth.size == 0:
        raise ConfigError(
            "the reference catalogue holds no objects; calibrate against a non-empty one"
        )
    if np.asarray(volume).shape[0] == 0:
        raise ConfigError("the segmentation holds no regions; nothing to calibrate")
    if np.asarray(volume).shape[1] != len(thresholds) or len(thresholds) < 2:
        raise ConfigError(
            "calibration needs trajectories at >= 2 thresholds; segment with "
            "trajectory_thresholds (e.g. numpy.linspace(0, 1, 41))"
        )
    check_calibration_bins(volume_bins, distance_bins, segments, min_count)
    V, dbar = trajectory_curves(volume, dsum, volume_raw, normalized=normalized)
    logv = np.log10(V)
    if isinstance(volume_bins, int):
        v_edges = np.linspace(np.log10(truth.min()), np.log10(truth.max()) + 1e-9, volume_bins + 1)
    else:
        v_edges = np.log10(np.asarray(volume_bins, dtype=np.float64))
    finite = dbar[np.isfinite(dbar)]
    d_edges = np.linspace(finite.min(), finite.max() + 1e-9, distance_bins + 1)
    hist = _visits(logv, dbar, v_edges, d_edges, substeps)
    n_truth, _ = np.histogram(np.log10(truth), v_edges)
    d_centre = 0.5 * (d_edges[:-1] + d_edges[1:])
    v_centre = 0.5 * (v_edges[:-1] + v_edges[1:])
    points = []
    for i in range(v_centre.size):
        if n_truth[i] < min_count or not hist[i].any():
            continue
        k = int(np.argmin(np.abs(hist[i] - n_truth[i])))  # first minimum: least correction
        points.append((float(v_centre[i]), float(d_centre[k])))
    if len(points) < 2:
        raise ConfigError(
            f"only {len(points)} volume bins hold >= {min_count} reference objects and crossing "
            "trajectories; use fewer volume bins or a lower min_count"
        )
    px = np.array([p[0] for p in points])
    py = np.array([p[1] for p in points])
    knots = np.linspace(px.min(), px.max(), min(segments, len(points) - 1) + 1)
    values = _piecewise_fit(px, py, knots)
    return Calibration(
        log10_volume=tuple(float(k) for k in knots),
        mean_distance=tuple(float(v) for v in values),
        thresholds=tuple(float(t) for t in thresholds),
        normalized=bool(normalized),
        cell_size=float3(cell_size, "the calibration's cell size"),
        shape=int3(shape, "the calibration's grid"),
        box_size=float3(box_size, "the calibration's box size"),
        points=tuple(points),
        info={
            "volume_edges_log10": v_edges.tolist(),
            "distance_edges": d_edges.tolist(),
            "truth_counts": n_truth.tolist(),
            "regions": int(np.asarray(volume).shape[0]),
            "reference_objects": int(truth.size),
            "segments": int(segments),
            "min_count": int(min_count),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            **(info or {}),
        },
    )


def apply_calibration(
    volume: np.ndarray,
    dsum: np.ndarray,
    volume_raw: np.ndarray,
    calibration: Calibration,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrected region sizes: cut each trajectory where it reaches the fitted relation.

    Parameters
    ----------
    volume, dsum : numpy.ndarray, (n, T)
        Trajectories at ``calibration.thresholds``.
    volume_raw : numpy.ndarray, (n,)
        Uncorrected sizes in cells.
    calibration : Calibration

    Returns
    -------
    volume : numpy.ndarray of int64, (n,)
        Corrected sizes in cells: ``V_j`` at the first threshold ``j`` with
        ``dbar_j >= f(V_j)`` (with the first threshold at the foreground threshold, a region
        already on the relation keeps its raw size); the last non-empty step when the
        trajectory never reaches the relation; the raw size for a region with no cell above
        the first threshold.
    threshold : numpy.ndarray of float64, (n,)
        The threshold applied (NaN: none).
    """
    vol = np.asarray(volume)
    if vol.shape[1] != len(calibration.thresholds):
        raise MetadataError(
            f"trajectories have {vol.shape[1]} thresholds, the calibration {len(calibration.thresholds)}; "
            "segment with the calibration's thresholds"
        )
    raw = np.asarray(volume_raw, dtype=np.int64)
    V, dbar = trajectory_curves(vol, dsum, raw, normalized=calibration.normalized)
    n = vol.shape[0]
    out = raw.copy()
    thr = np.full(n, np.nan)
    if n == 0:
        return out, thr
    target = calibration.target(np.nan_to_num(V, nan=1.0))
    reached = np.isfinite(dbar) & (dbar >= target)
    has = reached.any(axis=1)
    first = np.argmax(reached, axis=1)
    nonempty = vol > 0
    last = vol.shape[1] - 1 - np.argmax(nonempty[:, ::-1], axis=1)
    j = np.where(has, first, last)
    ok = nonempty.any(axis=1)
    rows = np.flatnonzero(ok)
    cut = j[rows]
    out[rows] = vol[rows, cut]
    thr[rows] = np.asarray(calibration.thresholds)[cut]
    return out.astype(np.int64), thr
