"""Per-axis mass-assignment weights, the numba primitives every deposit and read-out shares.

A particle at coordinate ``x`` touches ``p`` consecutive cells per axis under a B-spline of
order ``p`` (NGP 1, CIC 2, TSC 3, PCS 4); :func:`axis_weights` gives the first cell and the
weights, :func:`axis_nodes` all the wrapped cells. Inlined into the kernels of
:mod:`bigpaint.mesh.assign` and :mod:`bigpaint.mesh.assign_planes`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["axis_nodes", "axis_weights", "first_node", "wrap_index"]


@njit(inline="always", cache=True)
def axis_weights(x, inv_dx, n, p, shift):
    """First node (wrapped into [0, n)) and up to 4 weights of one coordinate.

    ``x`` in Mpc/h, ``inv_dx = n / L``, ``shift`` in cells (0 or 0.5 for interlacing).
    """
    u = x * inv_dx + shift
    if u < 0.0 or u >= n:
        u = u - n * np.floor(u / n)
    w0 = 1.0
    w1 = 0.0
    w2 = 0.0
    w3 = 0.0
    if p == 1:
        i0 = np.int64(np.floor(u))
    elif p == 2:
        s = u - 0.5
        fi = np.floor(s)
        f = s - fi
        i0 = np.int64(fi)
        w0 = 1.0 - f
        w1 = f
    elif p == 3:
        fi = np.floor(u)
        d = u - fi - 0.5
        i0 = np.int64(fi) - 1
        w0 = 0.5 * (0.5 - d) * (0.5 - d)
        w1 = 0.75 - d * d
        w2 = 0.5 * (0.5 + d) * (0.5 + d)
    else:
        s = u - 0.5
        fi = np.floor(s)
        f = s - fi
        g = 1.0 - f
        i0 = np.int64(fi) - 1
        w0 = g * g * g / 6.0
        w1 = (4.0 - 6.0 * f * f + 3.0 * f * f * f) / 6.0
        w2 = (4.0 - 6.0 * g * g + 3.0 * g * g * g) / 6.0
        w3 = f * f * f / 6.0
    while i0 < 0:
        i0 += n
    while i0 >= n:
        i0 -= n
    return i0, w0, w1, w2, w3


@njit(inline="always", cache=True)
def wrap_index(j, n):
    """``j`` (in ``[0, 2n)`` or a little beyond) wrapped into ``[0, n)``."""
    while j >= n:
        j -= n
    return j


@njit(inline="always", cache=True)
def axis_nodes(x, inv_dx, n, p, shift):
    """The up to 4 wrapped nodes of one coordinate and their weights (see :func:`axis_weights`)."""
    i0, w0, w1, w2, w3 = axis_weights(x, inv_dx, n, p, shift)
    return i0, wrap_index(i0 + 1, n), wrap_index(i0 + 2, n), wrap_index(i0 + 3, n), w0, w1, w2, w3


@njit(inline="always", cache=True)
def first_node(u, n, p):
    """The first node of :func:`axis_weights` for ``u`` (in cells) already in ``[0, n)``,
    without a branch, so that loops over it vectorize (``n >= 2``; a ``u`` outside gives
    a meaningless node: callers test the range and fall back to :func:`axis_weights`)."""
    off = 0.5 if p % 2 == 0 else 0.0
    i0 = np.int64(np.floor(u - off)) - (p - 1) // 2  # at least -2
    return i0 + n if i0 < 0 else i0
