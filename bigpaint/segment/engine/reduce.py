"""Region sums: per block in the block and flood passes, added over blocks at the end.

Each block sums its regions (:func:`region_sums`: voxels, minimum-image offsets from the
marker, distance sums and maxima, trajectory histograms); the client adds the sums of every
block (:func:`reduce_regions`), merges basins by dynamics when asked
(:mod:`bigpaint.segment.dynamics`: every flood also returned its basins' adjacency and
saddle heights, since a basin lies inside one component), and one task per block holding a
merged basin renames it in the written labels (:func:`run_renames`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bigpaint.blockwise import BlockPlan
from bigpaint.chunked.graph import run_tasks
from bigpaint.field import FieldWriter
from bigpaint.segment.dynamics import merge_by_dynamics, reduce_saddles
from bigpaint.segment.engine.merge import MergePlan
from bigpaint.segment.engine.params import Job, Segmentation, SegmentParams
from bigpaint.segment.engine.primitives import coords, member, read_partial
from bigpaint.segment.records import BlockResult, FloodResult, RegionSums

__all__ = ["reduce_regions", "region_sums", "rename_block", "run_renames"]


def region_sums(
    labels: np.ndarray,
    d: np.ndarray,
    origin: Sequence[int],
    box: Sequence[int],
    thresholds: np.ndarray,
    candidates: np.ndarray | None = None,
) -> RegionSums:
    """Per-label sums over a block; ``candidates`` (sorted) holds every label that may occur."""
    flat = labels.ravel()
    sel = np.flatnonzero(flat)
    if candidates is None:
        ids, inv = np.unique(flat[sel], return_inverse=True)
    else:  # a binary search per voxel instead of sorting the voxels
        inv = np.searchsorted(candidates, flat[sel])
        present = np.bincount(inv, minlength=candidates.size) > 0
        remap = np.cumsum(present) - 1
        ids, inv = candidates[present], remap[inv]
    k = ids.size
    dv = d.ravel()[sel].astype(np.float64)
    nx, ny, nz = (int(n) for n in box)
    pos = np.stack(np.unravel_index(sel, labels.shape), axis=1) + np.asarray(origin)
    mc = coords(ids, box)
    off = np.empty((k, 3), dtype=np.float64)
    for a, n in enumerate((nx, ny, nz)):
        rel = (pos[:, a] - mc[inv, a] + n // 2) % n - n // 2
        off[:, a] = np.bincount(inv, weights=rel, minlength=k)
    count = np.bincount(inv, minlength=k).astype(np.int64)
    dsum = np.bincount(inv, weights=dv, minlength=k)
    dmax = np.full(k, -np.inf)
    np.maximum.at(dmax, inv, dv)
    t = thresholds.size
    hist_n: np.ndarray
    hist_s: np.ndarray
    if t:
        b = np.searchsorted(thresholds, dv, side="left")  # thresholds strictly below dv
        hist_n = np.bincount(inv * (t + 1) + b, minlength=k * (t + 1)).reshape(k, t + 1)
        hist_s = np.bincount(inv * (t + 1) + b, weights=dv, minlength=k * (t + 1)).reshape(k, t + 1)
    else:
        hist_n = np.zeros((k, 1), dtype=np.int64)
        hist_s = np.zeros((k, 1))
    return RegionSums(
        ids=ids,
        count=count,
        offset=off,
        dsum=dsum.astype(np.float64, copy=False),  # bincount of nothing is int64
        dmax=dmax,
        hist_n=hist_n.astype(np.int64),
        hist_s=hist_s.astype(np.float64, copy=False),
    )


def reduce_regions(
    shape: tuple[int, int, int],
    params: SegmentParams,
    sums: list[RegionSums],
    merged: MergePlan,
) -> tuple[Segmentation, np.ndarray, np.ndarray]:
    """Add the per-block region sums; merge basins by dynamics when ``params.h > 0``.

    Returns the segmentation and the renaming of merged basins (old labels, sorted, and
    their regions' labels) that the written labels still need.
    """
    t = len(params.trajectory_thresholds)
    width = t + 1 if t else 1
    ids = np.concatenate([s.ids for s in sums]) if sums else np.zeros(0, np.int64)
    uid, inv = np.unique(ids, return_inverse=True)
    k = uid.size

    def add(values: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
        if values.ndim == 1:
            return np.bincount(index, weights=values, minlength=n)
        out = np.zeros((n, values.shape[1]), dtype=np.float64)
        np.add.at(out, index, values)
        return out

    def cat(name: str, cols: int | None = None) -> np.ndarray:
        vals = np.concatenate([getattr(s, name) for s in sums]) if sums else np.zeros(0)
        return vals if cols is None else vals.reshape(-1, cols)

    count = add(cat("count"), inv, k)
    off = add(cat("offset", 3), inv, k)
    dsum = add(cat("dsum"), inv, k)
    dmax = np.full(k, -np.inf)
    if k:
        np.maximum.at(dmax, inv, cat("dmax"))
    hist_n = add(cat("hist_n", width), inv, k)
    hist_s = add(cat("hist_s", width), inv, k)
    box = np.array(shape)
    renamed, into = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if params.h > 0 and k:
        edges = reduce_saddles([s.saddles for s in sums if s.saddles is not None])
        roots = merge_by_dynamics(uid, dmax, *edges, params.h)
        moved = roots != uid
        renamed, into = uid[moved], roots[moved]
        # each basin's offsets move to its region's marker: + count * (minimum image of the
        # vector between the two markers; exact while regions are under half the box)
        shift = (coords(uid, shape) - coords(roots, shape) + box // 2) % box - box // 2
        off = off + count[:, None] * shift
        uid, rinv = np.unique(roots, return_inverse=True)
        k = uid.size
        count, off, dsum = add(count, rinv, k), add(off, rinv, k), add(dsum, rinv, k)
        hist_n, hist_s = add(hist_n, rinv, k), add(hist_s, rinv, k)
        top = np.full(k, -np.inf)
        np.maximum.at(top, rinv, dmax)
        dmax = top
    count = count.round().astype(np.int64)
    hist_n = hist_n.round().astype(np.int64)
    # voxels above threshold j: bins j+1..t of "thresholds strictly below the value"
    traj_n = np.cumsum(hist_n[:, ::-1], axis=1)[:, ::-1][:, 1:] if t else np.zeros((k, 0), np.int64)
    traj_s = np.cumsum(hist_s[:, ::-1], axis=1)[:, ::-1][:, 1:] if t else np.zeros((k, 0))
    marker = coords(uid, shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (marker + off / np.maximum(count, 1)[:, None] + 0.5) % box
        mean = dsum / np.maximum(count, 1)
    mids = merged.marker_ids
    morder = np.argsort(mids)
    component = merged.marker_component[morder][np.searchsorted(mids[morder], uid)] if k else uid
    stats = dict(merged.stats)
    stats["regions"] = int(k)
    stats["merged_basins"] = int(renamed.size)
    seg = Segmentation(
        shape=shape,
        params=params,
        id=uid.astype(np.int64),
        component=component,
        volume=count,
        centre=centre,
        marker=marker.astype(np.int64),
        peak_distance=dmax,
        mean_distance=mean,
        trajectory_volume=traj_n.astype(np.int64),
        trajectory_sum=traj_s,
        stats=stats,
    )
    return seg, renamed, into


def rename_block(
    index: tuple[int, ...], *, plan: BlockPlan, dest: Any, renamed: np.ndarray, into: np.ndarray
) -> None:
    """Rename a block's merged basins to their regions' labels (idempotent: a resumed run
    may rename a block twice)."""
    core = plan.core(index)
    lab = read_partial(dest, core)
    pos = np.minimum(np.searchsorted(renamed, lab), renamed.size - 1)
    hit = renamed[pos] == lab
    lab[hit] = into[pos[hit]]
    if isinstance(dest, FieldWriter):
        dest.write_block(index, lab)
    else:
        dest[core] = lab


def run_renames(
    job: Job,
    p1: list[BlockResult],
    floods: list[FloodResult],
    renamed: np.ndarray,
    into: np.ndarray,
) -> None:
    """Rename merged basins in the written labels, in the blocks that hold one."""
    touched = [
        b
        for b, r1, r4 in zip(job.blocks, p1, floods, strict=True)
        if member(np.concatenate([r1.sums.ids, r4.sums.ids]), renamed).any()
    ]
    run_tasks(
        rename_block,
        [(b,) for b in touched],
        shared={"plan": job.plan, "dest": job.labels, "renamed": renamed, "into": into},
        name="segment-rename",
        progress=job.progress,
        scheduler=job.scheduler,
    )
