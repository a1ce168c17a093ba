"""Brute-force references for the segmentation tests (independent of bigpaint.segment)."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from bigpaint.segment.synthetic import normalized_distance, synthetic_protohalos


def offsets(connectivity: int) -> list[tuple[int, int, int]]:
    return [
        d
        for d in itertools.product((-1, 0, 1), repeat=3)
        if d != (0, 0, 0) and sum(map(abs, d)) <= connectivity
    ]


def periodic_components(mask: np.ndarray, connectivity: int, periodic=(True, True, True)):
    """Connected components of the voxel graph, wrap along flagged axes (scipy csgraph)."""
    shape = mask.shape
    idx = np.arange(mask.size).reshape(shape)
    rows, cols = [], []
    for d in offsets(connectivity):
        nb = idx
        valid = np.ones(shape, bool)
        for a, s in enumerate(d):
            if s == 0:
                continue
            nb = np.roll(nb, -s, axis=a)
            if not periodic[a]:
                sl = [slice(None)] * 3
                sl[a] = -1 if s > 0 else 0
                valid[tuple(sl)] = False
        ok = valid & mask & mask.ravel()[nb]
        rows.append(idx[ok])
        cols.append(nb[ok])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    g = sp.coo_matrix((np.ones(r.size), (r, c)), shape=(mask.size, mask.size))
    _, lab = connected_components(g, directed=False)
    out = np.where(mask.ravel(), lab + 1, 0).reshape(shape)
    return out


def markers_brute(s: np.ndarray, d: np.ndarray, m: int, thr: float, mthr: float) -> np.ndarray:
    """Periodic cube maxima with ties to the smaller linear index, by rolling the whole box."""
    gidx = np.arange(s.size).reshape(s.shape)
    keep = (s > mthr) & (d > thr)
    for dx, dy, dz in itertools.product(range(-m, m + 1), repeat=3):
        if (dx, dy, dz) == (0, 0, 0):
            continue
        sv = np.roll(s, (-dx, -dy, -dz), axis=(0, 1, 2))
        gv = np.roll(gidx, (-dx, -dy, -dz), axis=(0, 1, 2))
        keep &= (sv < s) | ((sv == s) & (gv > gidx))
    return np.flatnonzero(keep)


@functools.cache
def blobs(
    shape=(24, 24, 24), n=30, seed=0, big=0.0, tube=0.0, jitter=False, radius=(1.5, 4.0)
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, normalized distance) of random touching ellipsoids; ``jitter`` removes ties."""
    lab = synthetic_protohalos(shape, n, radius=radius, seed=seed, big_radius=big, tube_radius=tube)
    d = normalized_distance(lab)
    if jitter:
        rng = np.random.default_rng(seed + 7)
        d = np.where(d > 0, d + 1e-3 * rng.random(d.shape), 0).astype(np.float32)
    d.setflags(write=False)
    lab.setflags(write=False)
    return lab, d


def count_lifts(mask: np.ndarray, connectivity: int) -> bool:
    """True when no component winds around the box: every voxel's 27 copies in the
    3x3x3-tiled torus lie in different components."""
    tiled = np.tile(mask, (3, 3, 3))
    lab = periodic_components(tiled, connectivity)
    n = mask.shape
    for v in np.argwhere(mask)[:: max(1, int(mask.sum()) // 200)]:
        copies = {
            lab[v[0] + i * n[0], v[1] + j * n[1], v[2] + k * n[2]]
            for i, j, k in itertools.product(range(3), repeat=3)
        }
        if len(copies) != 27:
            return False
    return True


def saddles_brute(labels: np.ndarray, d: np.ndarray, connectivity: int, periodic) -> dict:
    """{(a, b): highest min(d) over touching voxel pairs}, a < b, by visiting every voxel."""
    out: dict = {}
    shape = labels.shape
    for v in itertools.product(*map(range, shape)):
        la = labels[v]
        if not la:
            continue
        for off in offsets(connectivity):
            w = [c + o for c, o in zip(v, off, strict=True)]
            if any(not p and not 0 <= c < n for c, p, n in zip(w, periodic, shape, strict=True)):
                continue
            w = tuple(c % n for c, n in zip(w, shape, strict=True))
            lb = labels[w]
            if lb and lb != la:
                key = (min(la, lb), max(la, lb))
                out[key] = max(out.get(key, -np.inf), min(float(d[v]), float(d[w])))
    return out
