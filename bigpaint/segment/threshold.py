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

A calibration is tied to a grid resolution (the volumes are in cells), to the threshold
ladder, to the segmentation parameters it was made with (markers, merging, foreground) and
to the maps it was made on: those of one painter checkpoint, or true maps. :class:`Calibration`
records all four and refuses to be applied elsewhere, because a correction fitted to one
painter's smeared borders gives wrong masses, silently, on another's. A painter can ship its
calibration as ``calibration.json`` in its checkpoint directory; :func:`resolve_calibration`
reads a JSON file, such a directory, or ``pretrained:NAME``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.errors import ConfigError, MetadataError

__all__ = [
    "Calibration",
    "apply_calibration",
    "calibrate",
    "check_calibration_bins",
    "check_thresholds",
    "load_calibration",
    "map_source",
    "resolve_calibration",
    "trajectory_curves",
    "trajectory_ladder",
]

_FORMAT = "bigpaint-threshold-calibration"


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


@dataclass(frozen=True)
class Calibration:
    """A fitted adaptive-threshold relation ``dbar(log10 V)`` and what it is valid for.

    Attributes
    ----------
    log10_volume : tuple of float
        Knots of the piecewise-linear relation, log10 of the volume in cells.
    mean_distance : tuple of float
        Mean distance (cells) at the knots; constant beyond the end knots.
    thresholds : tuple of float
        The trajectory thresholds (map units) the calibration was made with.
    normalized : bool
        Whether the map was per-object normalized (eq. 4 scaling applied).
    cell_size : tuple of 3 float
        Cell side lengths in Mpc/h of the calibration box: the resolution it is valid for.
    shape, box_size : tuple
        Grid (voxels) and box (Mpc/h) of the calibration box, for the record.
    points : tuple of (float, float)
        The calibrated (log10 V, dbar) bin points the fit went through.
    info : dict
        Segmentation parameters, bins, counts, provenance.
    """

    log10_volume: tuple[float, ...]
    mean_distance: tuple[float, ...]
    thresholds: tuple[float, ...]
    normalized: bool
    cell_size: tuple[float, float, float]
    shape: tuple[int, int, int]
    box_size: tuple[float, float, float]
    points: tuple[tuple[float, float], ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def target(self, volume: np.ndarray) -> np.ndarray:
        """The fitted mean distance (cells) at volumes ``volume`` (cells)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.log10(np.asarray(volume, dtype=np.float64))
        return np.interp(x, self.log10_volume, self.mean_distance)

    def check_compatible(
        self, cell_size: Sequence[float], thresholds: Sequence[float] | None = None
    ) -> None:
        """Refuse a map of another resolution or a different threshold ladder."""
        if not np.allclose(cell_size, self.cell_size, rtol=1e-6, atol=0):
            raise MetadataError(
                f"the calibration was made for cells of {_fmt(self.cell_size)} Mpc/h (grid "
                f"{self.shape[0]}, box {self.box_size[0]:g} Mpc/h), this map has cells of "
                f"{_fmt(cell_size)} Mpc/h; calibrate at this resolution "
                "(bigpaint calibrate-threshold)"
            )
        if thresholds is None:
            return
        t = np.asarray(thresholds, dtype=np.float64)
        if t.shape != (len(self.thresholds),) or not np.allclose(
            t, self.thresholds, rtol=0, atol=1e-12
        ):
            raise MetadataError(
                "the calibration was made with other trajectory thresholds; segment with the "
                "calibration's thresholds (pass the calibration to segment)"
            )

    @property
    def segment_params(self) -> dict[str, Any] | None:
        """The segmentation parameters the calibration was made with (None: not recorded)."""
        params = self.info.get("segment_params")
        return dict(params) if isinstance(params, dict) else None

    def check_map(self, attrs: dict[str, Any], where: str) -> None:
        """Refuse a distance map from another source than the calibration's maps.

        ``attrs`` are the map Field's attributes; the calibration's source is
        ``info["map"]`` (see :func:`map_source`). A calibration without one (made from a
        catalogue written before maps were recorded) is not checked.
        """
        want = self.info.get("map")
        if not isinstance(want, dict):
            return
        have = map_source(attrs)
        identity = ("kind", "operation", "checkpoint_hash")  # not the painter's spelling
        if all(have.get(k) == want.get(k) for k in identity):
            return
        raise MetadataError(
            f"the calibration was made for {_describe(want)}, and {where} is "
            f"{_describe(have)}; calibrate for these maps (bigpaint calibrate-threshold) or "
            "segment without --calibration"
        )

    def to_json(self) -> str:
        d = asdict(self)
        d["format"] = _FORMAT
        d["version"] = 1
        return json.dumps(d, indent=2, default=_json_default)

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON (reused by ``bigpaint segment --calibration``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path


def _fmt(v: Sequence[float]) -> str:
    vals = {float(x) for x in v}
    return f"{vals.pop():.6g}" if len(vals) == 1 else ", ".join(f"{float(x):.6g}" for x in v)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def map_source(attrs: dict[str, Any]) -> dict[str, Any]:
    """What made a distance map, from its Field attributes: the operation, and for a painted
    map the checkpoint's hash and model-card name (the identity a calibration is tied to)."""
    prov = attrs.get("provenance") or {}
    op = prov.get("operation", "unknown")
    out: dict[str, Any] = {"kind": attrs.get("kind"), "operation": op}
    if op == "paint":
        cfg = prov.get("config") or {}
        out["checkpoint_hash"] = cfg.get("checkpoint_hash")
        out["painter"] = (prov.get("model_card") or {}).get("name") or cfg.get("checkpoint")
    return out


def _describe(src: dict[str, Any]) -> str:
    if src.get("kind") != "distance":
        return f"a Field of kind {src.get('kind')!r}, not a distance map"
    if src.get("operation") == "paint":
        h = str(src.get("checkpoint_hash") or "?")[:12]
        return f"distance maps painted by {src.get('painter')} (checkpoint {h})"
    if src.get("operation") == "simulate":
        return "true distance maps (bigpaint simulate)"
    return f"distance maps made by {src.get('operation')!r}"


#: The file a checkpoint directory ships its calibration in.
CALIBRATION_FILE = "calibration.json"


def resolve_calibration(spec: str | Path) -> Calibration:
    """Load a calibration from a JSON file, a checkpoint directory that ships one
    (``calibration.json``), or ``pretrained:NAME``; one-line errors otherwise."""
    from bigpaint.painters.pretrained import is_pretrained, resolve_checkpoint

    path = resolve_checkpoint(spec) if is_pretrained(spec) else Path(spec)
    if path.is_dir():
        if not (path / CALIBRATION_FILE).is_file():
            raise ConfigError(
                f"{spec} ships no adaptive-threshold calibration ({CALIBRATION_FILE}); give a "
                "calibration file from bigpaint calibrate-threshold"
            )
        path = path / CALIBRATION_FILE
    return load_calibration(path)


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration written by :meth:`Calibration.save`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"calibration file {path} does not exist; give the path of a saved calibration"
        )
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not a calibration file (invalid JSON: {exc.msg})") from None
    if not isinstance(d, dict) or d.get("format") != _FORMAT:
        raise ConfigError(f"{path} is not a bigpaint threshold calibration (no format '{_FORMAT}')")
    try:
        return Calibration(
            log10_volume=tuple(float(x) for x in d["log10_volume"]),
            mean_distance=tuple(float(x) for x in d["mean_distance"]),
            thresholds=tuple(float(x) for x in d["thresholds"]),
            normalized=bool(d["normalized"]),
            cell_size=tuple(float(x) for x in d["cell_size"]),  # type: ignore[arg-type]
            shape=tuple(int(x) for x in d["shape"]),  # type: ignore[arg-type]
            box_size=tuple(float(x) for x in d["box_size"]),  # type: ignore[arg-type]
            points=tuple((float(a), float(b)) for a, b in d.get("points", [])),
            info=dict(d.get("info", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: calibration file is incomplete ({exc}); recalibrate") from None


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
        cell_size=tuple(float(c) for c in cell_size),  # type: ignore[arg-type]
        shape=tuple(int(n) for n in shape),  # type: ignore[arg-type]
        box_size=tuple(float(b) for b in box_size),  # type: ignore[arg-type]
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
