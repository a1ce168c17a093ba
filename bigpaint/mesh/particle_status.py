"""Whether one particle can be deposited: the numba primitives of every particle check.

:func:`bigpaint.mesh.assign.scan_particles` runs them over all particles on their own; the
whole-grid deposit (:mod:`bigpaint.mesh.assign_planes`) runs them inside its first pass
over the positions, which reads every position anyway, so a deposit reads its input one
time fewer. Both keep, per part of the particles, the counts and first indices that
:func:`bigpaint.mesh.assign.scan_from_stats` turns into a message.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["FINE", "NONFINITE", "OUTSIDE", "note_status", "particle_status"]

FINE, NONFINITE, OUTSIDE = 0, 1, 2


@njit(inline="always", cache=True)
def particle_status(pos, i, weights, has_w, box):
    """``NONFINITE`` for a NaN/inf position or mass, ``OUTSIDE`` for a finite position out
    of ``[0, L]`` on some axis, else ``FINE``."""
    x, y, z = pos[i, 0], pos[i, 1], pos[i, 2]
    # one test for the common case: NaN fails every comparison, inf fails the upper bound
    if 0.0 <= x <= box[0] and 0.0 <= y <= box[1] and 0.0 <= z <= box[2]:
        if not has_w or np.isfinite(weights[i]):
            return FINE
        return NONFINITE
    if not (np.isfinite(x) and np.isfinite(y) and np.isfinite(z)):
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
