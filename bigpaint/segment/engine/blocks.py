"""Pass 1 of the segmentation, one task per block: markers, pieces, faces, interior floods.

Each task reads ``block + 2 * marker_context`` with periodic wrap and finds the markers of
the core (:mod:`bigpaint.segment.markers`), the foreground mask, ``scipy.ndimage.label`` of
the core with each local piece named ``1 +`` its smallest global voxel index, the piece
table (voxels, bounding box), and the six boundary layers of the piece names, written to
the seam face arrays (one writer per block). A piece that touches no face of the block
cannot reach another block, so it is a whole component: it is flooded here with
scikit-image and its regions summed (most of the volume, for blocks much larger than the
objects). Each block's result is a typed :class:`~bigpaint.segment.records.BlockResult`,
kept in the scratch when there is one.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from bigpaint.blockwise import BlockPlan
from bigpaint.chunked.graph import run_tasks
from bigpaint.segment import scratch as store
from bigpaint.segment.dynamics import basin_saddles
from bigpaint.segment.engine.inputs import check_block, read_window
from bigpaint.segment.engine.params import Job, SegmentParams
from bigpaint.segment.engine.primitives import flood_in_block, label_core, write_partial
from bigpaint.segment.engine.reduce import region_sums
from bigpaint.segment.engine.seams import write_faces
from bigpaint.segment.markers import markers_in_window
from bigpaint.segment.records import BlockResult

__all__ = ["pass_block", "run_blocks"]


def run_blocks(job: Job) -> tuple[list[BlockResult], int]:
    """Pass 1 over every block not saved in the scratch: (results in block order, blocks
    resumed from the scratch)."""
    blocks = job.blocks
    saddles = job.params.h > 0
    done = store.load_done(job.scratch, "blocks", blocks, width=job.record_width, saddles=saddles)
    todo = [b for b in blocks if b not in done]
    new = run_tasks(
        pass_block,
        [(idx,) for idx in todo],
        shared={
            "source": job.source,
            "plan": job.plan,
            "params": job.params,
            "faces": job.faces,
            "dest": job.labels,
            "cache": job.scratch,
        },
        name="segment-blocks",
        progress=job.progress,
        scheduler=job.scheduler,
    )
    done.update(zip(todo, new, strict=True))
    return [done[b] for b in blocks], len(blocks) - len(todo)


def pass_block(
    index: tuple[int, ...],
    *,
    source: Any,
    plan: BlockPlan,
    params: SegmentParams,
    faces: Any,
    dest: Any,
    cache: str | None = None,
) -> BlockResult:
    """Pass 1 on one block: its markers, foreground pieces (with their boxes and seam
    faces) and the regions of the pieces that touch no face, flooded and summed here."""
    t0 = time.perf_counter()
    if cache is not None:  # this pass rewrites the block's provisional labels
        store.discard(cache, "flood", index)
    window = read_window(source, plan.window(index))
    core = plan.core(index)
    origin = tuple(s.start for s in core)
    ctx = plan.context
    inner = tuple(slice(c, n - c) for c, n in zip(ctx, window.shape, strict=True))
    d_core = window[inner]
    check_block(d_core, origin)
    if params.sigma > 0:
        from bigpaint.filters import gaussian_window

        s_win = gaussian_window(window, sigma=(params.sigma,) * 3, truncate=params.truncate)
    else:
        s_win = window
    box = plan.shape
    markers = markers_in_window(
        s_win,
        d_core,
        min_distance=params.min_distance,
        threshold=params.threshold,
        marker_threshold=params.peak_threshold,
        core_origin=origin,
        box=box,
    )
    _, lab, n, lut = label_core(d_core, params.threshold, params.connectivity, origin, box)
    write_faces(faces, index, core, lut[lab])
    counts = np.bincount(lab.ravel(), minlength=n + 1)[1:].astype(np.int64)
    lo = np.zeros((n, 3), dtype=np.int64)
    hi = np.zeros((n, 3), dtype=np.int64)
    for i, sl in enumerate(ndi.find_objects(lab)):
        lo[i] = [sl_.start for sl_ in sl]
        hi[i] = [sl_.stop for sl_ in sl]
    # a piece that touches no face of the core cannot meet another block (or itself across
    # the wrap): it is a whole component, flooded right here
    touch = np.any(lo == 0, axis=1) | np.any(hi == np.array(d_core.shape), axis=1)
    lo += np.asarray(origin)
    hi += np.asarray(origin)
    ny, nz = box[1], box[2]
    mc = np.stack([markers // (ny * nz), (markers // nz) % ny, markers % nz], axis=1)
    local = mc - np.asarray(origin)
    marker_lab = lab[local[:, 0], local[:, 1], local[:, 2]] if markers.size else markers
    interior = np.concatenate([[False], ~touch])
    inner_markers = markers[interior[marker_lab]] if markers.size else markers
    out = np.zeros(d_core.shape, dtype=np.int64)
    if inner_markers.size:
        mask = interior[lab]
        out = flood_in_block(d_core, mask, inner_markers, origin, box, params.connectivity)
    sums = region_sums(
        out,
        d_core,
        origin,
        box,
        np.asarray(params.trajectory_thresholds, dtype=np.float64),
        inner_markers + 1,
    )
    if params.h > 0:
        sums = sums.with_saddles(basin_saddles(out, d_core, params.connectivity))
    if dest is not None:
        write_partial(dest, core, out)
    result = BlockResult(
        markers=markers,
        marker_piece=lut[marker_lab].astype(np.int64),
        pieces=lut[1:],
        counts=counts,
        lo=lo,
        hi=hi,
        touch=touch,
        sums=sums,
        seconds=time.perf_counter() - t0,
    )
    if cache is not None:  # after the faces and provisional labels: saved means complete
        store.save(cache, "blocks", index, result)
    return result
