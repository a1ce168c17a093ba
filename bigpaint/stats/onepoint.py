"""One-point statistics, chunk by chunk: exact order statistics, pixel PDF, sub-volume means.

Quantiles of a field too large for memory are usually estimated from a sample or a sketch
(t-digest). Thresholds that decide a Dice coefficient or a PDF range must be exact, so here
they are found by radix selection: every value maps to an unsigned integer key with the
same order (the IEEE-754 bit trick), and each pass over the blocks histograms the next 16
bits of the keys that share the already-known high bits of a wanted rank. Two passes pin a
float32 value exactly, four a float64 value; every pass is a block-wise histogram of
``65536`` bins per wanted rank, so memory is bounded by the chunk size.

The pixel PDF is ``numpy.histogram`` per block with common edges, summed: it equals the
whole-array histogram exactly. The default range is the exact global (min, max).
Sub-volume means (the "mean density distribution" of the cosmic-web GAN paper) sum each
block into the sub-volumes it overlaps.

Why hand-written: ``dask.array.percentile`` merges per-chunk percentiles (approximate), and
``numpy.quantile`` needs the whole array in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from bigpaint.errors import ConfigError
from bigpaint.stats._reduce import blockwise_sum, blockwise_sum_lazy, check_finite_block
from bigpaint.stats.inputs import as_input

__all__ = [
    "extrema",
    "minmax",
    "order_statistics",
    "pixel_pdf",
    "quantiles",
    "subvolume_divisions",
    "subvolume_labels",
    "subvolume_means",
    "top_fraction_thresholds",
    "top_fraction_thresholds_many",
]

_DIGIT = 16
_RADIX = 1 << _DIGIT


# ---------------------------------------------------------------- order statistics


def _key_bits(dtype: np.dtype) -> int:
    return 32 if dtype == np.float32 else 64


def _as_float(x: da.Array) -> da.Array:
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _keys(block: np.ndarray) -> np.ndarray:
    """Unsigned integer keys ordered like the float values (-0.0 just below +0.0)."""
    if block.dtype == np.float32:
        u = np.ascontiguousarray(block).view(np.uint32).astype(np.uint64)
        sign = np.uint64(1 << 31)
        full = np.uint64(0xFFFFFFFF)
    else:
        u = np.ascontiguousarray(block, dtype=np.float64).view(np.uint64)
        sign = np.uint64(1 << 63)
        full = np.uint64(0xFFFFFFFFFFFFFFFF)
    neg = (u & sign) != 0
    return np.where(neg, full ^ u, u | sign)


def _from_key(key: int, dtype: np.dtype) -> float:
    bits = _key_bits(dtype)
    sign = 1 << (bits - 1)
    full = (1 << bits) - 1
    u = (key ^ sign) if key & sign else (full ^ key)
    if bits == 32:
        return float(np.array([u], np.uint32).view(np.float32)[0])
    return float(np.array([u], np.uint64).view(np.float64)[0])


def _radix_block(block: np.ndarray, *, loc: Any, prefixes: np.ndarray, shift: int) -> np.ndarray:
    del loc
    check_finite_block(block, "order statistics")
    keys = _keys(block).ravel()
    digit = ((keys >> np.uint64(shift)) & np.uint64(_RADIX - 1)).astype(np.int64)
    if shift + _DIGIT >= _key_bits(block.dtype):
        slot = np.zeros(keys.shape, np.int64)
        match = np.ones(keys.shape, bool)
    else:
        high = keys >> np.uint64(shift + _DIGIT)
        slot = np.searchsorted(prefixes, high)
        slot_c = np.minimum(slot, len(prefixes) - 1)
        match = prefixes[slot_c] == high
        slot = slot_c
    return np.bincount(
        slot[match] * _RADIX + digit[match], minlength=len(prefixes) * _RADIX
    ).reshape(len(prefixes), _RADIX)


def _select(arrays: Sequence[da.Array], ranks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Radix selection of ``ranks[i]`` in ``arrays[i]``, all arrays in the same passes."""
    states: list[dict[str, Any]] = []  # one selection in progress per array
    for x, r in zip(arrays, ranks, strict=True):
        states.append(
            {"x": x, "r": r, "prefix": np.zeros(r.size, dtype=np.uint64), "rem": r.copy()}
        )
    passes = max(_key_bits(s["x"].dtype) // _DIGIT for s in states)
    for p in range(passes):
        lazy, active = [], []
        for st in states:
            bits = _key_bits(st["x"].dtype)
            if p >= bits // _DIGIT or st["r"].size == 0:
                continue
            shift = bits - _DIGIT * (p + 1)
            uniq, inverse = np.unique(st["prefix"], return_inverse=True)
            st["inverse"] = inverse
            lazy.append(
                blockwise_sum_lazy(
                    _radix_block,
                    [st["x"]],
                    (len(uniq), _RADIX),
                    np.int64,
                    prefixes=uniq,
                    shift=shift,
                )
            )
            active.append(st)
        for st, hist in zip(active, dask.compute(*lazy), strict=True):
            cum = np.cumsum(np.asarray(hist), axis=1)
            for t in range(st["r"].size):
                row = cum[st["inverse"][t]]
                d = int(np.searchsorted(row, st["rem"][t], side="right"))
                st["rem"][t] -= int(row[d - 1]) if d > 0 else 0
                st["prefix"][t] = (st["prefix"][t] << np.uint64(_DIGIT)) | np.uint64(d)
    return [
        np.array([_from_key(int(k), s["x"].dtype) for k in s["prefix"]], dtype=np.float64)
        for s in states
    ]


def _ranks(x: da.Array, ranks: ArrayLike) -> np.ndarray:
    size = int(np.prod(x.shape))
    r = np.asarray(ranks, dtype=np.int64).ravel()
    if np.any((r < 0) | (r >= size)):
        raise ConfigError(f"ranks must lie in [0, {size}), got {r.tolist()}")
    return r


def order_statistics(field: Any, ranks: ArrayLike, *, box_size: Any = None) -> np.ndarray:
    """Exact ``k``-th smallest values (0-based ranks) of a field, computed chunk by chunk.

    Equals ``numpy.sort(field, axis=None)[ranks]``. Integer fields are compared as float64.

    Parameters
    ----------
    field : Field URL, opened Field, numpy or dask array
    ranks : sequence of int
        In ``[0, field.size)``.

    Returns
    -------
    numpy.ndarray of float64
    """
    inp = as_input(field, box_size=box_size, where="order statistics", require_box=False)
    x = _as_float(inp.data)
    return _select([x], [_ranks(x, ranks)])[0]


def quantiles(field: Any, q: Sequence[float], *, box_size: Any = None) -> np.ndarray:
    """Exact quantiles, ``numpy.quantile(field, q, method="linear")``, chunk by chunk.

    Linear interpolation between the two order statistics around ``q (N - 1)``.
    """
    inp = as_input(field, box_size=box_size, where="quantiles", require_box=False)
    qs = np.asarray(q, dtype=np.float64).ravel()
    if np.any(~np.isfinite(qs)) or np.any((qs < 0) | (qs > 1)):
        raise ConfigError(f"quantiles must lie in [0, 1], got {qs.tolist()}")
    size = int(np.prod(inp.data.shape))
    pos = qs * (size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    vals = order_statistics(inp.data, np.concatenate([lo, hi]))
    a, b = vals[: len(qs)], vals[len(qs) :]
    frac = pos - lo
    return np.where(frac == 0, a, a + (b - a) * frac)


def top_fraction_thresholds(
    field: Any, fractions: Sequence[float], *, box_size: Any = None
) -> np.ndarray:
    """For each fraction ``f``, the value of the ``M``-th largest voxel, ``M = max(1, round(f N))``.

    ``field >= threshold`` selects the top ``f`` of the voxels (exactly ``M`` of them unless
    values tie at the threshold).
    """
    return top_fraction_thresholds_many([field], fractions, box_size=box_size)[0]


def top_fraction_thresholds_many(
    fields: Sequence[Any], fractions: ArrayLike, *, box_size: Any = None
) -> list[np.ndarray]:
    """:func:`top_fraction_thresholds` of several fields, sharing the passes over the data."""
    fs = np.asarray(fractions, dtype=np.float64).ravel()
    if fs.size == 0 or np.any(~np.isfinite(fs)) or np.any((fs <= 0) | (fs > 1)):
        raise ConfigError(f"top fractions must lie in (0, 1], got {fs.tolist()}")
    xs, rs = [], []
    for f in fields:
        inp = as_input(f, box_size=box_size, where="thresholds", require_box=False)
        x = _as_float(inp.data)
        size = int(np.prod(x.shape))
        m = np.maximum(1, np.rint(fs * size).astype(np.int64))
        xs.append(x)
        rs.append(_ranks(x, size - m))
    return _select(xs, rs)


def _extrema_block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
    check_finite_block(block, "min/max", block_info)
    pos = block[block > 0]
    out = np.array([block.min(), -block.max(), pos.min() if pos.size else np.inf], dtype=np.float64)
    return out[None, None, None]


def extrema(x: da.Array) -> tuple[float, float, float]:
    """Exact (min, max, smallest positive value) of a dask array, block by block."""
    per = da.map_blocks(
        _extrema_block,
        x,
        new_axis=[3],
        chunks=(*((1,) * g for g in x.numblocks), (3,)),
        dtype=np.float64,
        meta=np.array((), np.float64),
    )
    lo, neg_hi, pos = per.min(axis=(0, 1, 2)).compute()
    return float(lo), float(-neg_hi), float(pos)


def minmax(field: Any, *, box_size: Any = None) -> tuple[float, float]:
    """Exact global (min, max) of a field, block by block; NaN/inf refused."""
    inp = as_input(field, box_size=box_size, where="min/max", require_box=False)
    lo, hi, _ = extrema(inp.data)
    return lo, hi


# ---------------------------------------------------------------- pixel PDF


def _hist_block(block: np.ndarray, *, loc: Any, edges: np.ndarray) -> np.ndarray:
    del loc
    check_finite_block(block, "pixel PDF")
    v = block.ravel()
    counts, _ = np.histogram(v, edges)
    below = np.count_nonzero(v < edges[0])
    above = np.count_nonzero(v > edges[-1])
    return np.concatenate([counts, [below, above]]).astype(np.int64)


def pdf_edges(lo: float, hi: float, bins: int, log: bool) -> np.ndarray:
    """``bins`` linear or logarithmic edges spanning ``[lo, hi]``."""
    if bins < 1:
        raise ConfigError(f"bins must be >= 1, got {bins}")
    if log:
        if not lo > 0:
            raise ConfigError(
                f"log bins need a positive lower edge, got {lo:.6g}; pass range=(vmin, vmax) with vmin > 0"
            )
        return np.geomspace(lo, hi, bins + 1)
    if hi == lo:
        hi = lo + 1.0 if lo == 0 else lo + abs(lo) * 1e-6
    return np.linspace(lo, hi, bins + 1)


def pixel_pdf(
    field: Any,
    bins: int | Sequence[float] = 100,
    *,
    range: tuple[float, float] | None = None,
    log: bool = False,
    box_size: Any = None,
) -> xr.Dataset:
    """Histogram and PDF of voxel values, chunk by chunk (equals ``numpy.histogram``).

    Parameters
    ----------
    field : Field URL, opened Field, numpy or dask array
    bins : int or sequence of float
        Number of bins, or explicit increasing edges (in the field's units).
    range : (float, float), optional
        Span of the bins; default the exact global (min, max) — for log bins the smallest
        positive value and the max.
    log : bool
        Logarithmically spaced bins; non-positive values are counted in ``n_below``.

    Returns
    -------
    xarray.Dataset
        Dimension ``bin``; coordinates ``lo``, ``hi``, ``centre`` (field units; geometric
        centre for log bins); variables ``count`` and ``pdf`` (count / (N width), per field
        unit); attrs ``n_voxels``, ``n_below``, ``n_above`` (outside the edges), ``units``.
    """
    inp = as_input(field, box_size=box_size, where="pixel PDF", require_box=False)
    x = inp.data
    if isinstance(bins, (int, np.integer)):
        if range is not None:
            lo, hi = float(range[0]), float(range[1])
        else:
            vmin, hi, vpos = extrema(x)
            lo = vpos if log else vmin
        if not (math.isfinite(lo) and math.isfinite(hi) and hi >= lo):
            raise ConfigError(f"pixel PDF range must be finite with min <= max, got ({lo}, {hi})")
        edges = pdf_edges(lo, hi, int(bins), log)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if (
            edges.ndim != 1
            or edges.size < 2
            or np.any(np.diff(edges) <= 0)
            or not np.all(np.isfinite(edges))
        ):
            raise ConfigError("pixel PDF bin edges must be at least two finite increasing values")
    out = blockwise_sum(_hist_block, [x], (len(edges) + 1,), np.int64, edges=edges)
    counts, below, above = out[:-2], int(out[-2]), int(out[-1])
    n = int(np.prod(x.shape))
    width = np.diff(edges)
    centre = np.sqrt(edges[:-1] * edges[1:]) if log else 0.5 * (edges[:-1] + edges[1:])
    ds = xr.Dataset(
        {
            "count": ("bin", counts, {"units": "1", "long_name": "voxels in the bin"}),
            "pdf": (
                "bin",
                counts / (n * width),
                {
                    "units": f"1/({inp.units})" if inp.units != "1" else "1",
                    "long_name": "probability density of voxel values",
                },
            ),
        },
        coords={
            "lo": ("bin", edges[:-1], {"units": inp.units}),
            "hi": ("bin", edges[1:], {"units": inp.units}),
            "centre": ("bin", centre, {"units": inp.units}),
        },
    )
    ds.attrs.update(
        {
            "statistic": "pixel PDF",
            "field": inp.label,
            "units": inp.units,
            "log_bins": str(bool(log)),
            "n_voxels": n,
            "n_below": below,
            "n_above": above,
        }
    )
    return ds


# ---------------------------------------------------------------- sub-volumes


def subvolume_divisions(
    divisions: int | Sequence[int], shape: Sequence[int]
) -> tuple[int, int, int]:
    """Sub-volumes per axis from one int or 3, refusing fewer than 1 or more than the grid."""
    d = (
        (int(divisions),) * 3
        if isinstance(divisions, (int, np.integer))
        else tuple(int(v) for v in divisions)
    )
    if len(d) != 3 or any(v < 1 for v in d):
        raise ConfigError(
            f"sub-volume divisions must be one or three positive ints, got {divisions}"
        )
    if any(v > n for v, n in zip(d, shape, strict=True)):
        raise ConfigError(f"cannot cut a {tuple(shape)} grid into {d} sub-volumes")
    return d


def subvolume_labels(
    loc: Sequence[tuple[int, int]], shape: Sequence[int], divisions: Sequence[int]
) -> np.ndarray:
    """Sub-volume index (C order over the ``divisions`` grid) of every voxel of a block.

    Voxel ``i`` of an axis of ``n`` cells belongs to sub-volume ``floor(i d / n)``.
    """
    parts = []
    for (a, b), n, d in zip(loc, shape, divisions, strict=True):
        parts.append((np.arange(a, b, dtype=np.int64) * d) // n)
    sx, sy, sz = parts
    dy, dz = divisions[1], divisions[2]
    return (sx[:, None, None] * dy + sy[None, :, None]) * dz + sz[None, None, :]


def _subvol_block(
    block: np.ndarray, *, loc: Any, shape: tuple[int, ...], divisions: tuple[int, ...]
) -> np.ndarray:
    check_finite_block(block, "sub-volume means")
    lab = subvolume_labels(loc, shape, divisions).ravel()
    m = int(np.prod(divisions))
    sums = np.bincount(lab, weights=block.astype(np.float64).ravel(), minlength=m)
    cnt = np.bincount(lab, minlength=m).astype(np.float64)
    return np.stack([sums, cnt])


def subvolume_means(
    field: Any, divisions: int | Sequence[int] = 4, *, box_size: Any = None
) -> xr.Dataset:
    """Mean of the field in each of the ``divisions`` sub-volumes (the "mean density
    distribution" across sub-volumes of the cosmic-web GAN paper).

    Parameters
    ----------
    divisions : int or 3 ints
        Sub-volumes per axis (need not divide the grid: voxel ``i`` goes to ``floor(i d / n)``).

    Returns
    -------
    xarray.Dataset
        Dimension ``subvolume`` (C order over the divisions) with coordinates ``sx``, ``sy``,
        ``sz`` (sub-volume indices); ``mean`` (field units) and ``n_voxels``.
    """
    inp = as_input(field, box_size=box_size, where="sub-volume means", require_box=False)
    d = subvolume_divisions(divisions, inp.shape)
    out = blockwise_sum(
        _subvol_block, [inp.data], (2, int(np.prod(d))), np.float64, shape=inp.shape, divisions=d
    )
    sx, sy, sz = (v.ravel() for v in np.meshgrid(*(np.arange(v) for v in d), indexing="ij"))
    ds = xr.Dataset(
        {
            "mean": (
                "subvolume",
                out[0] / out[1],
                {"units": inp.units, "long_name": "sub-volume mean"},
            ),
            "n_voxels": ("subvolume", out[1].astype(np.int64), {"units": "1"}),
        },
        coords={"sx": ("subvolume", sx), "sy": ("subvolume", sy), "sz": ("subvolume", sz)},
    )
    side = tuple(L / v for L, v in zip(inp.box_size, d, strict=True))
    ds.attrs.update(
        {
            "statistic": "sub-volume means",
            "field": inp.label,
            "divisions": list(d),
            "subvolume_side": list(side),
            "subvolume_side_units": "Mpc/h",
        }
    )
    return ds
