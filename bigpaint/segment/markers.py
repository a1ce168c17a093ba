"""Watershed markers: periodic local maxima of a distance map, found chunk by chunk.

Definition (``peak_local_max`` semantics, made periodic and tie-proof). With ``D`` the
distance map and ``S`` the map used for peaks (``D`` smoothed by a periodic Gaussian of
``sigma`` voxels, or ``D`` itself), a voxel ``p`` is a marker when

- ``S(p) > marker_threshold`` and ``D(p) > threshold`` (markers lie in the foreground), and
- ``p`` beats every other voxel ``q`` of the periodic cube of half-width ``min_distance``
  around it: ``S(q) < S(p)``, or ``S(q) == S(p)`` and ``q`` has the larger global linear
  index (``x * ny * nz + y * nz + z``).

This is ``skimage.feature.peak_local_max(S, min_distance=m, threshold_abs=t,
exclude_border=False)`` (Chebyshev spacing, ``p_norm=inf``) on a periodic box whenever no two
voxels in a cube share a value: then every maximum of its cube is farther than ``m`` from
every other, and scikit-image's spacing pass removes nothing. Where values tie (plateaus
of true distance maps), scikit-image keeps a greedy, order-dependent subset; here the
smallest index wins, which is a local rule, so a chunk with ``min_distance`` (plus the
Gaussian radius) of context decides its voxels exactly as the whole box would. h-maxima,
which the protohalo paper's reference code also offers, is not local (a peak's dynamic can
depend on the whole component) and is not provided.

Marker identifiers are global and deterministic: ``1 +`` the marker voxel's linear index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import scipy.ndimage as ndi

from bigpaint.context import marker_context
from bigpaint.errors import ConfigError

__all__ = ["check_marker_params", "find_markers", "marker_image", "markers_in_window"]


def check_marker_params(min_distance: int, sigma: float, shape: Sequence[int]) -> None:
    """Refuse a marker cube that wraps onto itself or a negative smoothing width."""
    if int(min_distance) != min_distance or min_distance < 1:
        raise ConfigError(f"min_distance must be an integer >= 1 voxel, got {min_distance!r}")
    if 2 * int(min_distance) + 1 > min(shape):
        raise ConfigError(
            f"min_distance {min_distance} needs a box of at least {2 * min_distance + 1} voxels "
            f"per axis, got {tuple(shape)}; lower min_distance"
        )
    if not np.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"sigma must be finite and >= 0 voxels, got {sigma!r}")


@numba.njit(cache=True)
def _tie_break(
    s: np.ndarray,
    cand: np.ndarray,
    m: int,
    origin: np.ndarray,
    box: np.ndarray,
) -> np.ndarray:
    """Keep the candidates (cube maxima) that have no equal, lower-index voxel in their cube."""
    keep = np.ones(cand.shape[0], dtype=np.bool_)
    ny, nz = box[1], box[2]
    for c in range(cand.shape[0]):
        px, py, pz = cand[c, 0], cand[c, 1], cand[c, 2]
        v = s[px, py, pz]
        gp = (
            ((origin[0] + px) % box[0]) * ny * nz
            + ((origin[1] + py) % ny) * nz
            + ((origin[2] + pz) % nz)
        )
        for dx in range(-m, m + 1):
            if not keep[c]:
                break
            for dy in range(-m, m + 1):
                if not keep[c]:
                    break
                for dz in range(-m, m + 1):
                    if dx == 0 and dy == 0 and dz == 0:
                        continue
                    if s[px + dx, py + dy, pz + dz] == v:
                        gq = (
                            ((origin[0] + px + dx) % box[0]) * ny * nz
                            + ((origin[1] + py + dy) % ny) * nz
                            + ((origin[2] + pz + dz) % nz)
                        )
                        if gq < gp:
                            keep[c] = False
                            break
    return keep


def markers_in_window(
    s_window: np.ndarray,
    d_core: np.ndarray,
    *,
    min_distance: int,
    threshold: float,
    marker_threshold: float,
    core_origin: Sequence[int],
    box: Sequence[int],
) -> np.ndarray:
    """Markers of a block's core, from the peak map with ``min_distance`` of context.

    Parameters
    ----------
    s_window : numpy.ndarray, 3-D
        Peak map (smoothed or raw distance) on the core plus ``min_distance`` voxels of
        periodic context per side.
    d_core : numpy.ndarray, 3-D
        Raw distance on the core (the foreground test ``D > threshold``).
    min_distance : int
        Half-width of the maximum cube in voxels.
    threshold, marker_threshold : float
        Foreground and peak thresholds (distance units).
    core_origin : sequence of 3 int
        Global coordinates of the core's first voxel.
    box : sequence of 3 int
        Box shape in voxels.

    Returns
    -------
    numpy.ndarray of int64
        Global linear indices of the markers, ascending.
    """
    m = int(min_distance)
    inner = tuple(slice(m, n - m) for n in s_window.shape)
    s_core = s_window[inner]
    if s_core.shape != d_core.shape:
        raise ValueError(f"peak window core {s_core.shape} differs from core {d_core.shape}")
    cand = (s_core > marker_threshold) & (d_core > threshold)
    if not cand.any():
        return np.zeros(0, dtype=np.int64)
    smax = ndi.maximum_filter(s_window, size=2 * m + 1, mode="nearest")[inner]
    cand &= s_core >= smax
    coords = np.argwhere(cand)
    if coords.size:
        keep = _tie_break(
            np.ascontiguousarray(s_window),
            (coords + m).astype(np.int64),
            m,
            np.asarray(core_origin, dtype=np.int64) - m,
            np.asarray(box, dtype=np.int64),
        )
        coords = coords[keep]
    nx, ny, nz = (int(n) for n in box)
    g = (coords + np.asarray(core_origin, dtype=np.int64)) % np.array([nx, ny, nz])
    return np.sort(g[:, 0] * (ny * nz) + g[:, 1] * nz + g[:, 2])


def find_markers(
    distance: np.ndarray,
    *,
    min_distance: int = 2,
    threshold: float = 0.0,
    marker_threshold: float | None = None,
    sigma: float = 0.0,
    truncate: float = 4.0,
) -> np.ndarray:
    """Markers of a whole in-memory periodic box (see the module docstring).

    Parameters
    ----------
    distance : numpy.ndarray, 3-D
        Distance map (normalized or in cells).
    min_distance : int
        Half-width in voxels of the cube a marker must dominate.
    threshold : float
        Foreground is ``distance > threshold``; markers lie in it.
    marker_threshold : float, optional
        Peaks need a (smoothed) value above this; default ``threshold``.
    sigma : float
        Periodic Gaussian smoothing of the peak map in voxels (0: none).
    truncate : float
        Gaussian truncation in standard deviations.

    Returns
    -------
    numpy.ndarray of int64
        Global linear indices of the markers, ascending.
    """
    d = np.asarray(distance)
    check_marker_params(min_distance, sigma, d.shape)
    mt = threshold if marker_threshold is None else marker_threshold
    ctx = marker_context(min_distance, (sigma,) * 3, truncate)
    win = np.pad(d, [(c, c) for c in ctx], mode="wrap")
    s = win
    if sigma > 0:
        g = [c - min_distance for c in ctx]
        s = ndi.gaussian_filter(win, sigma, mode="wrap", truncate=truncate)
        s = s[tuple(slice(gi, n - gi) for gi, n in zip(g, s.shape, strict=True))]
    return markers_in_window(
        s,
        d,
        min_distance=min_distance,
        threshold=threshold,
        marker_threshold=mt,
        core_origin=(0, 0, 0),
        box=d.shape,
    )


def marker_image(shape: Sequence[int], markers: np.ndarray) -> np.ndarray:
    """An int64 array with ``1 + index`` at each marker's voxel and 0 elsewhere."""
    out = np.zeros(tuple(shape), dtype=np.int64)
    out.ravel()[np.asarray(markers, dtype=np.int64)] = np.asarray(markers, dtype=np.int64) + 1
    return out
