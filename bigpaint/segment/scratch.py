"""Typed block results of the chunked segmentation, and the resumable scratch that keeps them.

Two passes of :func:`bigpaint.segment.segment` return one result per block: the block pass
a :class:`BlockResult` (markers, the foreground pieces and their boxes, and the
:class:`RegionSums` of the regions it flooded itself), the flood pass a
:class:`FloodResult` (the sums of the regions it finished). With a scratch directory each
result is also kept as a *record*, so that a rerun skips the blocks already done.

Record format (:data:`VERSION`)::

    scratch/
        job.json                 {"format", "version", "job": shape, blocks, parameters}
        faces.zarr/              seam faces of the block pass (written by the engine)
        blocks/<i>_<j>_<k>.npz   a BlockResult
        flood/<i>_<j>_<k>.npz    a FloodResult

A record is an uncompressed ZIP archive: ``meta.json`` (format name, version, kind, block
index, scalar fields in seconds, and the dtype and shape of every array) and one ``.npy``
member per array. Nothing in it is code: arrays are read with ``numpy.load(...,
allow_pickle=False)`` and metadata with :mod:`json`, so a file planted in the scratch
(which sits next to the output, shared by every worker) executes nothing. Only the record
names of the blocks of the run are ever opened; any other file is never read.

Writing goes to a temporary name in the same directory, then :func:`os.replace`: a killed
writer leaves a stray temporary file, never a half record under its final name. Reading
checks the ZIP CRC-32 of every member, the format and version, the kind and block index,
every dtype and shape, and the run's trajectory width and merging; a record that fails
(missing, truncated, damaged, of another version, a leftover of a machine crash) is
deleted and its block recomputed, with one log line per pass. A damaged scratch therefore
costs recomputation, never a failing rerun or a wrong result. Deliberately forged records
with consistent contents are out of reach of any check short of signing them; whoever can
write the scratch can equally write the outputs.

Why not pickle: loading a pickle runs code. Why not Parquet: a record holds arrays of
several lengths (markers, pieces, regions, basin pairs), and ``.npy`` keeps each with its
exact dtype, so a resumed run is bitwise the uninterrupted one.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar

import numpy as np

from bigpaint.errors import ConfigError

__all__ = [
    "FORMAT",
    "VERSION",
    "BlockResult",
    "FloodResult",
    "RecordError",
    "RegionSums",
    "clear",
    "discard",
    "load_done",
    "open_scratch",
    "read_record",
    "record_path",
    "save",
    "write_record",
]

log = logging.getLogger(__name__)

#: Format name written into every record and ``job.json``.
FORMAT = "bigpaint-segment-scratch"
#: Record format version; a record of another version is dropped and recomputed.
VERSION = 1

STAGES = ("blocks", "flood")
_NAME = re.compile(r"^\d+_\d+_\d+\.npz(\.[0-9a-f]{32}\.tmp)?$")


class RecordError(ValueError):
    """A scratch record is unreadable or invalid (caught by :func:`load_done`, which drops it)."""


# ---------------------------------------------------------------- validation


def _check(name: str, a: Any, dtype: type, shape: Sequence[int | None]) -> np.ndarray:
    """``a`` as-is when it is an ndarray of exactly ``dtype`` and ``shape`` (None: any)."""
    if not isinstance(a, np.ndarray):
        raise RecordError(f"{name} is a {type(a).__name__}, not an array")
    if a.dtype != np.dtype(dtype):
        raise RecordError(f"{name} has dtype {a.dtype}, expected {np.dtype(dtype)}")
    if a.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, a.shape, strict=True)
    ):
        raise RecordError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    return a


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{name} is {value!r}, not a number of seconds")
    if not (math.isfinite(value) and value >= 0):
        raise RecordError(f"{name} is {value!r} seconds")
    return float(value)


# ---------------------------------------------------------------- the typed results


@dataclass(frozen=True)
class RegionSums:
    """Per-region sums over one block (added over blocks by the engine's reduction).

    Attributes
    ----------
    ids : numpy.ndarray of int64, (k,)
        Region labels (``1 +`` the marker's global linear voxel index), sorted.
    count : numpy.ndarray of int64, (k,)
        Voxels of each region in the block.
    offset : numpy.ndarray of float64, (k, 3)
        Summed minimum-image offsets of the voxels from the marker, voxels.
    dsum, dmax : numpy.ndarray of float64, (k,)
        Sum and maximum of the distance over the region's voxels (distance units).
    hist_n : numpy.ndarray of int64, (k, w)
        Voxels per trajectory bin (``w = T + 1`` with ``T`` thresholds, else 1 column of 0).
    hist_s : numpy.ndarray of float64, (k, w)
        Summed distance per trajectory bin.
    saddles : tuple of 3 numpy.ndarray or None
        With merging by dynamics: basin pairs ``a < b`` (int64) and their highest saddle
        (float64, distance units); None without merging.
    """

    ids: np.ndarray
    count: np.ndarray
    offset: np.ndarray
    dsum: np.ndarray
    dmax: np.ndarray
    hist_n: np.ndarray
    hist_s: np.ndarray
    saddles: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        k = _check("ids", self.ids, np.int64, (None,)).shape[0]
        _check("count", self.count, np.int64, (k,))
        _check("offset", self.offset, np.float64, (k, 3))
        _check("dsum", self.dsum, np.float64, (k,))
        _check("dmax", self.dmax, np.float64, (k,))
        w = _check("hist_n", self.hist_n, np.int64, (k, None)).shape[1]
        if w < 1:
            raise RecordError("hist_n has no column")
        _check("hist_s", self.hist_s, np.float64, (k, w))
        if self.saddles is not None:
            if not isinstance(self.saddles, tuple) or len(self.saddles) != 3:
                raise RecordError("saddles must be a tuple (a, b, saddle)")
            e = _check("saddles.a", self.saddles[0], np.int64, (None,)).shape[0]
            _check("saddles.b", self.saddles[1], np.int64, (e,))
            _check("saddles.saddle", self.saddles[2], np.float64, (e,))

    @property
    def width(self) -> int:
        """Columns of the trajectory histograms."""
        return int(self.hist_n.shape[1])

    _ARRAYS: ClassVar[tuple[str, ...]] = (
        "ids", "count", "offset", "dsum", "dmax", "hist_n", "hist_s",
    )  # fmt: skip
    _SADDLES: ClassVar[tuple[str, ...]] = ("saddle_a", "saddle_b", "saddle_h")

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays of a record, named ``prefix + field``."""
        out = {prefix + n: getattr(self, n) for n in self._ARRAYS}
        if self.saddles is not None:
            out.update({prefix + n: a for n, a in zip(self._SADDLES, self.saddles, strict=True)})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> RegionSums:
        """Inverse of :meth:`to_arrays` (validated)."""
        missing = [n for n in cls._ARRAYS if prefix + n not in arrays]
        if missing:
            raise RecordError(f"missing arrays {missing}")
        has = [prefix + n in arrays for n in cls._SADDLES]
        if any(has) and not all(has):
            raise RecordError("incomplete basin saddles")
        saddles = tuple(arrays[prefix + n] for n in cls._SADDLES) if all(has) else None
        return cls(*(arrays[prefix + n] for n in cls._ARRAYS), saddles=saddles)  # type: ignore[arg-type]

    def with_saddles(self, saddles: tuple[np.ndarray, np.ndarray, np.ndarray]) -> RegionSums:
        return replace(self, saddles=saddles)


@dataclass(frozen=True)
class BlockResult:
    """What the block pass learns about one block.

    Attributes
    ----------
    markers : numpy.ndarray of int64, (m,)
        Global linear voxel indices of the markers in the block's core, sorted.
    marker_piece : numpy.ndarray of int64, (m,)
        Name of the foreground piece holding each marker.
    pieces : numpy.ndarray of int64, (n,)
        Names of the block's foreground pieces (``1 +`` smallest global voxel index).
    counts : numpy.ndarray of int64, (n,)
        Voxels per piece.
    lo, hi : numpy.ndarray of int64, (n, 3)
        Bounding box of each piece, global voxel coordinates, ``hi`` exclusive.
    touch : numpy.ndarray of bool, (n,)
        Whether the piece touches a face of the block (else it was flooded here).
    sums : RegionSums
        Sums of the regions of the interior pieces, flooded in this pass.
    seconds : float
        Time the task took, s.
    """

    markers: np.ndarray
    marker_piece: np.ndarray
    pieces: np.ndarray
    counts: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    touch: np.ndarray
    sums: RegionSums
    seconds: float

    KIND: ClassVar[str] = "block"
    _ARRAYS: ClassVar[tuple[str, ...]] = (
        "markers", "marker_piece", "pieces", "counts", "lo", "hi", "touch",
    )  # fmt: skip

    def __post_init__(self) -> None:
        m = _check("markers", self.markers, np.int64, (None,)).shape[0]
        _check("marker_piece", self.marker_piece, np.int64, (m,))
        n = _check("pieces", self.pieces, np.int64, (None,)).shape[0]
        _check("counts", self.counts, np.int64, (n,))
        _check("lo", self.lo, np.int64, (n, 3))
        _check("hi", self.hi, np.int64, (n, 3))
        _check("touch", self.touch, np.bool_, (n,))
        if not isinstance(self.sums, RegionSums):
            raise RecordError("sums must be RegionSums")
        _seconds("seconds", self.seconds)

    def to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able scalars, named arrays) of the record."""
        arrays = {n: getattr(self, n) for n in self._ARRAYS}
        arrays.update(self.sums.to_arrays("sums."))
        return {"seconds": self.seconds}, arrays

    @classmethod
    def from_record(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> BlockResult:
        """Inverse of :meth:`to_record` (validated)."""
        missing = [n for n in cls._ARRAYS if n not in arrays]
        if missing or "seconds" not in scalars:
            raise RecordError(f"missing fields {missing or ['seconds']}")
        return cls(
            *(arrays[n] for n in cls._ARRAYS),
            sums=RegionSums.from_arrays(arrays, "sums."),
            seconds=_seconds("seconds", scalars["seconds"]),
        )


@dataclass(frozen=True)
class FloodResult:
    """What the flood pass returns for one block.

    Attributes
    ----------
    sums : RegionSums
        Sums of the regions this block finished (its face-touching local pieces and the
        parts of spanning components inside it).
    seconds : float
        Time the block task took, s.
    span_seconds : float
        Time spent flooding the spanning groups anchored in this block, s.
    """

    sums: RegionSums
    seconds: float
    span_seconds: float

    KIND: ClassVar[str] = "flood"

    def __post_init__(self) -> None:
        if not isinstance(self.sums, RegionSums):
            raise RecordError("sums must be RegionSums")
        _seconds("seconds", self.seconds)
        _seconds("span_seconds", self.span_seconds)

    def to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able scalars, named arrays) of the record."""
        scalars = {"seconds": self.seconds, "span_seconds": self.span_seconds}
        return scalars, self.sums.to_arrays("sums.")

    @classmethod
    def from_record(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> FloodResult:
        """Inverse of :meth:`to_record` (validated)."""
        if "seconds" not in scalars or "span_seconds" not in scalars:
            raise RecordError("missing seconds")
        return cls(
            RegionSums.from_arrays(arrays, "sums."),
            seconds=_seconds("seconds", scalars["seconds"]),
            span_seconds=_seconds("span_seconds", scalars["span_seconds"]),
        )


Result = BlockResult | FloodResult
R = TypeVar("R", BlockResult, FloodResult)
_KINDS: dict[str, type[BlockResult] | type[FloodResult]] = {
    "blocks": BlockResult,
    "flood": FloodResult,
}


# ---------------------------------------------------------------- one record file


def _tmp_name(path: str) -> str:
    return f"{path}.{uuid.uuid4().hex}.tmp"  # unique across hosts sharing the scratch


def _replace_atomically(path: str, write: Any) -> None:
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_record(path: str, result: Result, index: Sequence[int]) -> None:
    """Write ``result`` of block ``index`` to ``path`` atomically."""
    scalars, arrays = result.to_record()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "kind": result.KIND,
        "index": [int(i) for i in index],
        "scalars": scalars,
        "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape)} for n, a in arrays.items()},
    }

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("meta.json", json.dumps(meta, allow_nan=False))
            for name, a in arrays.items():
                buf = io.BytesIO()
                np.save(buf, a, allow_pickle=False)
                zf.writestr(f"{name}.npy", buf.getvalue())

    _replace_atomically(path, write)


def read_record(path: str, kind: type[R], index: Sequence[int]) -> R:
    """Read and validate the record of block ``index`` at ``path``.

    Raises
    ------
    RecordError
        The file is missing, truncated or damaged, of another format or version, of another
        kind or block, or its contents fail validation.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("meta.json").decode("utf-8"))  # CRC-checked
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise RecordError("not a segmentation scratch record")
            if meta.get("version") != VERSION:
                raise RecordError(f"record version {meta.get('version')!r}, not {VERSION}")
            if meta.get("kind") != kind.KIND or meta.get("index") != [int(i) for i in index]:
                raise RecordError(f"record of {meta.get('kind')} {meta.get('index')}")
            specs, scalars = meta.get("arrays"), meta.get("scalars")
            if not isinstance(specs, dict) or not isinstance(scalars, dict):
                raise RecordError("record metadata lacks arrays or scalars")
            members = {"meta.json", *(f"{n}.npy" for n in specs)}
            if set(zf.namelist()) != members:
                raise RecordError("record members differ from its metadata")
            arrays = {}
            for name, spec in specs.items():
                a = np.load(io.BytesIO(zf.read(f"{name}.npy")), allow_pickle=False)
                if not isinstance(spec, dict) or (
                    [a.dtype.str, list(a.shape)] != [spec.get("dtype"), spec.get("shape")]
                ):
                    raise RecordError(f"array {name} differs from its metadata")
                arrays[name] = a
    except RecordError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError, TypeError,
            RecursionError) as exc:  # fmt: skip
        raise RecordError(f"unreadable ({type(exc).__name__}: {exc})") from None
    return kind.from_record(scalars, arrays)


# ---------------------------------------------------------------- the scratch directory


def record_path(scratch: str, stage: str, index: Sequence[int]) -> str:
    """Path of the record of block ``index`` in pass ``stage`` (``blocks`` or ``flood``)."""
    if stage not in _KINDS:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return os.path.join(scratch, stage, "_".join(str(int(i)) for i in index) + ".npz")


def save(scratch: str, stage: str, index: Sequence[int], result: Result) -> None:
    """Keep a block's result of pass ``stage`` in the scratch (atomically)."""
    if not isinstance(result, _KINDS[stage]):
        raise TypeError(f"a {stage} record holds a {_KINDS[stage].__name__}")
    write_record(record_path(scratch, stage, index), result, index)


def discard(scratch: str, stage: str, index: Sequence[int]) -> None:
    """Delete a block's record of pass ``stage`` if there is one."""
    try:
        os.remove(record_path(scratch, stage, index))
    except FileNotFoundError:
        pass


def load_done(
    scratch: str | None,
    stage: str,
    blocks: Sequence[tuple[int, ...]],
    *,
    width: int,
    saddles: bool,
) -> dict[tuple[int, ...], Any]:
    """The valid records of pass ``stage``, by block index; invalid ones are deleted.

    Parameters
    ----------
    scratch : str or None
        The scratch directory; None: nothing is saved (an empty dict).
    stage : {"blocks", "flood"}
    blocks : sequence of tuple of int
        The blocks of the run; only their record names are opened.
    width : int
        Trajectory histogram columns of this run (``T + 1``, or 1 without thresholds).
    saddles : bool
        Whether this run merges by dynamics (its records carry basin saddles).
    """
    done: dict[tuple[int, ...], Any] = {}
    if scratch is None:
        return done
    kind = _KINDS[stage]
    dropped: list[str] = []
    for b in blocks:
        path = record_path(scratch, stage, b)
        if not os.path.exists(path):
            continue
        try:
            rec = read_record(path, kind, b)
            if rec.sums.width != width or (rec.sums.saddles is not None) != saddles:
                raise RecordError("record of other segmentation parameters")
        except RecordError as exc:
            dropped.append(f"{os.path.basename(path)}: {exc}")
            discard(scratch, stage, b)
            continue
        done[b] = rec
    if dropped:
        log.warning(
            "segmentation scratch %s: recomputing %d %s block(s) whose saved records were "
            "unreadable (first: %s)",
            scratch,
            len(dropped),
            stage,
            dropped[0],
        )
    return done


def clear(scratch: str, stages: Sequence[str] = STAGES, reason: str = "") -> int:
    """Delete every record (and stray temporary file) of these passes; other files stay.

    Returns the number of files deleted; logs one line giving ``reason`` when any were.
    """
    removed = 0
    for stage in stages:
        d = os.path.join(scratch, stage)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            if _NAME.match(name):
                os.remove(os.path.join(d, name))
                removed += 1
    if removed:
        log.warning("segmentation scratch %s: %s; recomputing the %s pass%s",
                    scratch, reason or "records dropped", " and ".join(stages),
                    "es" if len(stages) > 1 else "")  # fmt: skip
    return removed


def open_scratch(scratch: str, state: dict[str, Any]) -> bool:
    """Create or reopen a resumable scratch directory; True when it resumes a run.

    ``state`` (JSON-able: shape, blocks, parameters, outputs) is kept in ``job.json``. A
    scratch of the same state resumes. One whose ``job.json`` is missing, unreadable or of
    another format version starts afresh: its records are deleted (the faces are rewritten
    by the engine). One of another state is refused with :class:`ConfigError`.
    """
    for stage in STAGES:
        os.makedirs(os.path.join(scratch, stage), exist_ok=True)
    path = os.path.join(scratch, "job.json")
    old: Any = None
    reason = "no job.json"
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                old = json.load(fh)
            reason = "job.json of another format version"
        except (ValueError, OSError, RecursionError) as exc:  # JSON errors are ValueErrors
            reason = f"unreadable job.json ({type(exc).__name__})"
    if isinstance(old, dict) and old.get("format") == FORMAT and old.get("version") == VERSION:
        if old.get("job") != state:
            raise ConfigError(
                f"scratch directory {scratch} belongs to a segmentation with other inputs, "
                "blocks or parameters; remove it or choose another scratch directory"
            )
        return True
    clear(scratch, reason=reason)
    record = {"format": FORMAT, "version": VERSION, "job": state}

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh)

    _replace_atomically(path, write)
    return False
