"""The chunked watershed: markers, seam-merged components, per-component flooding, region sums.

The result equals :func:`bigpaint.segment.watershed.watershed_periodic` on the whole box,
for any chunk layout, because flooding never crosses the foreground mask: every basin lies
inside one connected component of ``distance > threshold``, and each component is flooded
on its own, in bigpaint's total order (higher distance first, ties by global voxel index).

Passes (each a set of Dask tasks; the client only merges small tables):

1. **Blocks** (one task per block, reading ``block + 2 * marker_context`` with periodic
   wrap): markers of the core (:mod:`bigpaint.segment.markers`), the foreground mask,
   ``scipy.ndimage.label`` of the core, each local piece named ``1 +`` its smallest global
   voxel index, the piece table (voxels, bounding box), and the six boundary layers of the
   piece names, written to face arrays (one writer per block). A piece that touches no
   face of the block cannot reach another block, so it is a whole component: it is flooded
   here with scikit-image and its regions summed (most of the volume, for blocks much
   larger than the objects).
2. **Seams** (one task per seam plane, including the periodic wrap): the pairs of piece
   names that touch across the seam (:func:`bigpaint.segment.components.seam_pairs`).
3. **Merge** (client): a Numba union-find over the pairs names every component by its
   smallest piece name. A component with one piece and no pair is *local*; the others are
   *spanning*; a spanning component gets its periodic bounding box, which is the full axis
   where its pieces leave no free plane.
4. **Flood**: spanning components are grouped by the block holding their bounding box's
   first corner; one task per group reads each box with periodic reads, labels the mask in
   it (periodic along full axes), keeps the component, and floods it -- with scikit-image
   when the box is unrolled (many small boxes packed into one call, separated by empty
   planes), with bigpaint's periodic flood along full axes. One task per block then floods
   its remaining local components (those touching a face) in place with scikit-image,
   pastes the spanning results that cross it, writes its labels (optional) and returns
   per-region sums (voxels, centre offsets, distance sums and maxima, threshold
   trajectories). The Dask graph carries the group results from group to block tasks on
   the workers; nothing large passes through the client.
5. **Dynamics** (only with ``h > 0``, :mod:`bigpaint.segment.dynamics`): every flood above
   also returns its basins' adjacency and saddle heights (a basin lies inside one
   component, so the flood of that component sees all of its neighbours); the client
   merges the basin graph by dynamics, adds the merged basins' sums, and one task per
   block holding a merged basin renames it in the written labels.

Memory per task is a block window, or a spanning component's bounding box: bounded by the
chunk size as long as components are. A foreground that percolates through the box makes
one component as large as the box, so the largest box to flood is checked before any
flooding against ``max_flood_gib`` (about :data:`FLOOD_BYTES_PER_VOXEL` bytes per voxel of
the box): above it the run stops with :class:`~bigpaint.errors.FloodTooLargeError`, which
names the fix (a higher ``threshold``, so the foreground breaks into objects, or a larger
budget on a larger machine). :class:`Segmentation` reports the largest box flooded.

**Resume.** With ``scratch`` (a persistent directory, e.g. made by
:func:`bigpaint.segment.segment_field` next to its output) each block's pass-1 result and
each block's pass-4 sums are saved there as the block finishes, together with the seam
faces, as typed records (:mod:`bigpaint.segment.scratch`: JSON and ``.npy``, never pickle,
so nothing in the scratch runs code; written to a temporary name, then renamed, so a
record exists only complete). A second call with the same scratch skips every saved
block, recomputes the cheap seam and merge passes from the saved results, floods only the
blocks not done (and only the spanning groups they need), and gives the same result as an
uninterrupted run; a record that is damaged or of another version is deleted and its block
recomputed. The scratch records the shape, blocks and parameters and refuses a call with
others.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.ndimage as ndi
import xarray as xr
import zarr

from bigpaint.blockwise import BlockPlan
from bigpaint.chunked.graph import Ref, TaskGraph, run_graph, run_tasks
from bigpaint.chunked.read import FieldSource, periodic_read
from bigpaint.context import marker_context
from bigpaint.errors import (
    ChunkingError,
    ConfigError,
    FloodTooLargeError,
    NonFiniteError,
    ShapeError,
)
from bigpaint.field import FieldWriter, field_meta, zarr_array
from bigpaint.segment import scratch as _scratch
from bigpaint.segment.components import (
    check_connectivity,
    label_periodic,
    periodic_extent,
    seam_pairs,
    union_find,
)
from bigpaint.segment.dynamics import basin_saddles, check_h, merge_by_dynamics, reduce_saddles
from bigpaint.segment.errors import NotADistanceMapError
from bigpaint.segment.markers import check_marker_params, markers_in_window
from bigpaint.segment.scratch import BlockResult, FloodResult, RegionSums
from bigpaint.segment.watershed import flood, flood_ranks, index_order

__all__ = [
    "DEFAULT_MAX_FLOOD_GIB",
    "FLOOD_BYTES_PER_VOXEL",
    "SegmentParams",
    "Segmentation",
    "segment",
]

#: Memory of flooding a spanning component per voxel of its bounding box, bytes: the map
#: (float64 at most), the periodic labelling, mask, markers, flood ranks, index order and
#: output labels (int64 each), and scikit-image's queue and output. Measured with
#: tracemalloc: 43-46 bytes per voxel for a 306k-voxel component wrapping the box (float32
#: and float64 maps); 64 leaves headroom.
FLOOD_BYTES_PER_VOXEL = 64
#: Default budget of one flood, GiB (a component of the 512^3 benchmark floods ~0.15 MVoxel).
DEFAULT_MAX_FLOOD_GIB = 4.0


# ---------------------------------------------------------------- parameters and result


@dataclass(frozen=True)
class SegmentParams:
    """How to turn a distance map into regions.

    Attributes
    ----------
    threshold : float
        Foreground is ``distance > threshold`` (distance units; 0 for true maps).
    min_distance : int
        Markers dominate the periodic cube of this half-width, in voxels.
    marker_threshold : float or None
        Markers need a (smoothed) distance above this; None: ``threshold``.
    sigma : float
        Periodic Gaussian smoothing of the map used to find markers, in voxels (0: none);
        flooding always uses the raw map.
    truncate : float
        Gaussian truncation in standard deviations.
    connectivity : {1, 2, 3}
        Voxel neighbourhood of components and flooding (1: 6 faces, 3: 26 neighbours).
    trajectory_thresholds : tuple of float
        Increasing distance thresholds at which each region's voxels and summed distance are
        recorded (the adaptive-threshold trajectories); empty: none.
    h : float
        Merge basins by dynamics (:mod:`bigpaint.segment.dynamics`): a region whose peak lies
        less than ``h`` above its highest saddle to a higher region joins it, so each region
        holds one maximum of dynamics ``>= h`` (the h-maxima of the reference pipeline).
        Distance units; 0: no merging (one region per marker).
    """

    threshold: float = 0.0
    min_distance: int = 2
    marker_threshold: float | None = None
    sigma: float = 0.0
    truncate: float = 4.0
    connectivity: int = 1
    trajectory_thresholds: tuple[float, ...] = ()
    h: float = 0.0

    @property
    def peak_threshold(self) -> float:
        return self.threshold if self.marker_threshold is None else float(self.marker_threshold)

    @property
    def context(self) -> tuple[int, ...]:
        """Periodic context a block needs for its markers (from :mod:`bigpaint.context`)."""
        return marker_context(self.min_distance, (self.sigma,) * 3, self.truncate)

    def check(self, shape: Sequence[int]) -> None:
        """Refuse parameters that cannot work on a box of this shape (one-line errors)."""
        check_connectivity(self.connectivity)
        check_marker_params(self.min_distance, self.sigma, shape)
        check_h(self.h)
        for name in ("threshold", "truncate"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be finite, got {getattr(self, name)!r}")
        if self.truncate <= 0:
            raise ConfigError(f"truncate must be > 0 standard deviations, got {self.truncate}")
        if not math.isfinite(self.peak_threshold):
            raise ConfigError(f"marker_threshold must be finite, got {self.marker_threshold!r}")
        t = np.asarray(self.trajectory_thresholds, dtype=np.float64)
        if t.size and (not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0)):
            raise ConfigError(
                "trajectory_thresholds must be finite and strictly increasing, e.g. "
                "numpy.linspace(0, 1, 41)"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "min_distance": self.min_distance,
            "marker_threshold": self.peak_threshold,
            "sigma": self.sigma,
            "truncate": self.truncate,
            "connectivity": self.connectivity,
            "trajectory_thresholds": list(self.trajectory_thresholds),
            "h": self.h,
        }


@dataclass
class Segmentation:
    """Regions of a segmented distance map, in voxel units.

    Attributes
    ----------
    shape : tuple of 3 int
        Box shape in voxels.
    params : SegmentParams
    id : numpy.ndarray of int64
        Region label: ``1 +`` the global linear index of its marker voxel (of its highest
        basin's marker, for a region merged by dynamics).
    component : numpy.ndarray of int64
        Name of the connected foreground component holding the region (``1 +`` its smallest
        voxel index).
    volume : numpy.ndarray of int64
        Voxels in the region (cells).
    centre : numpy.ndarray of float64, (n, 3)
        Mean voxel position in voxel units, periodic (minimum image around the marker; for
        a region merged by dynamics, around each basin's marker, then moved to the region's:
        the same while regions span less than half the box), in ``[0, n)`` per axis; voxel
        ``i`` spans ``[i, i + 1)``, so its centre is ``i + 0.5``.
    marker : numpy.ndarray of int64, (n, 3)
        Marker voxel coordinates.
    peak_distance, mean_distance : numpy.ndarray of float64
        Maximum and mean of the distance map over the region.
    trajectory_volume : numpy.ndarray of int64, (n, T)
        Voxels of the region with ``distance > trajectory_thresholds[j]``.
    trajectory_sum : numpy.ndarray of float64, (n, T)
        Sum of the distance over those voxels.
    stats : dict
        Diagnostics: markers, components, spanning components, largest component and
        largest flooded box (voxels), foreground voxels no marker reached, basins merged
        into others by dynamics, seconds per pass.
    """

    shape: tuple[int, int, int]
    params: SegmentParams
    id: np.ndarray
    component: np.ndarray
    volume: np.ndarray
    centre: np.ndarray
    marker: np.ndarray
    peak_distance: np.ndarray
    mean_distance: np.ndarray
    trajectory_volume: np.ndarray
    trajectory_sum: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.id.size)


# ---------------------------------------------------------------- reading


def _read(source: Any, window: Sequence[tuple[int, int]]) -> np.ndarray:
    if isinstance(source, FieldSource):
        return source.read(window)
    return periodic_read(source, window)


def _check_block(d: np.ndarray, origin: Sequence[int]) -> None:
    """Refuse NaN/inf and negative distances, naming the first bad voxel."""
    bad = ~np.isfinite(d)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0] + np.asarray(origin))
        raise NonFiniteError(
            f"distance map holds {int(bad.sum())} NaN/inf values in this block (first at voxel "
            f"{first}); clean the input field first"
        )
    neg = d < 0
    if neg.any():
        local = tuple(int(i) for i in np.argwhere(neg)[0])
        first = tuple(i + int(o) for i, o in zip(local, origin, strict=True))
        raise NotADistanceMapError(
            f"the input is not a distance map: {int(neg.sum())} negative values in this block "
            f"(first {float(d[local]):.4g} at voxel {first}); segment a distance map (>= 0), "
            "not a density or overdensity field"
        )


def _piece_names(lab: np.ndarray, n: int, origin: Sequence[int], box: Sequence[int]) -> np.ndarray:
    """``1 +`` the smallest global voxel index of each label ``1..n`` of an unwrapped core."""
    flat = lab.ravel()
    pos = np.flatnonzero(flat)
    vals = flat[pos]
    # scipy numbers labels in order of first appearance in C order: a label's first voxel is
    # where the running maximum grows (checked; np.unique is the slow general fallback)
    new = np.empty(vals.size, dtype=bool)
    if vals.size:
        new[0] = True
        np.greater(vals[1:], np.maximum.accumulate(vals)[:-1], out=new[1:])
    labels, first = vals[new], pos[new]
    if labels.size != n or (n and (labels[0] != 1 or np.any(np.diff(labels) != 1))):
        labels, first = np.unique(flat, return_index=True)
        labels, first = labels[labels > 0], first[labels > 0]
    lut = np.zeros(n + 1, dtype=np.int64)
    coords = np.stack(np.unravel_index(first, lab.shape), axis=1) + np.asarray(origin)
    ny, nz = int(box[1]), int(box[2])
    lut[labels] = coords[:, 0] * (ny * nz) + coords[:, 1] * nz + coords[:, 2] + 1
    return lut


def _label_core(
    d_core: np.ndarray,
    threshold: float,
    connectivity: int,
    origin: Sequence[int],
    box: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    mask = d_core > threshold
    lab, n = ndi.label(mask, structure=ndi.generate_binary_structure(3, connectivity))
    lut = _piece_names(lab, n, origin, box)
    return mask, lab, n, lut


def _faces(faces: Any, axis: int) -> Any:
    if isinstance(faces, str):
        return zarr.open_array(f"{faces}/axis{axis}", mode="r+")
    return faces[axis]


# ---------------------------------------------------------------- pass 1: blocks


def _marker_image(
    shape: Sequence[int], markers: np.ndarray, origin: Sequence[int], box: Sequence[int]
) -> np.ndarray:
    """int64 array of a block's shape with ``1 + index`` at the given markers' voxels."""
    out = np.zeros(tuple(shape), dtype=np.int64)
    if markers.size:
        ny, nz = int(box[1]), int(box[2])
        m = markers
        mc = np.stack([m // (ny * nz), (m // nz) % ny, m % nz], axis=1) - np.asarray(origin)
        out[mc[:, 0], mc[:, 1], mc[:, 2]] = m + 1
    return out


def _write_partial(dest: Any, core: tuple[slice, ...], data: np.ndarray) -> None:
    """Write a block's provisional labels without marking it done (pass 4 completes it)."""
    if isinstance(dest, FieldWriter):
        from bigpaint.store import open_group

        open_group(dest.url, dest.storage_options, mode="r+")[dest.name][core] = data
    else:
        dest[core] = data


def _read_partial(dest: Any, core: tuple[slice, ...]) -> np.ndarray:
    if isinstance(dest, FieldWriter):
        from bigpaint.store import open_group

        return np.asarray(open_group(dest.url, dest.storage_options, mode="r")[dest.name][core])
    return np.asarray(dest[core])


def _pass_blocks(
    index: tuple[int, ...],
    *,
    source: Any,
    plan: BlockPlan,
    params: SegmentParams,
    faces: Any,
    dest: Any,
    cache: str | None = None,
) -> BlockResult:
    t0 = time.perf_counter()
    if cache is not None:  # this pass rewrites the block's provisional labels
        _scratch.discard(cache, "flood", index)
    window = _read(source, plan.window(index))
    core = plan.core(index)
    origin = tuple(s.start for s in core)
    ctx = plan.context
    inner = tuple(slice(c, n - c) for c, n in zip(ctx, window.shape, strict=True))
    d_core = window[inner]
    _check_block(d_core, origin)
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
    _, lab, n, lut = _label_core(d_core, params.threshold, params.connectivity, origin, box)
    names = lut[lab]
    for axis in range(3):
        arr = _faces(faces, axis)
        trans = tuple(core[a] for a in range(3) if a != axis)
        g = index[axis]
        arr[(2 * g, *trans)] = np.take(names, 0, axis=axis)
        arr[(2 * g + 1, *trans)] = np.take(names, -1, axis=axis)
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
        out = _watershed(
            flood_ranks(d_core, mask),
            _marker_image(d_core.shape, inner_markers, origin, box),
            mask,
            params.connectivity,
            (False,) * 3,
        ).astype(np.int64, copy=False)
    sums = _region_sums(
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
        _write_partial(dest, core, out)
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
        _scratch.save(cache, "blocks", index, result)
    return result


# ---------------------------------------------------------------- pass 2: seams


def _pass_seams(
    axis: int, seam: int, *, faces: Any, plan: BlockPlan, connectivity: int
) -> np.ndarray:
    g = len(plan.chunks[axis])
    arr = _faces(faces, axis)
    below = np.asarray(arr[2 * ((seam - 1) % g) + 1])
    above = np.asarray(arr[2 * seam])
    return seam_pairs(below, above, connectivity, (True, True))


# ---------------------------------------------------------------- pass 4: flooding


@dataclass(frozen=True)
class _Span:
    """A spanning component: its name, periodic bounding box and markers."""

    name: int
    start: tuple[int, int, int]
    extent: tuple[int, int, int]
    full: tuple[bool, bool, bool]
    markers: np.ndarray


def _watershed(
    ranks: np.ndarray,
    markers: np.ndarray,
    mask: np.ndarray,
    connectivity: int,
    periodic: Sequence[bool],
) -> np.ndarray:
    if any(periodic):
        return flood(ranks, markers, mask, connectivity=connectivity, periodic=periodic)
    from skimage.segmentation import watershed

    return watershed(ranks, markers, mask=mask, connectivity=connectivity)


def _span_local(span: _Span, points: np.ndarray, box: tuple[int, ...]) -> np.ndarray:
    """Coordinates in the span's box of global linear voxel indices, ``(n, 3)``."""
    ny, nz = box[1], box[2]
    c = np.stack([points // (ny * nz), (points // nz) % ny, points % nz], axis=1)
    return (c - np.asarray(span.start)) % np.asarray(box)


_Saddles = tuple[np.ndarray, np.ndarray, np.ndarray]


def _saddles(
    out: np.ndarray, d: np.ndarray, params: SegmentParams, periodic: Any
) -> list[_Saddles]:
    """Basin adjacency of a flood, when merging by dynamics (else nothing)."""
    return [basin_saddles(out, d, params.connectivity, periodic)] if params.h > 0 else []


def _flood_span(
    span: _Span, source: Any, params: SegmentParams, box: tuple[int, ...]
) -> tuple[np.ndarray, list[_Saddles]]:
    """Flood one spanning component on its periodic box (periodic along full axes);
    also its basin saddles when merging by dynamics."""
    window = [(s, s + e) for s, e in zip(span.start, span.extent, strict=True)]
    d = _read(source, window)
    lab, _ = label_periodic(d > params.threshold, params.connectivity, span.full, renumber=False)
    comp = lab == lab[tuple(_span_local(span, np.array([span.name - 1]), box)[0])]
    markers = np.zeros(d.shape, dtype=np.int64)
    ml = _span_local(span, span.markers, box)
    markers[ml[:, 0], ml[:, 1], ml[:, 2]] = span.markers + 1
    ranks = flood_ranks(d, comp, index_order(span.start, d.shape, box))
    out = _watershed(ranks, markers, comp, params.connectivity, span.full)
    out[~comp] = 0
    return out, _saddles(out, d, params, span.full)


#: Packs of unrolled spanning components flooded in one scikit-image call hold at most this
#: many voxels (and at most twice the voxels of their boxes).
_PACK_VOXELS = 1 << 23


def _flood_packed(
    spans: list[_Span], source: Any, params: SegmentParams, box: tuple[int, ...]
) -> tuple[list[np.ndarray], list[_Saddles]]:
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
        _read(source, [(a, a + e) for a, e in zip(s.start, s.extent, strict=True)]) for s in spans
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
    out = _watershed(flood_ranks(d, comp, order), markers, comp, params.connectivity, (False,) * 3)
    out[~comp] = 0
    floods = [
        out[x : x + s.extent[0], : s.extent[1], : s.extent[2]]
        for s, x in zip(spans, x0[:-1], strict=True)
    ]
    return floods, _saddles(out, d, params, (False,) * 3)


def _packs(spans: list[_Span]) -> list[list[_Span]]:
    """Group unrolled spans into packs of bounded size and bounded padding waste."""
    todo = sorted(spans, key=lambda s: (s.extent[1] * s.extent[2], s.extent[1]), reverse=True)
    packs: list[list[_Span]] = []
    cur: list[_Span] = []
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


def _flood_group(
    anchor: tuple[int, ...],
    spans: list[_Span],
    *,
    source: Any,
    params: SegmentParams,
    box: tuple[int, ...],
) -> tuple[tuple[int, ...], float, list[tuple[_Span, np.ndarray]], list[_Saddles]]:
    """Flood the spanning components anchored in one block: (anchor, seconds, floods,
    basin saddles)."""
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
    out: np.ndarray, span: _Span, labels: np.ndarray, core: tuple[slice, ...], box: tuple[int, ...]
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


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``numpy.isin`` for a small sorted set: a binary search per value, no sort of values."""
    idx = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[idx] == values


def _region_sums(
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
    mc = _coords(ids, box)
    off = np.empty((k, 3), dtype=np.float64)
    for a, n in enumerate((nx, ny, nz)):
        rel = (pos[:, a] - mc[inv, a] + n // 2) % n - n // 2
        off[:, a] = np.bincount(inv, weights=rel, minlength=k)
    count = np.bincount(inv, minlength=k).astype(np.int64)
    dsum = np.bincount(inv, weights=dv, minlength=k)
    dmax = np.full(k, -np.inf)
    np.maximum.at(dmax, inv, dv)
    t = thresholds.size
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


def _flood_block(
    index: tuple[int, ...],
    pieces: np.ndarray,
    piece_comp: np.ndarray,
    flood_pieces: np.ndarray,
    local_markers: np.ndarray,
    *group_results: tuple[tuple[int, ...], float, list[tuple[_Span, np.ndarray]], list[_Saddles]],
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
    d = _read(source, [(s.start, s.stop) for s in core])
    out = np.zeros(d.shape, dtype=np.int64)
    if local_markers.size or components is not None:
        mask, lab, _, lut = _label_core(d, params.threshold, params.connectivity, origin, box)
        names = lut[lab]
        if components is not None:
            comp = np.zeros(d.shape, dtype=np.int64)
            if pieces.size:
                comp[mask] = piece_comp[np.searchsorted(pieces, names[mask])]
            if isinstance(components, FieldWriter):
                components.write_block(index, comp)
            else:
                components[core] = comp
        if local_markers.size:
            local = mask & _member(names, flood_pieces)
            out = _watershed(
                flood_ranks(d, local),
                _marker_image(d.shape, local_markers, origin, box),
                local,
                params.connectivity,
                (False,) * 3,
            ).astype(np.int64, copy=False)
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
        full = _read_partial(dest, core)
        full[out != 0] = out[out != 0]
        if isinstance(dest, FieldWriter):
            dest.write_block(index, full)
        else:
            dest[core] = full
    sums = _region_sums(
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
        _scratch.save(cache, "flood", index, result)
    return result


# ---------------------------------------------------------------- execution


def _flood_graph(
    groups: list[tuple[tuple[int, ...], list[_Span]]],
    block_calls: list[tuple[Any, ...]],
    shared: dict[str, Any],
) -> tuple[TaskGraph, list[Ref]]:
    """The flood pass: one task per spanning group, one per block taking the groups it
    pastes (the group results pass from task to task on the workers)."""
    graph = TaskGraph("segment")
    refs = {k: graph.data(k, v) for k, v in shared.items()}
    spans = [
        graph.task(
            _flood_group,
            anchor,
            group,
            group="span",
            source=refs["source"],
            params=refs["params"],
            box=refs["box"],
        )
        for anchor, group in groups
    ]
    keys = [
        graph.task(
            _flood_block,
            *args,
            *[spans[g] for g in deps],
            group="block",
            source=refs["source"],
            plan=refs["plan"],
            params=refs["params"],
            dest=refs["dest"],
            components=refs["components"],
            cache=refs["cache"],
        )
        for *args, deps in block_calls
    ]
    return graph, keys


# ---------------------------------------------------------------- entry point


def _as_source(distance: Any) -> tuple[Any, tuple[int, int, int], Any]:
    """(reader, shape, default chunks) of a Field Dataset, Zarr array or numpy array."""
    if isinstance(distance, xr.Dataset):
        kind = distance.attrs.get("kind")
        if kind != "distance":
            raise NotADistanceMapError(
                f"{distance.encoding.get('bigpaint_url', 'the input')} is a Field of kind "
                f"{kind!r}, not a distance map; segment a Field of kind 'distance'"
            )
        field_meta(distance)
        src = FieldSource.from_field(distance)
        arr = zarr_array(distance)
        unit = getattr(arr, "shards", None) or arr.chunks
        shape = tuple(int(n) for n in arr.shape)
        if len(shape) != 3:
            raise ShapeError(f"a distance map is a 3-D Field, got shape {shape}")
        return src, shape, tuple(int(c) for c in unit)  # type: ignore[return-value]
    if isinstance(distance, (np.ndarray, zarr.Array)):
        if distance.ndim != 3:
            raise ShapeError(f"a distance map is 3-D, got shape {distance.shape}")
        if np.dtype(distance.dtype).kind not in "fiu":
            raise NotADistanceMapError(f"a distance map holds numbers, got dtype {distance.dtype}")
        shape = tuple(int(n) for n in distance.shape)
        chunks = distance.chunks if isinstance(distance, zarr.Array) else shape
        return distance, shape, chunks  # type: ignore[return-value]
    raise TypeError(
        f"distance must be an opened Field, a Zarr array or a numpy array, got {type(distance).__name__}"
    )


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
        scratch, input, blocks and parameters resumes from them (see the module
        docstring). Field input and Field outputs only. The caller removes it.
    max_flood_gib : float or None
        Memory budget of flooding one spanning component, GiB (estimated as
        :data:`FLOOD_BYTES_PER_VOXEL` per voxel of its bounding box); ``None``: no limit.
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
    src, shape, default_chunks = _as_source(distance)
    params.check(shape)
    in_memory = any(isinstance(a, np.ndarray) for a in (src, labels, components))
    if isinstance(src, zarr.Array) and not in_memory:
        in_memory = True  # a bare Zarr array is read by local threads
    plan = BlockPlan.build(shape, chunks if chunks is not None else default_chunks, params.context)
    for what, dest in (("labels", labels), ("components", components)):
        if isinstance(dest, FieldWriter) and dest.block_chunks != plan.chunks:
            raise ChunkingError(
                f"{what} Field write blocks {dest.chunks} differ from the segmentation blocks "
                f"{tuple(c[0] for c in plan.chunks)}; create it with the same chunks"
            )
        if isinstance(dest, np.ndarray) and dest.shape != shape:
            raise ShapeError(f"{what} array has shape {dest.shape}, the map {shape}")
    scheduler = "threads" if in_memory else None
    if max_flood_gib is not None and not max_flood_gib > 0:
        raise ConfigError(f"max_flood_gib must be > 0 GiB or None, got {max_flood_gib}")
    if scratch is not None and in_memory:
        raise ConfigError(
            "a resumable segmentation (scratch) needs a Field input and Field outputs; "
            "write the map as a Field or leave scratch out"
        )

    tmp = None
    resumed = False
    if scratch is not None:
        resumed = _scratch.open_scratch(
            scratch,
            {
                "shape": list(shape),
                "chunks": [list(c) for c in plan.chunks],
                "params": params.as_dict(),
                "outputs": [labels is not None, components is not None],
            },
        )
    if in_memory:
        faces: Any = [
            np.zeros((2 * len(plan.chunks[a]), *[shape[b] for b in range(3) if b != a]), np.int64)
            for a in range(3)
        ]
    else:
        if any(len(set(c[:-1])) > 1 for c in plan.chunks):
            raise ChunkingError(f"a Field run needs a regular block grid, got {plan.chunks}")
        if scratch is None:
            tmp = tempfile.mkdtemp(prefix="bigpaint-segment-", dir=workdir)
        faces = f"{scratch or tmp}/faces.zarr"
        if resumed and not _faces_intact(faces, plan):
            _scratch.clear(scratch, ("blocks",), reason="seam faces lost or altered")
            resumed = False  # the block records need their faces: redo the block pass
        group = zarr.open_group(faces, mode="a" if resumed else "w", zarr_format=3)
        for a in range(3):
            if resumed and f"axis{a}" in group:
                continue
            group.create_array(f"axis{a}", **_face_spec(plan, a))
    try:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        blocks = [tuple(int(i) for i in b) for b in plan.blocks()]
        width, saddles = len(params.trajectory_thresholds) + 1, params.h > 0
        done1 = _scratch.load_done(scratch, "blocks", blocks, width=width, saddles=saddles)
        todo1 = [b for b in blocks if b not in done1]
        new1 = run_tasks(
            _pass_blocks,
            [(idx,) for idx in todo1],
            shared={
                "source": src,
                "plan": plan,
                "params": params,
                "faces": faces,
                "dest": labels,
                "cache": scratch,
            },
            name="segment-blocks",
            progress=progress,
            scheduler=scheduler,
        )
        done1.update(zip(todo1, new1, strict=True))
        p1 = [done1[b] for b in blocks]
        timings["blocks_s"] = time.perf_counter() - t0
        timings["blocks_resumed"] = len(blocks) - len(todo1)
        t0 = time.perf_counter()
        seams = [(a, s) for a in range(3) for s in range(len(plan.chunks[a]))]
        pairs_list = run_tasks(
            _pass_seams,
            seams,
            shared={"faces": faces, "plan": plan, "connectivity": params.connectivity},
            name="segment-seams",
            progress=progress,
            scheduler=scheduler,
        )
        timings["seams_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        merged = _merge(plan, blocks, p1, pairs_list)
        timings["merge_s"] = time.perf_counter() - t0
        _check_flood_budget(merged["stats"], max_flood_gib, params, shape)
        t0 = time.perf_counter()
        done4 = _scratch.load_done(scratch, "flood", blocks, width=width, saddles=saddles)
        calls, groups = _todo_floods(merged, blocks, done4)
        graph, keys = _flood_graph(
            groups,
            calls,
            {
                "source": src,
                "plan": plan,
                "params": params,
                "dest": labels,
                "components": components,
                "box": shape,
                "cache": scratch,
            },
        )
        new4 = run_graph(graph, keys, scheduler=scheduler)
        done4.update(zip([c[0] for c in calls], new4, strict=True))
        sums = [done4[b] for b in blocks]
        timings["flood_blocks_resumed"] = len(blocks) - len(calls)
        timings["flood_s"] = time.perf_counter() - t0
        result, renamed, into = _reduce(
            shape, params, [r.sums for r in p1] + [f.sums for f in sums], merged
        )
        if labels is not None and renamed.size:
            t0 = time.perf_counter()
            touched = [
                b
                for b, r1, r4 in zip(blocks, p1, sums, strict=True)
                if _member(np.concatenate([r1.sums.ids, r4.sums.ids]), renamed).any()
            ]
            run_tasks(
                _rename_block,
                [(b,) for b in touched],
                shared={"plan": plan, "dest": labels, "renamed": renamed, "into": into},
                name="segment-rename",
                progress=progress,
                scheduler=scheduler,
            )
            timings["rename_s"] = time.perf_counter() - t0
        for dest in (labels, components):
            if isinstance(dest, FieldWriter):
                dest.finalize()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    timings["total_s"] = time.perf_counter() - t_start
    # seconds spent inside the tasks, summed over tasks (against wall time x workers:
    # the rest is scheduling, transfers and waiting for a core)
    timings["blocks_task_s"] = float(sum(r.seconds for r in p1))
    timings["spans_task_s"] = float(sum(x.span_seconds for x in sums))
    timings["flood_blocks_task_s"] = float(sum(x.seconds for x in sums))
    result.stats.update(timings)
    return result


def _face_spec(plan: BlockPlan, axis: int) -> dict[str, Any]:
    """How the face array of ``axis`` is created: two planes per block along it."""
    trans = [b for b in range(3) if b != axis]
    return {
        "shape": (2 * len(plan.chunks[axis]), *[plan.shape[b] for b in trans]),
        "chunks": (1, *[plan.chunks[b][0] for b in trans]),
        "dtype": "i8",
        "fill_value": 0,
    }


def _faces_intact(path: str, plan: BlockPlan) -> bool:
    """Whether a resumed scratch still holds the three face arrays this run would create
    (same shape, dtype, chunks and codecs: nothing else is ever decoded)."""

    def meta(arr: zarr.Array) -> Any:
        d = {k: v for k, v in arr.metadata.to_dict().items() if k != "attributes"}
        return json.loads(json.dumps(d, default=str))

    try:
        for a in range(3):
            want = zarr.create_array(zarr.storage.MemoryStore(), **_face_spec(plan, a))
            if meta(zarr.open_array(f"{path}/axis{a}", mode="r", zarr_format=3)) != meta(want):
                return False
    except (OSError, KeyError, ValueError, TypeError):  # zarr's errors are ValueErrors
        return False
    return True


def _check_flood_budget(
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


def _todo_floods(
    merged: dict[str, Any], blocks: list[tuple[int, ...]], done: dict[Any, Any]
) -> tuple[list[tuple[Any, ...]], list[tuple[tuple[int, ...], list[_Span]]]]:
    """The flood calls of the blocks not done, and only the spanning groups they need."""
    calls = [c for b, c in zip(blocks, merged["block_calls"], strict=True) if b not in done]
    needed = sorted({g for c in calls for g in c[-1]})
    renumber = {g: i for i, g in enumerate(needed)}
    groups = [merged["groups"][g] for g in needed]
    return [(*c[:-1], [renumber[g] for g in c[-1]]) for c in calls], groups


def _merge(
    plan: BlockPlan,
    blocks: list[tuple[int, ...]],
    p1: list[BlockResult],
    pairs_list: list[np.ndarray],
) -> dict[str, Any]:
    """Union-find over the seam pairs; classify components; plan the flooding tasks."""
    shape = plan.shape
    pieces = np.concatenate([r.pieces for r in p1])
    counts = np.concatenate([r.counts for r in p1])
    lo = np.concatenate([r.lo for r in p1]).reshape(-1, 3)
    hi = np.concatenate([r.hi for r in p1]).reshape(-1, 3)
    touch = np.concatenate([r.touch for r in p1]).astype(bool)
    owner = np.concatenate([np.full(r.pieces.size, i, dtype=np.int64) for i, r in enumerate(p1)])
    order = np.argsort(pieces, kind="stable")
    pieces, counts, lo, hi = pieces[order], counts[order], lo[order], hi[order]
    touch, owner = touch[order], owner[order]
    pairs = np.concatenate(pairs_list) if pairs_list else np.zeros((0, 2), np.int64)
    pairs = pairs.reshape(-1, 2)
    pa = np.searchsorted(pieces, pairs[:, 0])
    pb = np.searchsorted(pieces, pairs[:, 1])
    roots = union_find(pieces.size, pa, pb)
    comp_of_piece = pieces[roots] if pieces.size else pieces
    paired = np.zeros(pieces.size, dtype=bool)
    paired[pa] = True
    paired[pb] = True
    comps, comp_inv = np.unique(comp_of_piece, return_inverse=True)
    n_pieces = np.bincount(comp_inv, minlength=comps.size)
    spanning = (n_pieces > 1) | (np.bincount(comp_inv, weights=paired, minlength=comps.size) > 0)
    comp_volume = np.bincount(comp_inv, weights=counts, minlength=comps.size).astype(np.int64)
    piece_spans = spanning[comp_inv]

    markers = np.concatenate([r.markers for r in p1])
    marker_owner = np.concatenate(
        [np.full(r.markers.size, i, dtype=np.int64) for i, r in enumerate(p1)]
    )
    marker_pidx = np.searchsorted(pieces, np.concatenate([r.marker_piece for r in p1]))
    marker_comp_idx = comp_inv[marker_pidx] if markers.size else np.zeros(0, np.int64)
    has_marker = np.zeros(comps.size, dtype=bool)
    has_marker[marker_comp_idx] = True

    # spanning components: periodic boxes, grouped by the block of their first corner
    edges = [np.concatenate([[0], np.cumsum(c)]) for c in plan.chunks]
    span_idx = np.flatnonzero(spanning & has_marker)
    by_comp_pieces = np.argsort(comp_inv, kind="stable")
    starts = np.concatenate([[0], np.cumsum(n_pieces)])
    m_order = np.argsort(marker_comp_idx, kind="stable")
    m_bounds = np.searchsorted(marker_comp_idx[m_order], np.arange(comps.size + 1))
    groups_by_block: dict[tuple[int, ...], list[_Span]] = {}
    deps: dict[tuple[int, ...], set[tuple[int, ...]]] = {b: set() for b in blocks}
    largest_box = 0
    for c in span_idx:
        sel = by_comp_pieces[starts[c] : starts[c + 1]]
        start, extent, full, on_axis = [], [], [], []
        for a in range(3):
            st, ex, fu = periodic_extent(np.stack([lo[sel, a], hi[sel, a]], axis=1), shape[a])
            start.append(st)
            extent.append(ex)
            full.append(fu)
            # blocks along this axis that the arc [st, st + ex) (mod n) crosses
            e = edges[a]
            first = int(np.searchsorted(e, st, side="right")) - 1
            last_pos = st + ex - 1
            n_a = len(plan.chunks[a])
            if last_pos < shape[a]:
                last = int(np.searchsorted(e, last_pos, side="right")) - 1
                on_axis.append(range(first, last + 1))
            else:
                last = int(np.searchsorted(e, last_pos - shape[a], side="right")) - 1
                on_axis.append([*range(first, n_a), *range(0, min(last + 1, first))])
        span = _Span(
            int(comps[c]),
            tuple(start),  # type: ignore[arg-type]
            tuple(extent),  # type: ignore[arg-type]
            tuple(full),  # type: ignore[arg-type]
            np.sort(markers[m_order[m_bounds[c] : m_bounds[c + 1]]]),
        )
        largest_box = max(largest_box, int(np.prod(extent)))
        anchor = tuple(int(o[0]) for o in on_axis)
        groups_by_block.setdefault(anchor, []).append(span)
        for bx in on_axis[0]:
            for by in on_axis[1]:
                for bz in on_axis[2]:
                    deps[(bx, by, bz)].add(anchor)
    anchors = sorted(groups_by_block)
    group_id = {b: i for i, b in enumerate(anchors)}
    groups = [(b, groups_by_block[b]) for b in anchors]

    # per block: its pieces (for component labels), the face-touching local pieces it
    # floods itself and their markers (interior pieces were flooded in pass 1)
    by_owner = np.argsort(owner, kind="stable")
    owner_starts = np.searchsorted(owner[by_owner], np.arange(len(blocks) + 1))
    local_face = touch & ~piece_spans
    m_local = local_face[marker_pidx] if markers.size else np.zeros(0, bool)
    m_by_owner = np.argsort(marker_owner, kind="stable")
    m_owner_starts = np.searchsorted(marker_owner[m_by_owner], np.arange(len(blocks) + 1))
    block_calls = []
    for i, b in enumerate(blocks):
        mine = np.sort(by_owner[owner_starts[i] : owner_starts[i + 1]])  # sorted by name
        mk = m_by_owner[m_owner_starts[i] : m_owner_starts[i + 1]]
        block_calls.append(
            (
                b,
                pieces[mine],
                comp_of_piece[mine],
                pieces[mine][local_face[mine]],
                np.sort(markers[mk[m_local[mk]]]),
                sorted(group_id[a] for a in deps[b]),
            )
        )

    return {
        "groups": groups,
        "block_calls": block_calls,
        "marker_ids": markers + 1,
        "marker_component": comps[marker_comp_idx] if markers.size else markers,
        "stats": {
            "markers": int(markers.size),
            "components": int(comps.size),
            "spanning_components": int(np.count_nonzero(spanning)),
            "components_without_marker": int(np.count_nonzero(~has_marker)),
            "foreground_voxels": int(counts.sum()),
            "unassigned_voxels": int(comp_volume[~has_marker].sum()),
            "largest_component_voxels": int(comp_volume.max(initial=0)),
            "largest_flood_box_voxels": largest_box,
            "span_groups": len(groups),
        },
    }


def _reduce(
    shape: tuple[int, int, int],
    params: SegmentParams,
    sums: list[RegionSums],
    merged: dict[str, Any],
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
        shift = (_coords(uid, shape) - _coords(roots, shape) + box // 2) % box - box // 2
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
    marker = _coords(uid, shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (marker + off / np.maximum(count, 1)[:, None] + 0.5) % box
        mean = dsum / np.maximum(count, 1)
    mids = merged["marker_ids"]
    morder = np.argsort(mids)
    component = merged["marker_component"][morder][np.searchsorted(mids[morder], uid)] if k else uid
    stats = dict(merged["stats"])
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


def _coords(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Voxel coordinates ``(n, 3)`` of the markers that name regions (``1 +`` linear index)."""
    m = np.asarray(labels, np.int64) - 1
    ny, nz = int(shape[1]), int(shape[2])
    return np.stack([m // (ny * nz), (m // nz) % ny, m % nz], axis=1)


def _rename_block(
    index: tuple[int, ...], *, plan: BlockPlan, dest: Any, renamed: np.ndarray, into: np.ndarray
) -> None:
    """Rename a block's merged basins to their regions' labels (idempotent: a resumed run
    may rename a block twice)."""
    core = plan.core(index)
    lab = _read_partial(dest, core)
    pos = np.minimum(np.searchsorted(renamed, lab), renamed.size - 1)
    hit = renamed[pos] == lab
    lab[hit] = into[pos[hit]]
    if isinstance(dest, FieldWriter):
        dest.write_block(index, lab)
    else:
        dest[core] = lab
