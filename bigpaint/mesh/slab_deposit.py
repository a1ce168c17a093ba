"""The deposit kernel every whole-grid path shares: particles into float64 x-planes.

:func:`slab_deposit` adds particles whose first plane is at or after a given plane to a
float64 buffer of the planes from there on. The passes of :mod:`bigpaint.mesh.assign_planes`
call it on each slab's particles, copied one row per axis into a small scratch; the halves
of :mod:`bigpaint.mesh.assign_halves` and the one-slab path on theirs. CIC, the common
case, has its own loop (:func:`_slab_deposit_cic`) that finds a batch's cells and weights
in vector loops before adding any of them. Every path adds each particle's products in the
same order, so a cell's float64 sum depends only on which particles reach it and in what
order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bigpaint.mesh.weights import axis_nodes, axis_weights

__all__ = ["slab_deposit"]

#: Particles whose cells and weights are found before any of them is added (see
#: ``_slab_deposit_cic``).
_BATCH = 256


@njit(cache=True, nogil=True)
def slab_deposit(xs, ys, zs, weights, has_w, shape, inv, pt, shift, lo, hi, x0, buf):
    """Add particles lo..hi-1 (coordinates ``xs``, ``ys``, ``zs``), whose first plane is
    at or after ``x0``, to ``buf``: the float64 planes from ``x0`` on, as many as the slab
    has plus the ``p - 1`` it spills into."""
    p = len(pt)  # a compile-time constant: the length of the tuple type
    if p == 2:
        _slab_deposit_cic(xs, ys, zs, weights, has_w, shape, inv, shift, lo, hi, x0, buf)
        return
    nx, ny, nz = shape[0], shape[1], shape[2]
    for i in range(lo, hi):
        jx0, _jx1, _jx2, _jx3, wx0, wx1, wx2, wx3 = axis_nodes(xs[i], inv[0], nx, p, shift)
        jy0, jy1, jy2, jy3, wy0, wy1, wy2, wy3 = axis_nodes(ys[i], inv[1], ny, p, shift)
        jz0, jz1, jz2, jz3, wz0, wz1, wz2, wz3 = axis_nodes(zs[i], inv[2], nz, p, shift)
        jy = (jy0, jy1, jy2, jy3)
        jz = (jz0, jz1, jz2, jz3)
        wx = (wx0, wx1, wx2, wx3)
        wy = (wy0, wy1, wy2, wy3)
        wz = (wz0, wz1, wz2, wz3)
        mass = weights[i] if has_w else 1.0
        lx = jx0 - x0
        for a in range(p):
            ma = mass * wx[a]
            row = (lx + a) * ny
            for b in range(p):
                mab = ma * wy[b]
                base = (row + jy[b]) * nz
                for c in range(p):
                    # unsigned index: no negative-index wraparound test in the hot loop
                    buf[np.uint64(base + jz[c])] += mab * wz[c]


@njit(inline="always", cache=True)
def _cic_axis(xs, lo, m, inv_dx, shift, n, cell, frac):
    """:func:`~bigpaint.mesh.weights.axis_weights` for CIC of ``xs[lo:lo + m]``, into
    ``cell`` (first node) and ``frac`` (the second node's weight), for coordinates that
    need no wrap; return whether some does (then the caller redoes them). No branch, so
    LLVM vectorizes it."""
    outside = False
    fn = np.float64(n)
    for j in range(m):
        u = np.float64(xs[lo + j]) * inv_dx + shift
        outside |= (u < 0.0) | (u >= fn)
        s = u - 0.5
        fi = np.floor(s)
        frac[j] = s - fi
        i0 = np.int64(fi)  # at least -1, for u in [0, n)
        cell[j] = i0 + n if i0 < 0 else i0
    return outside


@njit(cache=True, nogil=True, error_model="numpy")
def _slab_deposit_cic(xs, ys, zs, weights, has_w, shape, inv, shift, lo, hi, x0, buf):
    """:func:`slab_deposit` for CIC, the common case: the same weights and the same sums
    in the same order, in batches of ``_BATCH`` particles. First every particle's cells
    and weights, axis by axis (vectorized, see :func:`_cic_axis`), then the eight additions
    of each, back to back, so that their cache misses overlap. At 256^3 the batches took
    13 % off the general loop's time, and the vector loops 15 % off the batches'."""
    nx, ny, nz = shape[0], shape[1], shape[2]
    nyz = ny * nz
    jx = np.empty(_BATCH, np.int64)
    jy = np.empty(_BATCH, np.int64)
    jz = np.empty(_BATCH, np.int64)
    fx = np.empty(_BATCH, np.float64)
    fy = np.empty(_BATCH, np.float64)
    fz = np.empty(_BATCH, np.float64)
    q = np.empty(_BATCH, np.int64)  # the first cell in buf
    dy = np.empty(_BATCH, np.int64)  # to the second y-row (negative where it wraps back)
    dz = np.empty(_BATCH, np.int64)
    w = np.empty((4, _BATCH), np.float64)  # mass wx0 wy0, mass wx0 wy1, mass wx1 wy0, ...
    for s in range(lo, hi, _BATCH):
        m = min(_BATCH, hi - s)
        wrap = _cic_axis(xs, s, m, inv[0], shift, nx, jx, fx)
        wrap |= _cic_axis(ys, s, m, inv[1], shift, ny, jy, fy)
        wrap |= _cic_axis(zs, s, m, inv[2], shift, nz, jz, fz)
        if wrap:
            for j in range(m):
                jx[j], _w, fx[j], _a, _b = axis_weights(xs[s + j], inv[0], nx, 2, shift)
                jy[j], _w, fy[j], _a, _b = axis_weights(ys[s + j], inv[1], ny, 2, shift)
                jz[j], _w, fz[j], _a, _b = axis_weights(zs[s + j], inv[2], nz, 2, shift)
        for j in range(m):
            mass = weights[s + j] if has_w else 1.0
            q[j] = ((jx[j] - x0) * ny + jy[j]) * nz + jz[j]
            dy[j] = nz if jy[j] + 1 < ny else -(ny - 1) * nz
            dz[j] = 1 if jz[j] + 1 < nz else -(nz - 1)
            ma = mass * (1.0 - fx[j])
            mb = mass * fx[j]
            w[0, j] = ma * (1.0 - fy[j])
            w[1, j] = ma * fy[j]
            w[2, j] = mb * (1.0 - fy[j])
            w[3, j] = mb * fy[j]
        for j in range(m):
            # unsigned indices: no negative-index wraparound test (dy, dz wrap mod 2**64)
            a = np.uint64(q[j])
            b = a + np.uint64(dy[j])
            c = np.uint64(dz[j])
            z1 = fz[j]
            z0 = 1.0 - z1
            buf[a] += w[0, j] * z0
            buf[a + c] += w[0, j] * z1
            buf[b] += w[1, j] * z0
            buf[b + c] += w[1, j] * z1
            a += np.uint64(nyz)
            b += np.uint64(nyz)
            buf[a] += w[2, j] * z0
            buf[a + c] += w[2, j] * z1
            buf[b] += w[3, j] * z0
            buf[b + c] += w[3, j] * z1
