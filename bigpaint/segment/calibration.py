"""The adaptive-threshold calibration as a record, and its file.

A calibration (fitted by :func:`bigpaint.segment.threshold.calibrate`) is tied to a grid
resolution (the volumes are in cells), to the threshold ladder, to the segmentation
parameters it was made with (markers, merging, foreground) and to the maps it was made on:
those of one painter checkpoint, or true maps. :class:`Calibration` records all four and
refuses to be applied elsewhere, because a correction fitted to one painter's smeared
borders gives wrong masses, silently, on another's. A painter can ship its calibration as
``calibration.json`` in its checkpoint directory; :func:`resolve_calibration` reads a JSON
file, such a directory, or ``pretrained:NAME``. A calibration file is JSON, read with
:mod:`json` only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.axes import float3, int3
from bigpaint.errors import ConfigError, MetadataError

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "load_calibration",
    "map_source",
    "resolve_calibration",
]

_FORMAT = "bigpaint-threshold-calibration"


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
            cell_size=float3(d["cell_size"], "the calibration's cell size"),
            shape=int3(d["shape"], "the calibration's grid"),
            box_size=float3(d["box_size"], "the calibration's box size"),
            points=tuple((float(a), float(b)) for a, b in d.get("points", [])),
            info=dict(d.get("info", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: calibration file is incomplete ({exc}); recalibrate") from None
