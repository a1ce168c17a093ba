"""Connected components of a periodic mask, and the seam merging that makes them global.

A chunked labelling gives every chunk its own components; a component that crosses a chunk
face (or the periodic wrap) appears as several local pieces. The pieces are merged with a
union-find over the voxel pairs that touch across each seam. Identifiers are global and
deterministic without coordination: a local piece is named by ``1 + `` the smallest global
linear voxel index (``x * ny * nz + y * nz + z``) it holds, and a merged component by the
smallest name among its pieces, which is again ``1 +`` its smallest voxel index.

Why hand-written: scipy and scikit-image label one in-memory array and know no periodic
boundary; dask-image merges chunk labels but not across the periodic wrap, and relabels with
sequential counters that depend on the chunking. The union-find is a few lines of Numba
(path halving, the smaller root wins, so a set's root is its minimum).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numba
import numpy as np
import scipy.ndimage as ndi

from bigpaint.errors import ConfigError

__all__ = [
    "check_connectivity",
    "find_root",
    "label_periodic",
    "neighbour_offsets",
    "periodic_extent",
    "seam_pairs",
    "union_find",
]


def check_connectivity(connectivity: int) -> int:
    """Refuse a connectivity outside 1 (faces), 2 (+ edges), 3 (+ corners)."""
    if connectivity not in (1, 2, 3):
        raise ConfigError(
            f"connectivity must be 1 (faces), 2 (faces and edges) or 3 (all 26 neighbours), "
            f"got {connectivity!r}"
        )
    return int(connectivity)


def neighbour_offsets(connectivity: int, *, half: bool = False) -> np.ndarray:
    """Offsets of the neighbours of a voxel: ``|d|_1 <= connectivity``, ``d != 0``.

    Same neighbourhood as ``scipy.ndimage.generate_binary_structure(3, connectivity)`` and
    scikit-image's ``connectivity``. ``half=True`` keeps one of each pair ``+d, -d`` (the
    lexicographically positive one), for enumerating undirected edges once.
    """
    check_connectivity(connectivity)
    out = []
    for d in itertools.product((-1, 0, 1), repeat=3):
        if d == (0, 0, 0) or sum(abs(c) for c in d) > connectivity:
            continue
        if half and d < (0, 0, 0):
            continue
        out.append(d)
    return np.array(out, dtype=np.int64).reshape(-1, 3)


@numba.njit(cache=True)
def find_root(parent: np.ndarray, i: int) -> int:
    """Root of ``i`` in the union-find forest ``parent``, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True)
