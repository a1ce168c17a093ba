"""Whether one particle can be deposited: the numba primitives of every particle check.

:func:`bigpaint.mesh.assign.scan_particles` runs them over all particles on their own
(:func:`scan_statuses`); the
whole-grid deposit (:mod:`bigpaint.mesh.assign_planes`) runs them inside its first pass
over the positions, which reads every position anyway, so a deposit reads its input one
time fewer. Both keep, per part of the particles, the counts and first indices that
:func:`bigpaint.mesh.assign.scan_from_stats` turns into a message.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "FINE",
    "NONFINITE",
    "OUTSIDE",
    "is_fine",
    "note_status",
    "particle_status",
    "scan_statuses",
]

FINE, NONFINITE, OUTSIDE = 0, 1, 2


@njit(inline="always", cache=True)
def is_fine(pos, i, weights, has_w, bx, by, bz):
    """Whether particle ``i`` can be deposited as it is, in one test for the common case:
    NaN fails every comparison, and inf the bounds ``[0, bx]`` etc. (Mpc/h)."""
    x, y, z = pos[i, 0], pos[i, 1], pos[i, 2]
    fine = 0.0 <= x <= bx and 0.0 <= y <= by and 0.0 <= z <= bz
    return fine and (not has_w or np.isfinite(weights[i]))


@njit(inline="always", cache=True)
def particle_status(pos, i, weights, has_w, box):
    """``NONFINITE`` for a NaN/inf position or mass, ``OUTSIDE`` for a finite position out
    of ``[0, L]`` on some axis, else ``FINE``."""
    if is_fine(pos, i, weights, has_w, box[0], box[1], box[2]):
        return FINE
    if not (np.isfinite(pos[i, 0]) and np.isfinite(pos[i, 1]) and np.isfinite(pos[i, 2])):
        return NONFINITE
    if has_w and not np.isfinite(weights[i]):
        return NONFINITE
    return OUTSIDE


@njit(inline="always", cache=True)
def note_status(row, i, status):
    """Count particle ``i`` of ``status`` in ``row`` (non-finite count, first non-finite
    index, outside count, first outside index; the firsts -1 until one is seen); return
    whether it has a cell (is not ``NONFINITE``)."""
    if status == NONFINITE:
        row[0] += 1
        if row[1] < 0:
            row[1] = i
        return False
    if status == OUTSIDE:
        row[2] += 1
        if row[3] < 0:
            row[3] = i
    return True


@njit(parallel=True, cache=True)
def scan_statuses(pos, weights, has_w, box, nparts):
    """The counts of :func:`note_status` over all particles, one row per part of
    ``nparts`` consecutive ones (in parallel)."""
    n = pos.shape[0]
    stats = np.zeros((nparts, 4), np.int64)
    stats[:, 1] = -1
    stats[:, 3] = -1
    for t in prange(nparts):
        row = stats[t]
        for i in range(n * t // nparts, n * (t + 1) // nparts):
            note_status(row, i, particle_status(pos, i, weights, has_w, box))
    return stats
