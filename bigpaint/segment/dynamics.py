"""Merging watershed basins by dynamics: one region per significant maximum.

A marker finder with a minimum distance (``peak_local_max``) gives an elongated object one
marker per distant maximum: a true normalized distance map reaches its top value, 1, on
every deepest cell of an object, and those cells can lie farther apart than the minimum
distance. The reference protohalo pipeline uses h-maxima instead, which keep a maximum only
when it rises at least ``h`` above the highest saddle that connects it to a higher one (its
*dynamics*, Grimaud 1992).

bigpaint reaches the same regions after flooding: two basins are adjacent when a voxel of
one touches a voxel of the other, their saddle is the highest ``min(distance(a),
distance(b))`` over those touching pairs, and a basin's peak is its highest distance. Edges
are taken in decreasing saddle order (Kruskal on the basin graph); when an edge joins two
regions, the one with the lower peak (ties: the larger id) is absorbed by the other if its
peak lies less than ``h`` above the saddle. A region that meets a higher one at a saddle
``h`` or more below its peak keeps its identity for good, since later saddles are lower.
Afterwards, every two adjacent regions have ``min(peaks) - saddle >= h``, and each region
holds exactly one maximum of dynamics ``>= h`` (the maxima scikit-image's ``h_maxima``
keeps): the regions are the basins of the h-maxima, with the watershed lines of the
original flood between them.

Why this and not ``skimage.morphology.h_maxima`` before flooding: h-maxima need a
morphological reconstruction over the whole box, which no chunking of a 2048^3 map allows.
Basin edges are local (each basin lies inside one connected component, so the engine
collects them where it floods that component) and the merge runs on a small graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

from bigpaint.errors import ConfigError
from bigpaint.segment.components import check_connectivity, find_root, neighbour_offsets

__all__ = [
    "basin_saddles",
    "check_h",
    "merge_basins_periodic",
    "merge_by_dynamics",
    "reduce_saddles",
]


def check_h(h: float) -> float:
    """Refuse a merge height that is negative or not finite (one-line error)."""
    if not (isinstance(h, int | float) and math.isfinite(h) and h >= 0):
        raise ConfigError(
            f"h (the dynamics a maximum needs to keep its own region) must be a finite "
            f"distance >= 0, got {h!r}; e.g. 0.5 for a normalized map, 0 to merge nothing"
        )
    return float(h)


def _empty_edges() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)


def reduce_saddles(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join ``(a, b, saddle)`` edge lists into one edge per unordered label pair, with the
    highest saddle, sorted by ``(a, b)`` with ``a < b``."""
    if not parts:
        return _empty_edges()
    a = np.concatenate([np.asarray(p[0], np.int64) for p in parts])
    b = np.concatenate([np.asarray(p[1], np.int64) for p in parts])
    saddle = np.concatenate([np.asarray(p[2], np.float64) for p in parts])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    if lo.size == 0:
        return _empty_edges()
    order = np.lexsort((-saddle, hi, lo))
    lo, hi, saddle = lo[order], hi[order], saddle[order]
    first = np.ones(lo.size, dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return lo[first], hi[first], saddle[first]


def basin_saddles(
    labels: np.ndarray,
    distance: np.ndarray,
    connectivity: int = 1,
    periodic: Sequence[bool] = (False, False, False),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adjacent label pairs of a labelled map and the highest saddle between each pair.

    Parameters
    ----------
    labels : numpy.ndarray of int, 3-D
        Region labels (0: background, never adjacent to anything).
    distance : numpy.ndarray, 3-D
        The map the regions were flooded on (distance units).
    connectivity : {1, 2, 3}
        Voxel neighbourhood (as in the flood).
    periodic : sequence of 3 bool
        Axes along which the array wraps (voxels on opposite faces are adjacent).

    Returns
    -------
    a, b : numpy.ndarray of int64
        Label pairs, ``a < b``, sorted.
    saddle : numpy.ndarray of float64
        ``max over touching voxel pairs of min(distance)`` per pair, distance units.
    """
    check_connectivity(connectivity)
    labels = np.asarray(labels)
    distance = np.asarray(distance)
    if labels.shape != distance.shape or labels.ndim != 3:
        raise ValueError(f"labels {labels.shape} and distance {distance.shape} must be 3-D alike")
    if not labels.any():
        return _empty_edges()
    pad = [(1, 1) if p and n > 1 else (0, 0) for p, n in zip(periodic, labels.shape, strict=True)]
    if any(p != (0, 0) for p in pad):  # wrapped copies make the torus pairs plain slices
        labels = np.pad(labels, pad, mode="wrap")
        distance = np.pad(distance, pad, mode="wrap")
    shape = labels.shape
    parts = []
    for off in neighbour_offsets(connectivity, half=True):
        here = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(off, shape, strict=True))
        there = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(off, shape, strict=True))
        la, lb = labels[here], labels[there]
        sel = (la != lb) & (la != 0) & (lb != 0)
        if not sel.any():
            continue
        parts.append((la[sel], lb[sel], np.minimum(distance[here][sel], distance[there][sel])))
    return reduce_saddles(parts)


@numba.njit(cache=True)
def _merge(peak: np.ndarray, ea: np.ndarray, eb: np.ndarray, es: np.ndarray, h: float):
    parent = np.arange(peak.size)
    for k in range(ea.size):
        i = find_root(parent, ea[k])
        j = find_root(parent, eb[k])
        if i == j:
            continue
        if peak[i] > peak[j] or (peak[i] == peak[j] and i < j):
            high, low = i, j
        else:
            high, low = j, i
        if peak[low] - es[k] < h:
            parent[low] = high
    for i in range(peak.size):
        parent[i] = find_root(parent, i)
    return parent


def merge_by_dynamics(
    ids: np.ndarray,
    peaks: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    saddle: np.ndarray,
    h: float,
) -> np.ndarray:
    """The region every basin ends in after merging by dynamics (see the module docstring).

    Parameters
    ----------
    ids : numpy.ndarray of int64
        Basin labels, sorted, unique.
    peaks : numpy.ndarray of float64
        Highest distance of each basin.
    a, b, saddle : numpy.ndarray
        Basin adjacency (labels in ``ids``) and saddle heights, e.g. from
        :func:`basin_saddles`; duplicate pairs are reduced to their highest saddle.
    h : float
        A maximum keeps its region when it lies ``h`` or more above its saddle to a higher
        region (distance units); 0 merges nothing.

    Returns
    -------
    numpy.ndarray of int64
        Per basin, the label of its region: the basin with the region's highest peak (ties:
        the smallest label). Independent of the order of the edges.
    """
    ids = np.asarray(ids, np.int64)
    h = check_h(h)
    a, b, saddle = reduce_saddles([(a, b, saddle)])
    if h == 0 or a.size == 0:
        return ids.copy()
    ia, ib = np.searchsorted(ids, a), np.searchsorted(ids, b)
    if (
        np.any(ia >= ids.size)
        or np.any(ib >= ids.size)
        or np.any(ids[ia] != a)
        or np.any(ids[ib] != b)
    ):
        raise ValueError("an edge names a basin that is not in ids")
    order = np.lexsort((ib, ia, -saddle))
    parent = _merge(np.asarray(peaks, np.float64), ia[order], ib[order], saddle[order], h)
    return ids[parent]


def merge_basins_periodic(
    labels: np.ndarray, distance: np.ndarray, h: float, *, connectivity: int = 1
) -> np.ndarray:
    """Merge the basins of a whole periodic box by dynamics: the chunked engine's reference.

    Parameters
    ----------
    labels : numpy.ndarray of int, 3-D
        Watershed labels, e.g. from :func:`bigpaint.segment.watershed.watershed_periodic`.
    distance : numpy.ndarray, 3-D
        The map they were flooded on.
    h : float
        Merge height in distance units (see :func:`merge_by_dynamics`).
    connectivity : {1, 2, 3}

    Returns
    -------
    numpy.ndarray of int64
        Labels with every merged basin renamed to its region's label.
    """
    labels = np.asarray(labels, np.int64)
    distance = np.asarray(distance)
    flat = labels.ravel()
    sel = np.flatnonzero(flat)
    ids, inv = np.unique(flat[sel], return_inverse=True)
    peaks = np.full(ids.size, -np.inf)
    np.maximum.at(peaks, inv, distance.ravel()[sel].astype(np.float64))
    roots = merge_by_dynamics(
        ids, peaks, *basin_saddles(labels, distance, connectivity, (True,) * 3), h
    )
    out = np.zeros_like(flat)
    out[sel] = roots[inv]
    return out.reshape(labels.shape)