def _union_find(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    parent = np.arange(n)
    for p in range(a.size):
        ra = find_root(parent, a[p])
        rb = find_root(parent, b[p])
        if ra < rb:
            parent[rb] = ra
        elif rb < ra:
            parent[ra] = rb
    for i in range(n):
        parent[i] = find_root(parent, i)
    return parent


def union_find(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root of every element ``0..n-1`` after merging each pair ``(a[i], b[i])``.

    The root of a set is its smallest element, so the result does not depend on the order
    of the pairs.
    """
    a = np.ascontiguousarray(a, dtype=np.int64)
    b = np.ascontiguousarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"pair arrays differ in shape: {a.shape} vs {b.shape}")
    return _union_find(int(n), a, b)


def _structure(connectivity: int) -> np.ndarray:
    return ndi.generate_binary_structure(3, check_connectivity(connectivity))


def seam_pairs(
    lower: np.ndarray,
    upper: np.ndarray,
    connectivity: int,
    periodic: Sequence[bool] = (True, True),
) -> np.ndarray:
    """Label pairs that touch across a seam between two facing planes.

    ``lower`` is the layer just below the seam and ``upper`` the layer just above it (both
    2-D, the transverse axes). A voxel ``lower[j, k]`` touches ``upper[j + dj, k + dk]`` for
    every transverse step allowed by the connectivity (``1 + |dj| + |dk| <= connectivity``),
    with wrap along the transverse axes flagged ``periodic``.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` int64 unique pairs ``(lower label, upper label)`` with both labels > 0
        (equal labels included: a piece that touches itself across the seam).
    """
    lower = np.asarray(lower)
    upper = np.asarray(upper)
    out = []
    nb, nc = lower.shape
    for dj, dk in itertools.product((-1, 0, 1), repeat=2):
        if 1 + abs(dj) + abs(dk) > connectivity:
            continue
        if (dj and nb == 1 and not periodic[0]) or (dk and nc == 1 and not periodic[1]):
            continue
        shifted = np.roll(upper, (-dj, -dk), axis=(0, 1))  # shifted[j, k] = upper[j+dj, k+dk]
        valid = np.ones(lower.shape, dtype=bool)
        if not periodic[0] and dj:
            valid[(nb - 1) if dj > 0 else 0, :] = False
        if not periodic[1] and dk:
            valid[:, (nc - 1) if dk > 0 else 0] = False
        a = lower[valid]
        b = shifted[valid]
        keep = (a > 0) & (b > 0)
        if keep.any():
            out.append(np.stack([a[keep], b[keep]], axis=1).astype(np.int64))
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(out), axis=0)


def label_periodic(
    mask: np.ndarray,
    connectivity: int = 1,
    periodic: Sequence[bool] = (True, True, True),
    *,
    renumber: bool = True,
) -> tuple[np.ndarray, int]:
    """Connected components of a 3-D mask with periodic wrap along the flagged axes.

    ``scipy.ndimage.label`` labels the array; pieces that touch across a periodic face are
    merged with :func:`union_find`. Labels are ``1..n`` in order of each component's first
    voxel in C order (so the labelling does not depend on how the pieces were found).

    Parameters
    ----------
    mask : numpy.ndarray of bool, 3-D
    connectivity : {1, 2, 3}
        Neighbourhood as in ``scipy.ndimage.generate_binary_structure(3, connectivity)``.
    periodic : sequence of 3 bool
        Axes along which the array wraps (the whole box: all three).
    renumber : bool
        Number the components ``1..n``; False leaves scipy's labels merged across the wrap
        (distinct per component, not consecutive; ``n`` is then scipy's count).

    Returns
    -------
    labels : numpy.ndarray of int64
    n : int
        Number of components.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"label_periodic needs a 3-D mask, got shape {mask.shape}")
    lab, n = ndi.label(mask, structure=_structure(connectivity))
    lab = lab.astype(np.int64, copy=False)
    pairs = []
    for axis in range(3):
        if not periodic[axis]:
            continue
        lower = np.take(lab, -1, axis=axis)
        upper = np.take(lab, 0, axis=axis)
        trans = [periodic[a] for a in range(3) if a != axis]
        pairs.append(seam_pairs(lower, upper, connectivity, trans))
    if pairs:
        p = np.concatenate(pairs)
        roots = union_find(n + 1, p[:, 0], p[:, 1])
        lab = roots[lab]
    if not renumber:
        return lab, int(n)
    # renumber 1..n by first appearance in C order
    flat = lab.ravel()
    ids, first = np.unique(flat, return_index=True)
    first = first[ids > 0]
    ids = ids[ids > 0]
    order = np.argsort(first, kind="stable")
    lut = np.zeros(int(flat.max(initial=0)) + 1, dtype=np.int64)
    lut[ids[order]] = np.arange(1, ids.size + 1)
    return lut[lab], int(ids.size)


def periodic_extent(
    intervals: Sequence[tuple[int, int]] | np.ndarray, n: int
) -> tuple[int, int, bool]:
    """Smallest arc of a periodic axis of length ``n`` covering half-open intervals.

    Parameters
    ----------
    intervals : sequence of (lo, hi)
        Occupied ranges ``[lo, hi)`` with ``0 <= lo < hi <= n``.
    n : int
        Axis length in voxels.

    Returns
    -------
    start : int
        First voxel of the arc, in ``[0, n)``.
    extent : int
        Its length; the arc is ``start, start+1, ..., start+extent-1`` modulo ``n``.
    full : bool
        True when the intervals leave no free voxel: the arc is the whole axis (``start=0,
        extent=n``) and an object there may touch itself across the wrap.
    """
    iv = np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
    if iv.size == 0:
        raise ValueError("no intervals")
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    merged: list[list[int]] = []
    for lo, hi in iv:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], int(hi))
        else:
            merged.append([int(lo), int(hi)])
    # gaps between consecutive merged runs, and the one across the wrap
    best_gap, best_start = -1, 0
    for i, (_, hi) in enumerate(merged):
        nxt = merged[i + 1][0] if i + 1 < len(merged) else merged[0][0] + n
        gap = nxt - hi
        if gap > best_gap:
            best_gap, best_start = gap, nxt % n
    if best_gap <= 0:
        return 0, n, True
    return best_start, n - best_gap, False
