"""Sum a per-block summary over all blocks of one or more aligned dask arrays.

Each block is reduced where it lies to a small fixed-shape array (a histogram, per-bin sums,
counts per sub-volume); only those travel, and dask adds them in a tree. This is the one
reduction pattern the chunked statistics use, so no statistic gathers a box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np

from bigpaint.chunked.block_info import array_location
from bigpaint.errors import NonFiniteError

__all__ = ["block_location", "blockwise_sum", "blockwise_sum_lazy", "check_finite_block"]


def block_location(block_info: dict[Any, Any] | None) -> list[tuple[int, int]]:
    """Global ``(start, stop)`` per axis of the block a ``map_blocks`` function receives."""
    return array_location(block_info)


def check_finite_block(block: np.ndarray, where: str, block_info: dict | None = None) -> None:
    """Raise :class:`NonFiniteError` naming the first bad voxel (global index) of a block."""
    if block.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(block)
    if bad.any():
        first = np.argwhere(bad)[0]
        if block_info is not None:
            first = first + np.array([a for a, _ in block_location(block_info)])
        raise NonFiniteError(
            f"{where}: the field holds {int(bad.sum())} NaN/inf values (first at voxel "
            f"{tuple(int(i) for i in first)}); clean the field first"
        )


def _call(
    *blocks: np.ndarray,
    reducer: Callable[..., np.ndarray],
    kwargs: dict[str, Any],
    block_info: dict | None = None,
) -> np.ndarray:
    out = np.asarray(reducer(*blocks, loc=block_location(block_info), **kwargs))
    return out[None, None, None]


def blockwise_sum_lazy(
    reducer: Callable[..., np.ndarray],
    arrays: Sequence[da.Array],
    out_shape: Sequence[int],
    dtype: Any,
    **kwargs: Any,
) -> da.Array:
    """Like :func:`blockwise_sum` but lazy: compute several with one ``dask.compute``."""
    ref = arrays[0]
    arrs = [a if a.chunks == ref.chunks else a.rechunk(ref.chunks) for a in arrays]
    out_shape = tuple(int(s) for s in out_shape)
    nnew = len(out_shape)
    sums = da.map_blocks(
        _call,
        *arrs,
        reducer=reducer,
        kwargs=kwargs,
        new_axis=list(range(3, 3 + nnew)),
        chunks=tuple((1,) * g for g in ref.numblocks) + tuple((s,) for s in out_shape),
        dtype=dtype,
        meta=np.array((), dtype),
        token=getattr(reducer, "__name__", "blocksum"),
    )
    return sums.sum(axis=(0, 1, 2), dtype=dtype)


def blockwise_sum(
    reducer: Callable[..., np.ndarray],
    arrays: Sequence[da.Array],
    out_shape: Sequence[int],
    dtype: Any,
    **kwargs: Any,
) -> np.ndarray:
    """``sum over blocks of reducer(*blocks, loc=[(start, stop)] * 3, **kwargs)``, computed.

    Parameters
    ----------
    reducer : callable
        Module-level function returning an array of ``out_shape`` for one block.
    arrays : sequence of dask arrays
        3-D, same shape; rechunked to the first one's chunks.
    out_shape : sequence of int
        Shape of every block's summary.
    dtype : dtype
        Of the summary (int64 for counts keeps sums exact).
    """
    return np.asarray(blockwise_sum_lazy(reducer, arrays, out_shape, dtype, **kwargs).compute())
