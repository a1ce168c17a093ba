"""The typed block results of the chunked segmentation.

Two passes of :func:`bigpaint.segment.segment` return one result per block: the block pass
a :class:`BlockResult` (markers, the foreground pieces and their boxes, and the
:class:`RegionSums` of the regions it flooded itself), the flood pass a
:class:`FloodResult` (the sums of the regions it finished). Each validates its arrays'
dtypes and shapes when built, so a result read back from the resumable scratch
(:mod:`bigpaint.segment.scratch`, which keeps them as records) is either exactly what was
saved or refused; ``to_record``/``from_record`` give the named arrays and JSON scalars of a
record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, Self

import numpy as np

__all__ = ["BlockResult", "FloodResult", "Record", "RecordError", "RegionSums", "Result"]


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
        saddles = None
        if all(has):
            a, b, h = (arrays[prefix + n] for n in cls._SADDLES)
            saddles = (a, b, h)
        return cls(**{n: arrays[prefix + n] for n in cls._ARRAYS}, saddles=saddles)

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
    def from_record(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        """Inverse of :meth:`to_record` (validated)."""
        missing = [n for n in cls._ARRAYS if n not in arrays]
        if missing or "seconds" not in scalars:
            raise RecordError(f"missing fields {missing or ['seconds']}")
        return cls(
            **{n: arrays[n] for n in cls._ARRAYS},
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
    def from_record(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        """Inverse of :meth:`to_record` (validated)."""
        if "seconds" not in scalars or "span_seconds" not in scalars:
            raise RecordError("missing seconds")
        return cls(
            RegionSums.from_arrays(arrays, "sums."),
            seconds=_seconds("seconds", scalars["seconds"]),
            span_seconds=_seconds("span_seconds", scalars["span_seconds"]),
        )


#: Either result (what a scratch record holds).
Result = BlockResult | FloodResult


class Record(Protocol):
    """What a scratch record reads back as: a result of one kind, rebuilt from its record."""

    KIND: ClassVar[str]

    @property
    def sums(self) -> RegionSums: ...

    def to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...

    @classmethod
    def from_record(cls, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self: ...
