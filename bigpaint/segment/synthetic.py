"""Synthetic protohalo label maps and their per-object normalized distance maps.

Test fixtures and benchmark inputs with known answers: random ellipsoids (each voxel goes to
the ellipsoid it lies deepest in, so overlapping ones touch along curved faces, as
neighbouring protohalos do), placed anywhere in a periodic box (across chunk seams, corners
and the wrap), optionally one object larger than a chunk and one tube that wraps the box
along x (a component that touches itself across the periodic boundary).

The distance map is the protohalo paper's target (section 2.2): the Euclidean distance of
every object voxel to the nearest voxel outside its object (edt's multi-label transform, made
periodic by wrap padding), divided by the object's maximum, so each object's centre is 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi

__all__ = ["normalized_distance", "synthetic_protohalos"]


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def synthetic_protohalos(
    shape: Sequence[int],
    n_objects: int,
    *,
    radius: tuple[float, float] = (2.0, 5.0),
    seed: int = 0,
    big_radius: float = 0.0,
    tube_radius: float = 0.0,
) -> np.ndarray:
    """A periodic label map of random touching ellipsoids.

    Parameters
    ----------
    shape : sequence of 3 int
        Box shape in voxels.
    n_objects : int
        Number of random ellipsoids.
    radius : (float, float)
        Range of the ellipsoids' semi-axes in voxels (log-uniform).
    seed : int
        Random seed.
    big_radius : float
        Semi-axis scale of one extra large ellipsoid (0: none).
    tube_radius : float
        Radius of a tube along x through the whole box (0: none); it wraps onto itself.

    Returns
    -------
    numpy.ndarray of int32
        Object labels ``1..k`` (0: background). Objects may be absent where others win.
    """
    shape = tuple(int(n) for n in shape)
    rng = np.random.default_rng(seed)
    best = np.full(shape, np.inf, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.int32)
    specs = []
    for _ in range(n_objects):
        axes = np.exp(rng.uniform(np.log(radius[0]), np.log(radius[1]), 3))
        specs.append((rng.uniform(0, shape), axes))
    if big_radius > 0:
        specs.append((rng.uniform(0, shape), big_radius * rng.uniform(0.8, 1.2, 3)))
    for label, (centre, axes) in enumerate(specs, start=1):
        rot = _rotation(rng)
        reach = int(np.ceil(axes.max())) + 1
        lo = np.floor(centre).astype(int) - reach
        idx = [np.arange(lo[a], lo[a] + 2 * reach + 1) for a in range(3)]
        grids = np.meshgrid(*idx, indexing="ij")
        rel = np.stack([g + 0.5 - centre[a] for a, g in enumerate(grids)], axis=-1)
        body = (rel @ rot) / axes
        rho = np.sqrt((body**2).sum(-1)).astype(np.float32)
        wrapped = np.ix_(*[i % n for i, n in zip(idx, shape, strict=True)])
        # repeated indices (reach > box/2) keep the last write; objects are smaller than that
        cur = best[wrapped]
        win = (rho < 1) & (rho < cur)
        best[wrapped] = np.where(win, rho, cur)
        labels[wrapped] = np.where(win, label, labels[wrapped])
    if tube_radius > 0:
        yc, zc = rng.uniform(0, shape[1]), rng.uniform(0, shape[2])
        y = (np.arange(shape[1]) + 0.5 - yc + shape[1] / 2) % shape[1] - shape[1] / 2
        z = (np.arange(shape[2]) + 0.5 - zc + shape[2] / 2) % shape[2] - shape[2] / 2
        # the tube wiggles in y with x so it is not a straight prism
        x = np.arange(shape[0])
        wiggle = 1.5 * np.sin(2 * np.pi * x / shape[0])
        r2 = (y[None, :, None] - wiggle[:, None, None]) ** 2 + z[None, None, :] ** 2
        tube = r2 < tube_radius**2
        labels[tube & (labels == 0)] = len(specs) + 1
    return labels


def _largest_periodic_extent(labels: np.ndarray) -> int:
    """Largest extent of any object along any axis, across the wrap: the smaller of its
    bounding boxes in the array and in the array rolled by half the box."""
    half = tuple(n // 2 for n in labels.shape)
    a = ndi.find_objects(labels)
    b = ndi.find_objects(np.roll(labels, half, axis=(0, 1, 2)))
    best = 0
    for sa, sb in zip(a, b, strict=True):
        if sa is None:
            continue
        best = max(
            best, max(min(x.stop - x.start, y.stop - y.start) for x, y in zip(sa, sb, strict=True))
        )
    return best


def normalized_distance(labels: np.ndarray, *, periodic: bool = True) -> np.ndarray:
    """Per-object normalized Euclidean distance map of a label map (float32, in [0, 1]).

    Each object voxel gets its distance (in voxels) to the nearest voxel of another label or
    the background, divided by its object's maximum; background is 0.
    """
    import edt

    labels = np.asarray(labels)
    if not labels.any():
        return np.zeros(labels.shape, dtype=np.float32)
    if periodic:
        pad = min(_largest_periodic_extent(labels) // 2 + 2, min(labels.shape))
        padded = np.pad(labels, pad, mode="wrap")
        d = edt.edt(np.ascontiguousarray(padded), black_border=False)
        d = d[tuple(slice(pad, pad + n) for n in labels.shape)]
    else:
        d = edt.edt(np.ascontiguousarray(labels), black_border=False)
    d = d.astype(np.float32)
    peak = ndi.maximum(d, labels, np.arange(1, int(labels.max()) + 1))
    scale = np.zeros(int(labels.max()) + 1, dtype=np.float32)
    scale[1:] = np.where(np.asarray(peak) > 0, 1.0 / np.maximum(peak, 1e-30), 0.0)
    return (d * scale[labels]).astype(np.float32)
