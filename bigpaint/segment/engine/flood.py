"""Pass 4 of the segmentation: flooding, one task per span group and one per block.

Spanning components are grouped by the block holding their bounding box's first corner;
one task per group (:func:`flood_group`) reads each box with periodic reads, labels the
mask in it (periodic along full axes), keeps the component, and floods it -- with
scikit-image when the box is unrolled (many small boxes packed into one call, separated by
empty planes), with bigpaint's periodic flood along full axes. One task per block
(:func:`flood_block`) then floods its remaining local components (those touching a face) in
place with scikit-image, pastes the spanning results that cross it, writes its labels
(optional) and returns per-region sums. The task graph carries the group results from
group to block tasks on the workers; nothing large passes through the client.

Memory per task is a block, or a spanning component's bounding box: bounded by the chunk
size as long as components are. A foreground that percolates through the box makes one
component as large as the box, so the largest box to flood is checked before any flooding
(:func:`check_flood_budget`).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from bigpaint.blockwise import BlockPlan
from bigpaint.chunked.graph import Ref, TaskGraph, run_graph
from bigpaint.errors import FloodTooLargeError
from bigpaint.field import FieldWriter
from bigpaint.segment import scratch as store
from bigpaint.segment.components import label_periodic
from bigpaint.segment.dynamics import basin_saddles, reduce_saddles
from bigpaint.segment.engine.inputs import read_window
from bigpaint.segment.engine.merge import BlockFlood, MergePlan, Span
from bigpaint.segment.engine.params import FLOOD_BYTES_PER_VOXEL, Job, SegmentParams
from bigpaint.segment.engine.primitives import (
    flood_in_block,
    label_core,
    member,
    read_partial,
    watershed,
)
from bigpaint.segment.engine.reduce import region_sums
from bigpaint.segment.records import FloodResult
from bigpaint.segment.watershed import flood_ranks, index_order

__all__ = ["check_flood_budget", "flood_block", "flood_group", "run_floods"]


#: Basin pairs ``a < b`` and their highest saddle (merging by dynamics).
Saddles = tuple[np.ndarray, np.ndarray, np.ndarray]
#: What flooding one span group returns: (anchor block, seconds, floods, basin saddles).
GroupFlood = tuple[tuple[int, ...], float, list[tuple[Span, np.ndarray]], list[Saddles]]


def _span_local(span: Span, points: np.ndarray, box: tuple[int, ...]) -> np.ndarray:
    """Coordinates in the span's box of global linear voxel indices, ``(n, 3)``."""
    ny, nz = box[1], box[2]
    c = np.stack([points // (ny * nz), (points // nz) % ny, points % nz], axis=1)
    return (c - np.asarray(span.start)) % np.asarray(box)


def _saddles(out: np.ndarray, d: np.ndarray, params: SegmentParams, periodic: Any) -> list[Saddles]:
    """Basin adjacency of a flood, when merging by dynamics (else nothing)."""
    return [basin_saddles(out, d, params.connectivity, periodic)] if params.h > 0 else []


def _flood_span(
    span: Span, source: Any, params: SegmentParams, box: tuple[int, ...]
) -> tuple[np.ndarray, list[Saddles]]:
    """Flood one spanning component on its periodic box (periodic along full axes);
    also its basin saddles when merging by dynamics."""
    window = [(s, s + e) for s, e in zip(span.start, span.extent, strict=True)]
    d = read_window(source, window)
    lab, _ = label_periodic(d > params.threshold, params.connectivity, span.full, renumber=False)
    comp = lab == lab[tuple(_span_local(span, np.array([span.name - 1]), box)[0])]
    markers = np.zeros(d.shape, dtype=np.int64)
    ml = _span_local(span, span.markers, box)
    markers[ml[:, 0], ml[:, 1], ml[:, 2]] = span.markers + 1
    ranks = flood_ranks(d, comp, index_order(span.start, d.shape, box))
    out = watershed(ranks, markers, comp, params.connectivity, span.full)
    out[~comp] = 0
    return out, _saddles(out, d, params, span.full)


#: Packs of unrolled spanning components flooded in one scikit-image call hold at most this
#: many voxels (and at most twice the voxels of their boxes).
_PACK_VOXELS = 1 << 23


def _flood_packed(
    spans: list[Span], source: Any, params: SegmentParams, box: tuple[int, ...]
) -> tuple[list[np.ndarray], list[Saddles]]:
    """Flood several unrolled spanning components in ONE scikit-image call.

    Their boxes are stacked along x with an empty plane between neighbours, so no two
    components touch; one labelling, one ranking and one watershed serve them all. The
    result per component is what :func:`_flood_span` gives (the flood of a component
    depends only on its own voxels, ranks and markers), without the fixed cost of a call
    per component (most spanning components are small).
    """
    ey = max(s.extent[1] for s in spans)
    ez = max(s.extent[2] for s in spans)
    x0 = np.cumsum([0] + [s.extent[0] + 1 for s in spans])
    nx = int(x0[-1])
    reads = [
        read_window(source, [(a, a + e) for a, e in zip(s.start, s.extent, strict=True)])
        for s in spans
    ]
    d = np.zeros((nx, ey, ez), dtype=reads[0].dtype)
    order = np.zeros((nx, ey, ez), dtype=np.int64)
    markers = np.zeros((nx, ey, ez), dtype=np.int64)
    offset = 0
    for s, x, r in zip(spans, x0[:-1], reads, strict=True):
        ex, sy, sz = s.extent
        part = (slice(x, x + ex), slice(0, sy), slice(0, sz))
        d[part] = r
        order[part] = index_order(s.start, s.extent, box) + offset
        offset += ex * sy * sz
        ml = _span_local(s, s.markers, box)
        markers[ml[:, 0] + x, ml[:, 1], ml[:, 2]] = s.markers + 1
    lab, _ = ndi.label(d > params.threshold, ndi.generate_binary_structure(3, params.connectivity))
    comp = np.zeros(d.shape, dtype=bool)
    for s, x in zip(spans, x0[:-1], strict=True):
        rl = _span_local(s, np.array([s.name - 1]), box)[0]
        part = (slice(x, x + s.extent[0]), slice(0, s.extent[1]), slice(0, s.extent[2]))
        comp[part] = lab[part] == lab[rl[0] + x, rl[1], rl[2]]
    out = watershed(flood_ranks(d, comp, order), markers, comp, params.connectivity, (False,) * 3)
    out[~comp] = 0
    floods = [
        out[x : x + s.extent[0], : s.extent[1], : s.extent[2]]
        for s, x in zip(spans, x0[:-1], strict=True)
    ]
    return floods, _saddles(out, d, params, (False,) * 3)


def _packs(spans: list[Span]) -> list[list[Span]]:
    """Group unrolled spans into packs of bounded size and bounded padding waste."""
    todo = sorted(spans, key=lambda s: (s.extent[1] * s.extent[2], s.extent[1]), reverse=True)
    packs: list[list[Span]] = []
    cur: list[Span] = []
    vol = nx = ey = ez = 0
    for s in todo:
        v = int(np.prod(s.extent))
        ny_, nz_ = max(ey, s.extent[1]), max(ez, s.extent[2])
        padded = (nx + s.extent[0] + 1) * ny_ * nz_
        if cur and (padded > _PACK_VOXELS or padded > 2 * (vol + v) + 4096):
            packs.append(cur)
            cur, vol, nx, ny_, nz_ = [], 0, 0, s.extent[1], s.extent[2]
        cur.append(s)
        vol += v
        nx += s.extent[0] + 1
        ey, ez = ny_, nz_
    if cur:
        packs.append(cur)
    return packs


def flood_group(
    anchor: tuple[int, ...],
    spans: list[Span],
    *,
    source: Any,
    params: SegmentParams,
    box: tuple[int, ...],
) -> GroupFlood:
    """Flood the spanning components anchored in one block: (anchor, seconds, floods,
    basin saddles). A component's flood depends only on its own voxels, ranks and markers."""
    t0 = time.perf_counter()
    out, saddles = [], []
    for s in spans:
        if any(s.full):
            flooded, sad = _flood_span(s, source, params, box)
            out.append((s, flooded))
            saddles += sad
    unrolled = [s for s in spans if not any(s.full)]
    for pack in _packs(unrolled):
        floods, sad = _flood_packed(pack, source, params, box)
        out.extend(zip(pack, floods, strict=True))
        saddles += sad
    return anchor, time.perf_counter() - t0, out, saddles


def _arc_overlap(start: int, extent: int, lo: int, hi: int, n: int) -> list[tuple[slice, slice]]:
    """Pieces of the arc ``[start, start+extent)`` (mod n) inside ``[lo, hi)``: (arc, core) slices."""
    out = []
    for k in (-1, 0, 1):
        a0 = max(start + k * n, lo)
        a1 = min(start + extent + k * n, hi)
        if a1 > a0:
            out.append((slice(a0 - start - k * n, a1 - start - k * n), slice(a0 - lo, a1 - lo)))
    return out


def _paste(
    out: np.ndarray, span: Span, labels: np.ndarray, core: tuple[slice, ...], box: tuple[int, ...]
) -> bool:
    """Copy a spanning component's flood into a block's core; False when they do not meet."""
    per_axis = []
    for s, e, c, n in zip(span.start, span.extent, core, box, strict=True):
        overlap = _arc_overlap(s, e, c.start, c.stop, n)
        if not overlap:
            return False
        per_axis.append(overlap)
    for (ax, cx), (ay, cy), (az, cz) in (
        (px, py, pz) for px in per_axis[0] for py in per_axis[1] for pz in per_axis[2]
    ):
        piece = labels[ax, ay, az]
        sel = piece != 0
        out[cx, cy, cz][sel] = piece[sel]
    return True


def flood_block(
    index: tuple[int, ...],
    work: BlockFlood,
    *group_results: GroupFlood,
    source: Any,
    plan: BlockPlan,
    params: SegmentParams,
    dest: Any,
    components: Any,
    cache: str | None = None,
) -> FloodResult:
    """Finish a block: flood its local pieces that touch a face (the interior ones were
    flooded in pass 1), paste the spanning floods that cross it, write, sum the regions."""
    t0 = time.perf_counter()
    core = plan.core(index)
    origin = tuple(s.start for s in core)
    box = plan.shape
    d = read_window(source, [(s.start, s.stop) for s in core])
    out = np.zeros(d.shape, dtype=np.int64)
    local_markers = work.local_markers
    if local_markers.size or components is not None:
        mask, lab, _, lut = label_core(d, params.threshold, params.connectivity, origin, box)
        names = lut[lab]
        if components is not None:
            comp = np.zeros(d.shape, dtype=np.int64)
            if work.pieces.size:
                comp[mask] = work.piece_comp[np.searchsorted(work.pieces, names[mask])]
            if isinstance(components, FieldWriter):
                components.write_block(index, comp)
            else:
                components[core] = comp
        if local_markers.size:
            local = mask & member(names, work.flood_pieces)
            out = flood_in_block(d, local, local_markers, origin, box, params.connectivity)
    candidates = [local_markers + 1]
    saddles = _saddles(out, d, params, (False,) * 3) if local_markers.size else []
    span_seconds = 0.0
    for anchor, seconds, group, group_saddles in group_results:
        if anchor == tuple(index):  # count each group once, in its anchor block
            span_seconds += seconds
            saddles += group_saddles
        for span, labels in group:
            if _paste(out, span, labels, core, box):
                candidates.append(span.markers + 1)
    if dest is not None:
        full = read_partial(dest, core)
        full[out != 0] = out[out != 0]
        if isinstance(dest, FieldWriter):
            dest.write_block(index, full)
        else:
            dest[core] = full
    sums = region_sums(
        out,
        d,
        origin,
        box,
        np.asarray(params.trajectory_thresholds, dtype=np.float64),
        np.unique(np.concatenate(candidates)),
    )
    if params.h > 0:
        sums = sums.with_saddles(reduce_saddles(saddles))
    result = FloodResult(sums, seconds=time.perf_counter() - t0, span_seconds=span_seconds)
    if cache is not None:  # after the labels are written and marked
        store.save(cache, "flood", index, result)
    return result


def check_flood_budget(
    stats: dict[str, Any], max_flood_gib: float | None, params: SegmentParams, shape: Any
) -> None:
    """Refuse, before any flooding, a component whose box would not fit the budget."""
    voxels = int(stats["largest_flood_box_voxels"])
    need = voxels * FLOOD_BYTES_PER_VOXEL / 2**30
    if max_flood_gib is None or need <= max_flood_gib:
        return
    share = voxels / math.prod(int(n) for n in shape)
    raise FloodTooLargeError(
        f"the foreground (distance > {params.threshold:g}) percolates: one connected "
        f"component spans a box of {voxels} voxels ({share:.0%} of the map), about "
        f"{need:.1f} GiB to flood, above the budget of {max_flood_gib:g} GiB; raise the "
        "threshold (--threshold) so the foreground breaks into objects, or raise the "
        "budget (--max-flood-gib) on a machine with the memory"
    )


def run_floods(job: Job, merged: MergePlan) -> tuple[list[FloodResult], int]:
    """Pass 4 over every block not saved in the scratch, and only the span groups those
    blocks need: (results in block order, blocks resumed from the scratch)."""
    blocks = job.blocks
    done = store.load_done(
        job.scratch, "flood", blocks, width=job.record_width, saddles=job.params.h > 0
    )
    todo = [(b, w) for b, w in zip(blocks, merged.work, strict=True) if b not in done]
    needed = sorted({g for _, w in todo for g in w.groups})
    renumber = {g: i for i, g in enumerate(needed)}
    todo = [(b, replace(w, groups=tuple(renumber[g] for g in w.groups))) for b, w in todo]
    graph, keys = _flood_graph(job, [merged.groups[g] for g in needed], todo)
    new = run_graph(graph, keys, scheduler=job.scheduler)
    done.update(zip([b for b, _ in todo], new, strict=True))
    return [done[b] for b in blocks], len(blocks) - len(todo)


def _flood_graph(
    job: Job,
    groups: list[tuple[tuple[int, ...], list[Span]]],
    todo: list[tuple[tuple[int, ...], BlockFlood]],
) -> tuple[TaskGraph, list[Ref]]:
    """One task per span group, one per block taking the groups it pastes (the group
    results pass from task to task on the workers)."""
    graph = TaskGraph("segment")
    source, params = graph.data("source", job.source), graph.data("params", job.params)
    box = graph.data("box", job.plan.shape)
    spans = [
        graph.task(flood_group, anchor, group, group="span", source=source, params=params, box=box)
        for anchor, group in groups
    ]
    shared = {
        "source": source,
        "plan": graph.data("plan", job.plan),
        "params": params,
        "dest": graph.data("dest", job.labels),
        "components": graph.data("components", job.components),
        "cache": graph.data("cache", job.scratch),
    }
    keys = [
        graph.task(flood_block, b, w, *[spans[g] for g in w.groups], group="block", **shared)
        for b, w in todo
    ]
    return graph, keys
