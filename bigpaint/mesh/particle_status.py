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
from numba.extending import overload

__all__ = [
    "FINE",
    "NONFINITE",
    "OUTSIDE",
    "coordinates",
    "is_fine",
    "note_status",
    "particle_status",
    "run_is_fine",
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


def coordinates(pos, box):
    """The coordinates of C-contiguous positions in a cubic box as one flat run, for
    :func:`run_is_fine`; for any other layout or box, an empty array."""
    cubic = box[0] == box[1] == box[2]
    return pos.reshape(-1) if cubic and pos.flags.c_contiguous else np.empty(0, pos.dtype)


@overload(coordinates)
def _coordinates(pos, box):
    if pos.layout == "C":

        def flat(pos, box):
            cubic = box[0] == box[1] and box[1] == box[2]
            return pos.reshape(-1) if cubic else np.empty(0, pos.dtype)

        return flat
    return lambda pos, box: np.empty(0, pos.dtype)


@njit(inline="always", cache=True)
def run_is_fine(pos, flat, weights, has_w, box, lo, hi):
    """Whether every particle lo..hi-1 passes :func:`is_fine`, in loops without a branch,
    which LLVM vectorizes: over the flat run ``flat`` of :func:`coordinates` where it has
    one (a cubic box), else particle by particle."""
    fine = True
    if flat.size:
        for j in range(3 * lo, 3 * hi):
            fine &= (flat[j] >= 0.0) & (flat[j] <= box[0])
    else:
        for i in range(lo, hi):
            fine &= is_fine(pos, i, weights, False, box[0], box[1], box[2])
    if has_w:
        for i in range(lo, hi):
            fine &= np.isfinite(weights[i])
    return fine


#: Particles checked at once by :func:`scan_statuses` before it looks at any one of them.
_RUN = 1024


@njit(parallel=True, cache=True)
def scan_statuses(pos, weights, has_w, box, nparts):
    """The counts of :func:`note_status` over all particles, one row per part of
    ``nparts`` consecutive ones (in parallel).

    Each run of ``_RUN`` particles is first checked in one loop without a branch (in a
    cubic box, over its coordinates as one flat run), which LLVM vectorizes; only a run
    holding a particle that fails is looked at particle by particle."""
    n = pos.shape[0]
    stats = np.zeros((nparts, 4), np.int64)
    stats[:, 1] = -1
    stats[:, 3] = -1
    flat = coordinates(pos, box)
    for t in prange(nparts):
        row = stats[t]
        for lo in range(n * t // nparts, n * (t + 1) // nparts, _RUN):
            hi = min(lo + _RUN, n * (t + 1) // nparts)
            fine = run_is_fine(pos, flat, weights, has_w, box, lo, hi)
            if not fine:
                for i in range(lo, hi):
                    note_status(row, i, particle_status(pos, i, weights, has_w, box))
    return stats
