"""The deposit plan: the blocks of the output grid and which of them each particle touches.

:class:`DepositPlan` is a pure description (a :class:`~bigpaint.chunked.grid.BlockGrid`
with the box, the scheme and the shift). Its two routing kernels walk the particles once
each: :meth:`~DepositPlan.route_counts` counts, per block, the particles whose assignment
support reaches into it (a particle on a seam counts in every block it touches, across the
periodic wrap too), and :meth:`~DepositPlan.route` copies them into per-block buckets with
a stable counting sort.

The kernels are numba-compiled: they visit every particle of a snapshot, and the support of
a particle is the same ``axis_weights`` arithmetic the deposit kernels use, so a particle is
routed to exactly the blocks whose nodes it will be deposited onto.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from bigpaint.chunked.grid import BlockGrid, ChunkSpec
from bigpaint.mesh.assign import box_lengths, grid_shape, scheme_order
from bigpaint.mesh.weights import axis_weights, wrap_index

__all__ = ["DepositPlan"]


@dataclass(frozen=True, init=False)
class DepositPlan(BlockGrid):
    """Blocks of the output grid (a :class:`~bigpaint.chunked.grid.BlockGrid`) and how
    particles map onto them (a pure description).

    Parameters
    ----------
    shape : int or 3 ints
        Grid cells per axis.
    chunks : int, 3 ints or 3 tuples of int
        Block layout (see :class:`~bigpaint.chunked.grid.BlockGrid`; uneven allowed).
    box_size : float or 3 floats
        Periodic box in Mpc/h.
    scheme : str
        Mass assignment scheme (``ngp``, ``cic``, ``tsc``, ``pcs``).
    shift : float
        Shift of every particle in cells (0.5 for the second grid of interlacing).
    """

    box_size: tuple[float, float, float]
    scheme: str
    shift: float
    _chunk_of: tuple[np.ndarray, ...] = field(repr=False, compare=False)

    def __init__(
        self,
        shape: int | Sequence[int],
        chunks: ChunkSpec,
        box_size: float | Sequence[float],
        scheme: str = "cic",
        shift: float = 0.0,
    ) -> None:
        scheme_order(scheme)
        super().__init__(grid_shape(shape), chunks)
        object.__setattr__(self, "box_size", box_lengths(box_size))
        object.__setattr__(self, "scheme", str(scheme).lower())
        object.__setattr__(self, "shift", float(shift))
        object.__setattr__(self, "_chunk_of", tuple(self.block_of(a) for a in range(3)))

    @property
    def p(self) -> int:
        """Support of the scheme in cells per axis."""
        return scheme_order(self.scheme)

    @property
    def inv_cell(self) -> np.ndarray:
        """Cells per Mpc/h along each axis (``n / L``)."""
        return np.array([n / b for n, b in zip(self.shape, self.box_size, strict=True)], np.float64)

    def chunk_of(self, axis: int) -> np.ndarray:
        """Block index of every cell along ``axis``."""
        return self._chunk_of[axis]

    def route_counts(self, positions: np.ndarray) -> np.ndarray:
        """How many particles each block receives (a particle counts in every block it touches).

        Positions in Mpc/h (wrapped periodically, like the kernels do).
        """
        pos = np.ascontiguousarray(positions)
        counts = np.zeros(self.n_blocks, np.int64)
        if len(pos):
            cox, coy, coz = self._chunk_of
            _route_count(
                pos,
                np.array(self.shape, np.int64),
                self.inv_cell,
                (0,) * self.p,
                self.shift,
                cox,
                coy,
                coz,
                np.array(self.grid, np.int64),
                counts,
            )
        return counts

    def route(
        self,
        positions: np.ndarray,
        weights: np.ndarray | None = None,
        counts: np.ndarray | None = None,
        skip: int = -1,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Bucket particles by block (stable): every particle once per block it touches.

        ``counts`` may pass :meth:`route_counts` of the same positions (saves a pass);
        block ``skip`` gets no copies (its count in the result is 0).

        Returns
        -------
        counts : (n_blocks,) int64
            Particles per block; block ``b`` holds rows ``offsets[b]:offsets[b + 1]`` with
            ``offsets = concatenate([[0], cumsum(counts)])``.
        positions : (sum(counts), 3)
            Copies of the input rows, same dtype, grouped by block in block-id order and in
            input order within a block.
        weights : (sum(counts),) or None
        """
        pos = np.ascontiguousarray(positions)
        counts = self.route_counts(pos) if counts is None else counts.copy()
        if skip >= 0:
            counts[skip] = 0
        total = int(counts.sum())
        out_pos = np.empty((total, 3), pos.dtype)
        out_w = None if weights is None else np.empty(total, np.float64)
        if total:
            cursor = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            w = np.zeros(1) if weights is None else np.ascontiguousarray(weights, np.float64)
            cox, coy, coz = self._chunk_of
            _route_fill(
                pos,
                w,
                weights is not None,
                np.array(self.shape, np.int64),
                self.inv_cell,
                (0,) * self.p,
                self.shift,
                cox,
                coy,
                coz,
                np.array(self.grid, np.int64),
                cursor,
                skip,
                out_pos,
                out_w if out_w is not None else np.zeros(1),
            )
        return counts, out_pos, out_w


