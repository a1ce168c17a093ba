"""The one place that derives how much periodic neighbourhood (context) an operation needs.

Every chunked operation gets its context from a function here, from a filter's kernel
support or (later) a network's receptive field, and hands it to
:func:`bigpaint.blockwise.apply_blockwise`. No operation computes its own overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["as_context", "gaussian_context", "marker_context"]


def as_context(context: int | Sequence[int], ndim: int = 3) -> tuple[int, ...]:
    """Normalise a context (voxels on each side) to one non-negative int per spatial axis."""
    if isinstance(context, int):
        out = (context,) * ndim
    else:
        out = tuple(int(c) for c in context)
    if len(out) != ndim:
        raise ValueError(f"context needs {ndim} values (one per spatial axis), got {out}")
    if any(c < 0 for c in out):
        raise ValueError(f"context must be >= 0 voxels, got {out}")
    return out


def gaussian_context(sigma: Sequence[float], truncate: float = 4.0) -> tuple[int, ...]:
    """Kernel radius of ``scipy.ndimage.gaussian_filter`` per axis, in voxels.

    scipy uses ``radius = int(truncate * sigma + 0.5)`` taps on each side; with at least
    that much periodic context, the chunked filter equals the whole-array filter exactly.

    Parameters
    ----------
    sigma : sequence of float
        Standard deviation per axis in voxels.
    truncate : float
        Truncate the kernel at this many standard deviations.
    """
    return tuple(int(truncate * float(s) + 0.5) for s in sigma)


def marker_context(
    min_distance: int, sigma: Sequence[float] = (0.0, 0.0, 0.0), truncate: float = 4.0
) -> tuple[int, ...]:
    """Context of the watershed marker search, in voxels per axis.

    A voxel is a marker when it is the maximum of the (optionally Gaussian-smoothed) map in
    the cube of half-width ``min_distance`` around it (:mod:`bigpaint.segment.markers`). The
    smoothed value at every voxel of that cube needs the Gaussian's kernel radius, so the
    context is ``gaussian_context(sigma, truncate) + min_distance`` on each axis; with it the
    chunked markers equal the whole-array markers exactly.

    Parameters
    ----------
    min_distance : int
        Half-width of the maximum cube in voxels (>= 1).
    sigma : sequence of float
        Standard deviation of the optional smoothing per axis in voxels (0: none).
    truncate : float
        Truncate the smoothing kernel at this many standard deviations.
    """
    if int(min_distance) < 1:
        raise ValueError(f"min_distance must be >= 1 voxel, got {min_distance}")
    return tuple(g + int(min_distance) for g in gaussian_context(sigma, truncate))
