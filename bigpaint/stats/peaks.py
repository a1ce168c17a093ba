"""Peak counts: periodic 26-neighbour local maxima binned by height, block by block.

A peak is a voxel strictly greater than all 26 neighbours (faces, edges and corners of its
3x3x3 cube), with periodic wrap: the 3-D form of the cosmic-web GAN paper's "pixel whose eight
contiguous neighbours are of smaller values". Plateaus (equal neighbours) are not peaks.

Each block needs one voxel of periodic context. Fields on disk (and numpy arrays) go through
the project's chunk primitive (:mod:`bigpaint.chunked`: one task per block reading
``block + 2`` straight from Zarr with modular indices); lazy dask arrays use
``dask.array.overlap`` with a periodic boundary (depth 1 never exceeds a chunk). Either way
each block returns a histogram of its peak heights and the histograms are summed, so the
result equals the whole-array count exactly.

Why hand-written: ``skimage.feature.peak_local_max`` has no periodic boundary and returns
coordinates (memory ~ number of peaks); a 26-way strict comparison is a few numpy lines.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from bigpaint.blockwise import BlockPlan
from bigpaint.chunked.graph import run_tasks
from bigpaint.chunked.read import periodic_read
from bigpaint.errors import ConfigError, ShapeError
from bigpaint.field import zarr_array
from bigpaint.stats._reduce import blockwise_sum, check_finite_block
from bigpaint.stats.inputs import as_input
from bigpaint.stats.onepoint import extrema, pdf_edges

__all__ = ["find_peaks", "peak_counts"]

_OFFSETS = [o for o in itertools.product((-1, 0, 1), repeat=3) if o != (0, 0, 0)]


def find_peaks(window: np.ndarray) -> np.ndarray:
    """Boolean mask of the strict 26-neighbour maxima of the core of ``window``.

    ``window`` carries one voxel of context on every side; the result has the core's shape
    ``window.shape - 2``. Use :func:`numpy.pad` with ``mode="wrap"`` for a periodic box.
    """
    if window.ndim != 3 or min(window.shape) < 3:
        raise ShapeError(
            f"a peak window needs one voxel of context per side, got shape {window.shape}"
        )
    nx, ny, nz = (s - 2 for s in window.shape)
    core = window[1:-1, 1:-1, 1:-1]
    peak = np.ones(core.shape, dtype=bool)
    for dx, dy, dz in _OFFSETS:
        nb = window[1 + dx : 1 + dx + nx, 1 + dy : 1 + dy + ny, 1 + dz : 1 + dz + nz]
        peak &= core > nb
    return peak


def _histogram(heights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(heights, edges)
    below = np.count_nonzero(heights < edges[0])
    above = np.count_nonzero(heights > edges[-1])
    return np.concatenate([counts, [below, above, heights.size]]).astype(np.int64)


def _zarr_task(
    index: tuple[int, ...], *, source: Any, plan: BlockPlan, edges: np.ndarray
) -> np.ndarray:
    window = periodic_read(source, plan.window(index))
    core = window[1:-1, 1:-1, 1:-1]
    check_finite_block(core, "peak counts")
    if window.dtype.kind not in "f":
        window = window.astype(np.float64)
    return _histogram(window[1:-1, 1:-1, 1:-1][find_peaks(window)], edges)


def _overlap_block(window: np.ndarray, *, loc: Any, edges: np.ndarray) -> np.ndarray:
    del loc
    check_finite_block(window, "peak counts")
    return _histogram(window[1:-1, 1:-1, 1:-1][find_peaks(window)], edges)


def peak_counts(
    field: Any,
    bins: int | Sequence[float] = 50,
    *,
    range: tuple[float, float] | None = None,
    chunks: Any = None,
    box_size: Any = None,
    progress: bool = False,
) -> xr.Dataset:
    """Number of periodic 26-neighbour maxima per bin of peak height.

    Parameters
    ----------
    field : Field URL, opened Field, numpy or dask array
    bins : int or sequence of float
        Number of linear bins, or explicit edges (field units).
    range : (float, float), optional
        Span of the bins; default the exact global (min, max) of the field.
    chunks : optional
        Block layout for numpy input (dask convention; default one block). Fields use their
        own chunks, dask arrays theirs.
    progress : bool
        Progress bar for Fields on a cluster.

    Returns
    -------
    xarray.Dataset
        Dimension ``bin``; ``count`` of peaks; coordinates ``lo``, ``hi``, ``centre`` (field
        units); attrs ``n_peaks`` (all peaks), ``n_below``/``n_above`` (outside the edges).
    """
    inp = as_input(field, box_size=box_size, where="peak counts", require_box=False)
    if isinstance(bins, (int, np.integer)):
        if range is not None:
            lo, hi = float(range[0]), float(range[1])
        else:
            lo, hi, _ = extrema(inp.data)
        edges = pdf_edges(lo, hi, int(bins), False)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if (
            edges.ndim != 1
            or edges.size < 2
            or np.any(np.diff(edges) <= 0)
            or not np.all(np.isfinite(edges))
        ):
            raise ConfigError("peak height bin edges must be at least two finite increasing values")
    source = _direct_source(field)
    if source is not None:
        src, src_chunks = source
        plan = BlockPlan.build(inp.shape, chunks if chunks is not None else src_chunks, 1)
        parts = run_tasks(
            _zarr_task,
            [(idx,) for idx in plan.blocks()],
            shared={"source": src, "plan": plan, "edges": edges},
            name="peaks",
            progress=progress,
        )
        out = np.sum(parts, axis=0)
    else:
        x = inp.data if chunks is None else inp.data.rechunk(chunks)
        if x.dtype.kind not in "f":
            x = x.astype(np.float64)
        padded = da.overlap.overlap(x, depth=1, boundary="periodic")
        out = blockwise_sum(_overlap_block, [padded], (len(edges) + 2,), np.int64, edges=edges)
    counts = out[:-3]
    centre = 0.5 * (edges[:-1] + edges[1:])
    ds = xr.Dataset(
        {
            "count": (
                "bin",
                counts,
                {"units": "1", "long_name": "peaks (26-neighbour maxima) per height bin"},
            )
        },
        coords={
            "lo": ("bin", edges[:-1], {"units": inp.units}),
            "hi": ("bin", edges[1:], {"units": inp.units}),
            "centre": ("bin", centre, {"units": inp.units}),
        },
    )
    ds.attrs.update(
        {
            "statistic": "peak counts",
            "field": inp.label,
            "units": inp.units,
            "neighbourhood": "26 (periodic)",
            "n_peaks": int(out[-1]),
            "n_below": int(out[-3]),
            "n_above": int(out[-2]),
        }
    )
    return ds


def _direct_source(field: Any) -> tuple[Any, Any] | None:
    """A source the chunk primitive reads directly (Zarr behind a Field, or numpy), with chunks."""
    if isinstance(field, np.ndarray):
        return field, field.shape
    if isinstance(field, zarr.Array):
        return field, field.chunks
    if (
        isinstance(field, (str, bytes))
        or hasattr(field, "__fspath__")
        or isinstance(field, xr.Dataset)
    ):
        from bigpaint.field import open_field

        ds = field if isinstance(field, xr.Dataset) else open_field(str(field))
        arr = zarr_array(ds)
        if arr.ndim != 3:
            return None
        return arr, tuple(arr.chunks)
    return None
