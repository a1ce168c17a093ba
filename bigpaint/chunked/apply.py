"""The chunk primitive: apply ``f`` to every block with periodic context, write the core.

Why not ``dask.array.map_overlap``: it defaults to no boundary, fails or merges chunks when
the depth exceeds a chunk (dask #6688, #11580, #11934), can use ~10x the memory of
``map_blocks`` (dask #3671), and gives each output chunk ~27 dependencies, which strains
the scheduler at 10^4+ chunks (distributed #3898). Here each output block is ONE task
(:func:`~bigpaint.chunked.graph.run_tasks`) that reads ``block + 2*context`` straight from
the source with periodic reads (:mod:`bigpaint.chunked.read`), calls ``f``, and writes the
core into its own region of the destination. The graph is one task per block plus the
shared plan, reader and writer; memory per task is the window, whatever the box size; the
context may exceed a block (or even the box). The blocks and their windows are a
:class:`~bigpaint.blockwise.BlockPlan`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr
import zarr

from bigpaint.axes import spatial_index
from bigpaint.blockwise import BlockPlan
from bigpaint.chunked.graph import run_tasks
from bigpaint.chunked.grid import BlockGrid
from bigpaint.chunked.read import FieldSource, periodic_read
from bigpaint.errors import (
    STORAGE_ERRNOS,
    BigpaintError,
    ChunkingError,
    NonFiniteError,
    ShapeError,
    storage_error,
)
from bigpaint.field import FieldWriter

__all__ = ["apply_blockwise"]


def _source_array(source: Any) -> Any:
    if isinstance(source, xr.Dataset):
        return FieldSource.from_field(source)
    if isinstance(source, xr.DataArray):
        raise TypeError("pass the Field Dataset (from open_field), not a DataArray")
    if isinstance(source, (np.ndarray, zarr.Array)):
        return source
    if callable(getattr(source, "read", None)) and hasattr(source, "shape"):
        return source  # a window reader like FieldSource (e.g. projected slabs)
    raise TypeError(
        f"source must be a Field, Zarr array or numpy array, got {type(source).__name__}"
    )


def _takes_block_info(func: Callable[..., Any]) -> bool:
    try:
        return "block_info" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def _run_block(
    index: tuple[int, ...],
    *,
    func: Callable[..., np.ndarray],
    source: Any,
    dest: Any,
    plan: BlockPlan,
    check_finite: bool,
    pass_info: bool,
) -> float:
    t0 = time.perf_counter()
    if not isinstance(source, (np.ndarray, zarr.Array)):
        window = source.read(plan.window(index))
    else:
        window = periodic_read(source, plan.window(index))
    core_sl = plan.core(index)
    core_shape = tuple(s.stop - s.start for s in core_sl)
    inner = tuple(slice(c, c + n) for c, n in zip(plan.context, core_shape, strict=True))
    if check_finite and window.dtype.kind in "fc":
        own = window[spatial_index(inner)]
        bad = ~np.isfinite(own)
        if bad.any():
            first = np.argwhere(bad)[0][-3:] + [s.start for s in core_sl]
            raise NonFiniteError(
                f"input holds {int(bad.sum())} NaN/inf values in block {tuple(index)} "
                f"(first at voxel {tuple(int(i) for i in first)}); clean the input field first"
            )
    out = func(window, block_info=plan.info(index)) if pass_info else func(window)
    out = np.asarray(out)
    if out.shape[-3:] == window.shape[-3:] and any(plan.context):
        out = out[spatial_index(inner)]
    if out.shape[-3:] != core_shape:
        raise ShapeError(
            f"block function returned spatial shape {out.shape[-3:]} for block {tuple(index)}; "
            f"it must return the window {window.shape[-3:]} or the core {core_shape}"
        )
    if isinstance(dest, FieldWriter):
        try:
            dest.write_block(index, out)
        except OSError as exc:  # a full, read-only or forbidden output: name it and the block
            if exc.errno not in STORAGE_ERRNOS or isinstance(exc, BigpaintError):
                raise
            raise storage_error(exc, dest.url) from None
    else:
        dest[(Ellipsis, *core_sl)] = out
    return time.perf_counter() - t0


def apply_blockwise(
    func: Callable[..., np.ndarray],
    source: Any,
    dest: FieldWriter | np.ndarray,
    context: int | Sequence[int],
    *,
    chunks: Any = None,
    check_finite: bool = True,
    progress: bool = False,
    name: str = "blockwise",
    resources: dict[str, float] | None = None,
) -> int:
    """Apply ``func`` to every block with ``context`` voxels of periodic neighbourhood.

    Parameters
    ----------
    func : callable
        ``func(window) -> array`` or ``func(window, block_info=BlockInfo) -> array``, where
        ``window`` is the block plus ``context`` voxels on each side along the last three
        axes. It returns either the whole window (the core is cut out) or just the core;
        leading (channel) axes may change size. Must be picklable for distributed runs.
    source : Field Dataset, zarr.Array or numpy.ndarray
        Input; the last three axes are spatial and periodic.
    dest : FieldWriter or numpy.ndarray
        Output. A FieldWriter is written block by block (one task per write block) and
        resumed: blocks already marked done are skipped; it is finalized at the end. A numpy
        destination forces the local threaded scheduler.
    context : int or sequence of 3 int
        Voxels of periodic neighbourhood per side (from :mod:`bigpaint.context`).
    chunks : optional
        Block layout (dask convention, uneven allowed) for numpy destinations; a FieldWriter
        dictates its own write grid and other chunks are refused.
    check_finite : bool
        Refuse NaN/inf in the input, checked on each block as it is read.
    progress : bool
        Report block progress (see :func:`run_tasks`).
    resources : dict, optional
        Worker resources per task on a distributed cluster (e.g. ``{"GPU": 1}``).

    Returns
    -------
    int
        Number of blocks computed in this call (0 when everything was already done).
    """
    src = _source_array(source)
    spatial = tuple(src.shape[-3:])
    if len(src.shape) not in (3, 4):
        raise ShapeError(f"source must be 3-D or 4-D (channel first), got shape {src.shape}")
    if tuple(dest.shape[-3:]) != spatial:
        raise ShapeError(
            f"destination spatial shape {dest.shape[-3:]} differs from source {spatial}"
        )
    if isinstance(dest, FieldWriter):
        grid_chunks = dest.block_chunks
        if chunks is not None and BlockGrid(spatial, chunks).chunks != grid_chunks:
            raise ChunkingError(
                f"chunks {chunks} differ from the output Field's write blocks {dest.chunks}; "
                "create the output with the chunking you want instead"
            )
        plan = BlockPlan.build(spatial, grid_chunks, context)
        todo: list[tuple[int, ...]] = list(dest.pending())
        scheduler = None
    else:
        plan = BlockPlan.build(spatial, chunks if chunks is not None else spatial, context)
        todo = list(plan.blocks())
        scheduler = "threads"
    calls = [(idx,) for idx in todo]
    run_tasks(
        _run_block,
        calls,
        shared={
            "func": func,
            "source": src,
            "dest": dest,
            "plan": plan,
            "check_finite": check_finite,
            "pass_info": _takes_block_info(func),
        },
        name=name,
        progress=progress,
        scheduler=scheduler,
        resources=resources,
    )
    if isinstance(dest, FieldWriter):
        dest.finalize()
    return len(todo)
