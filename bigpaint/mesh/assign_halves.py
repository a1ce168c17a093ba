"""Whole-grid deposit of a small grid in two halves: no sort, no pool of threads.

On a grid whose float64 planes fit in ``HALVES_BYTES`` (about 100^3 cells), the passes of
:mod:`bigpaint.mesh.assign_planes` cost more than the deposit itself: starting their pool of
threads and handing it the passes took about 0.4 ms, as long as Pylians' whole CIC deposit
of 32^3 particles, and sorting the particles by slab pays only when the grid is far larger
than a core's cache. Here the grid's x-planes are cut once into two halves, the same
whatever the number of threads. Each half, on its own thread (a numba ``prange``), scans
all the particles, copies those whose first plane is its own into a small scratch (one row
per axis) and deposits them (:func:`~bigpaint.mesh.slab_deposit.slab_deposit`) into a
float64 buffer of its planes and the ``p - 1`` it spills into. Then every plane is rounded
into the grid once: a half's first ``p - 1`` planes with the other half's spill added in
float64 first (periodic: the second half spills over the wrap into plane 0).

Every cell's float64 sum is thus taken in an order fixed by the input and the grid, so the
result is the same bits on one thread or two. It is not the same bits as the passes' (whose
shared planes sit at slab edges), which is why the choice between the two depends only on
the grid and the support, never on the machine.

Measured against Pylians' serial CIC on the 2-core development machine, minimum of 9 calls:
see BENCHMARKS.md.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from bigpaint.mesh.slab_deposit import slab_deposit
from bigpaint.mesh.weights import axis_weights, first_node

__all__ = ["HALVES_BYTES", "deposit_halves", "in_halves"]

#: Largest grid, in float64 bytes, deposited in halves.
HALVES_BYTES = 8 * 2**20

#: Particles a half copies before depositing them.
_SCRATCH = 4096


def in_halves(shape: tuple[int, int, int], p: int) -> bool:
    """Whether a grid of ``shape`` and support ``p`` is deposited in halves: small enough,
    and each half at least ``p - 1`` planes wide, so that a spill reaches only the other."""
    return 8 * shape[0] * shape[1] * shape[2] <= HALVES_BYTES and shape[0] >= max(2, 2 * (p - 1))


@njit(parallel=True, cache=True, error_model="numpy")
def deposit_halves(pos, weights, has_w, shape, inv, pt, shift, flat):
    """Add the deposit of ``pos`` to the flat C-order grid ``flat`` (see the module notes).

    Parameters
    ----------
    pos : (N, 3) float32 or float64 array
        Positions in Mpc/h, checked by the caller (outside ones wrap).
    weights : (N,) float64 array
        Masses, read only when ``has_w``.
    has_w : bool
        Whether ``weights`` holds the masses (else unit mass).
    shape : (3,) int64 array
        Grid cells per axis; ``in_halves(shape, p)`` must hold.
    inv : (3,) float64 array
        Cells per Mpc/h on each axis.
    pt : tuple of ``p`` ints
        Its length is the support in cells per axis.
    shift : float
        Shift of every position in cells.
    flat : 1-D float32 or float64 array
        The grid, added into; every cell is rounded once.
    """
    p = len(pt)  # a compile-time constant: the length of the tuple type
    nx = shape[0]
    nyz = shape[1] * shape[2]
    n = pos.shape[0]
    h = (p - 1) * nyz
    w0 = (nx + 1) // 2
    widths = (w0, nx - w0)
    bufs = np.zeros((2, (w0 + p - 1) * nyz), np.float64)
    ix = inv[0]
    fnx = np.float64(nx)
    for t in prange(2):
        lo = 0 if t == 0 else w0
        hi = lo + widths[t]
        spos = np.empty((3, _SCRATCH), pos.dtype)
        sw = np.empty(_SCRATCH if has_w else 1, np.float64)
        buf = bufs[t]
        xb = np.empty(_SCRATCH, pos.dtype)
        keep = np.empty(_SCRATCH, np.bool_)
        for s in range(0, n, _SCRATCH):
            m = min(n - s, _SCRATCH)
            for j in range(m):
                xb[j] = pos[s + j, 0]
            wrap = False
            for j in range(m):
                u = np.float64(xb[j]) * ix + shift
                wrap |= (u < 0.0) | (u >= fnx)
                i0 = first_node(u, nx, p)
                keep[j] = (i0 >= lo) & (i0 < hi)
            if wrap:
                for j in range(m):
                    i0 = axis_weights(pos[s + j, 0], inv[0], nx, p, shift)[0]
                    keep[j] = lo <= i0 < hi
            c = 0
            for j in range(m):
                i = s + j
                spos[0, c] = pos[i, 0]
                spos[1, c] = pos[i, 1]
                spos[2, c] = pos[i, 2]
                if has_w:
                    sw[c] = weights[i]
                c += 1 if keep[j] else 0
            slab_deposit(spos[0], spos[1], spos[2], sw, has_w, shape, inv, pt, shift, 0, c, lo, buf)
    for t in prange(2):
        o = 0 if t == 0 else w0 * nyz
        own = bufs[t]
        spill = bufs[1 - t, widths[1 - t] * nyz :]
        for q in range(h):
            flat[o + q] += own[q] + spill[q]
        for q in range(h, widths[t] * nyz):
            flat[o + q] += own[q]
    return flat
