"""The chunked segmentation as a list of phases: blocks, seams, merge, flood, reduce.

:func:`segment` checks its inputs and outputs, opens the resumable scratch and the seam
faces, then runs the phases in order (see :mod:`bigpaint.segment.engine`), timing each.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any, cast

import numpy as np
import zarr

from bigpaint.blockwise import BlockPlan
from bigpaint.errors import ChunkingError, ConfigError, ShapeError
from bigpaint.field import FieldWriter
from bigpaint.segment import scratch as store
from bigpaint.segment.engine import blocks, flood, seams
from bigpaint.segment.engine.inputs import as_source
from bigpaint.segment.engine.merge import merge
from bigpaint.segment.engine.params import (
    DEFAULT_MAX_FLOOD_GIB,
    Job,
    Segmentation,
    SegmentParams,
)
from bigpaint.segment.engine.reduce import reduce_regions, run_renames

__all__ = ["segment"]


def segment(
    distance: Any,
    params: SegmentParams | None = None,
    *,
    chunks: Any = None,
    labels: FieldWriter | np.ndarray | None = None,
    components: FieldWriter | np.ndarray | None = None,
    workdir: str | None = None,
    scratch: str | None = None,
    max_flood_gib: float | None = DEFAULT_MAX_FLOOD_GIB,
    progress: bool = False,
) -> Segmentation:
    """Segment a periodic distance map into watershed regions, chunk by chunk.

    Equal to :func:`bigpaint.segment.watershed.watershed_periodic` with markers from
    :func:`bigpaint.segment.markers.find_markers` on the whole box (then, with ``params.h
    > 0``, :func:`bigpaint.segment.dynamics.merge_basins_periodic`), for any chunk layout.

    Parameters
    ----------
    distance : Field Dataset (kind ``distance``), zarr.Array or numpy.ndarray
        The map, >= 0 everywhere; normalized (each object's centre is 1) or in cells.
    params : SegmentParams, optional
        Thresholds, marker spacing, smoothing, connectivity, trajectory thresholds.
    chunks : optional
        Block layout (dask convention; uneven allowed for in-memory input). Default: the
        Field's (or Zarr array's) chunks; one block for a numpy array.
    labels : FieldWriter or numpy.ndarray, optional
        Where to write the int64 region labels (``1 +`` marker voxel index, 0 background;
        a merged region carries the label of its highest basin).
        A FieldWriter must have the block layout of ``chunks``; it is finalized at the end.
    components : FieldWriter or numpy.ndarray, optional
        Where to write the int64 connected-component names of the foreground (``1 +`` each
        component's smallest voxel index; equal to a periodic labelling of the whole box up
        to renaming).
    workdir : str, optional
        Directory for the seam face arrays of a Field run (must be visible to every worker,
        e.g. on the shared file system of a SLURM cluster). Default: a temporary directory
        (fine for a LocalCluster). Removed at the end.
    scratch : str, optional
        A persistent directory (visible to every worker) that makes the run resumable: the
        faces and every finished block's results are kept there, and a call with the same
        scratch, input, blocks and parameters resumes from them (see
        :mod:`bigpaint.segment.engine`). Field input and Field outputs only. The caller
        removes it.
    max_flood_gib : float or None
        Memory budget of flooding one spanning component, GiB (estimated as
        :data:`~bigpaint.segment.engine.params.FLOOD_BYTES_PER_VOXEL` per voxel of its bounding box); ``None``: no limit.
    progress : bool
        Progress bars for the block passes.

    Returns
    -------
    Segmentation

    Raises
    ------
    FloodTooLargeError
        A component's bounding box needs more than ``max_flood_gib`` to flood (checked
        before any flooding).
    """
    t_start = time.perf_counter()
    params = params or SegmentParams()
    src, shape, default_chunks = as_source(distance)
    params.check(shape)
    plan = BlockPlan.build(shape, chunks if chunks is not None else default_chunks, params.context)
    in_memory = _check_outputs(src, plan, labels, components, scratch, max_flood_gib)
    resumed = scratch is not None and store.open_scratch(
        scratch,
        {
            "shape": list(shape),
            "chunks": [list(c) for c in plan.chunks],
            "params": params.as_dict(),
            "outputs": [labels is not None, components is not None],
        },
    )
    tmp = None
    try:
        path = None
        if not in_memory:
            seams.check_regular(plan)
            if scratch is None:
                tmp = tempfile.mkdtemp(prefix="bigpaint-segment-", dir=workdir)
            path = f"{scratch or tmp}/faces.zarr"
        faces = seams.open_faces(plan, path, scratch, resumed)
        job = Job(src, plan, params, faces, labels, components, scratch,
                  "threads" if in_memory else None, progress)  # fmt: skip
        result = _phases(job, max_flood_gib)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result.stats["total_s"] = time.perf_counter() - t_start
    return result


def _check_outputs(
    src: Any,
    plan: BlockPlan,
    labels: Any,
    components: Any,
    scratch: str | None,
    max_flood_gib: float | None,
) -> bool:
    """Refuse outputs and options that do not fit the run; True when it runs in memory."""
    in_memory = any(isinstance(a, np.ndarray) for a in (src, labels, components))
    in_memory = in_memory or isinstance(src, zarr.Array)  # a bare Zarr array: local threads
    for what, dest in (("labels", labels), ("components", components)):
        if isinstance(dest, FieldWriter) and dest.block_chunks != plan.chunks:
            raise ChunkingError(
                f"{what} Field write blocks {dest.chunks} differ from the segmentation blocks "
                f"{tuple(c[0] for c in plan.chunks)}; create it with the same chunks"
            )
        if isinstance(dest, np.ndarray) and dest.shape != plan.shape:
            raise ShapeError(f"{what} array has shape {dest.shape}, the map {plan.shape}")
    if max_flood_gib is not None and not max_flood_gib > 0:
        raise ConfigError(f"max_flood_gib must be > 0 GiB or None, got {max_flood_gib}")
    if scratch is not None and in_memory:
        raise ConfigError(
            "a resumable segmentation (scratch) needs a Field input and Field outputs; "
            "write the map as a Field or leave scratch out"
        )
    return in_memory


def _phases(job: Job, max_flood_gib: float | None) -> Segmentation:
    """Run the phases in order; the result's stats get the seconds of each."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    p1, timings["blocks_resumed"] = blocks.run_blocks(job)
    timings["blocks_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs = seams.run_seams(job)
    timings["seams_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    merged = merge(job.plan, job.blocks, p1, pairs)
    timings["merge_s"] = time.perf_counter() - t0
    flood.check_flood_budget(merged.stats, max_flood_gib, job.params, job.plan.shape)
    t0 = time.perf_counter()
    floods, timings["flood_blocks_resumed"] = flood.run_floods(job, merged)
    timings["flood_s"] = time.perf_counter() - t0
    result, renamed, into = reduce_regions(
        cast(tuple[int, int, int], job.plan.shape),
        job.params,
        [r.sums for r in p1] + [f.sums for f in floods],
        merged,
    )
    if job.labels is not None and renamed.size:
        t0 = time.perf_counter()
        run_renames(job, p1, floods, renamed, into)
        timings["rename_s"] = time.perf_counter() - t0
    for dest in (job.labels, job.components):
        if isinstance(dest, FieldWriter):
            dest.finalize()
    # seconds spent inside the tasks, summed over tasks (against wall time x workers:
    # the rest is scheduling, transfers and waiting for a core)
    timings["blocks_task_s"] = float(sum(r.seconds for r in p1))
    timings["spans_task_s"] = float(sum(x.span_seconds for x in floods))
    timings["flood_blocks_task_s"] = float(sum(x.seconds for x in floods))
    result.stats.update(timings)
    return result