@njit(inline="always", cache=True)
def _touch(i0, p, n, chunk_of, out):
    """Distinct blocks (along one axis) holding nodes i0 .. i0+p-1 (mod n); returns how many."""
    k = 0
    for a in range(p):
        c = chunk_of[wrap_index(i0 + a, n)]
        new = True
        for m in range(k):
            if out[m] == c:
                new = False
        if new:
            out[k] = c
            k += 1
    return k


# The two kernels below repeat their per-particle block lookup on purpose: moving it into
# an inlined helper that returns the three counts made routing about 5x slower (measured).


@njit(cache=True, nogil=True)
def _route_count(pos, shape, inv, pt, shift, cox, coy, coz, grid, counts):
    p = len(pt)  # compile-time constant (see bigpaint.mesh.assign)
    tx = np.empty(4, np.int64)
    ty = np.empty(4, np.int64)
    tz = np.empty(4, np.int64)
    gy, gz = grid[1], grid[2]
    for i in range(pos.shape[0]):
        kx = _touch(axis_weights(pos[i, 0], inv[0], shape[0], p, shift)[0], p, shape[0], cox, tx)
        ky = _touch(axis_weights(pos[i, 1], inv[1], shape[1], p, shift)[0], p, shape[1], coy, ty)
        kz = _touch(axis_weights(pos[i, 2], inv[2], shape[2], p, shift)[0], p, shape[2], coz, tz)
        for a in range(kx):
            for b in range(ky):
                for c in range(kz):
                    counts[(tx[a] * gy + ty[b]) * gz + tz[c]] += 1
    return counts


@njit(cache=True, nogil=True)
def _route_fill(
    pos, weights, has_w, shape, inv, pt, shift, cox, coy, coz, grid, cursor, skip, out_pos, out_w
):
    p = len(pt)  # compile-time constant (see bigpaint.mesh.assign)
    tx = np.empty(4, np.int64)
    ty = np.empty(4, np.int64)
    tz = np.empty(4, np.int64)
    gy, gz = grid[1], grid[2]
    for i in range(pos.shape[0]):
        kx = _touch(axis_weights(pos[i, 0], inv[0], shape[0], p, shift)[0], p, shape[0], cox, tx)
        ky = _touch(axis_weights(pos[i, 1], inv[1], shape[1], p, shift)[0], p, shape[1], coy, ty)
        kz = _touch(axis_weights(pos[i, 2], inv[2], shape[2], p, shift)[0], p, shape[2], coz, tz)
        for a in range(kx):
            for b in range(ky):
                for c in range(kz):
                    bid = (tx[a] * gy + ty[b]) * gz + tz[c]
                    if bid == skip:
                        continue
                    j = cursor[bid]
                    out_pos[j, 0] = pos[i, 0]
                    out_pos[j, 1] = pos[i, 1]
                    out_pos[j, 2] = pos[i, 2]
                    if has_w:
                        out_w[j] = weights[i]
                    cursor[bid] = j + 1
    return cursor
