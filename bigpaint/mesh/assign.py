"""Mass assignment kernels: NGP, CIC, TSC and PCS deposit and readout on periodic grids.

Conventions
-----------
Positions are in Mpc/h in the periodic box ``[0, L)`` per axis; a grid of ``n`` cells has
cell ``i`` covering ``[i, i + 1) * L / n`` and its value sits at the cell centre
``(i + 0.5) * L / n`` (the same centres as a Field's ``x, y, z`` coordinates). NGP gives a
particle to the cell that contains it; CIC, TSC and PCS spread it over 2, 3 and 4 cells per
axis with the B-spline weights of order 1, 2 and 3 about the cell centres. Pylians and pmesh
put the grid nodes on cell corners instead (``i * L / n``): the two conventions differ by a
uniform shift of half a cell, so their grids equal ours for positions shifted by ``L/(2n)``
and their power spectra are identical.

Positions exactly equal to ``L`` are the same point as ``0`` and wrap there. Positions
outside ``[0, L]`` are refused with an error naming how many and the first one, unless the
caller passes ``wrap=True``; NaN or infinite positions (and weights) are always refused.

Why hand-written
----------------
No installable library gives deterministic, parallel, float64-accumulating deposition with
periodic wrap and the matching readout: Pylians' ``MAS_library`` is a compiled extension
that accumulates in float32 (and does not install everywhere), nbodykit/pmesh need MPI, and a
numba ``prange`` loop with ``grid[i] += w`` races (numba #7133). Here each thread owns a
pass of x-planes at a time, copies the particles whose support starts there into a small
scratch sorted by slab, and deposits them into a float64 buffer of one slab's planes
(:mod:`bigpaint.mesh.assign_planes`); a grid of up to about 100^3 cells is cut once into
two halves instead, each on its own thread (:mod:`bigpaint.mesh.assign_halves`). Either
way no two threads write one cell, and every cell is one float64 sum in an order fixed by
the input and the grid, rounded to the grid's dtype once, so the result is the same bit
for bit on any number of threads.

Interlacing (Sefusatti et al. 2016) deposits a second grid with positions shifted by half a
cell and averages the two in Fourier space with the phase that undoes the shift, which
cancels the odd aliasing images; :func:`interlace_grids` does the Fourier combination with
``numpy.fft`` on in-memory grids. The Fourier-space window (sinc^p per axis) that
compensates the assignment lives with the statistics in :mod:`bigpaint.mesh.window`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
from numba import njit, prange

from bigpaint.errors import NonFiniteError, ParticleBoundsError, ShapeError
from bigpaint.mesh.particle_status import scan_statuses
from bigpaint.mesh.weights import axis_nodes, axis_weights, wrap_index

__all__ = [
    "SCHEMES",
    "ParticleBoundsError",
    "ParticleScan",
    "axis_weights",
    "box_lengths",
    "check_particles",
    "deposit",
    "deposit_window",
    "grid_shape",
    "interlace_grids",
    "interlace_phase",
    "readout",
    "scan_particles",
    "scheme_order",
    "wrap_index",
]

#: Mass assignment schemes and their support in cells per axis (the B-spline order + 1).
SCHEMES: dict[str, int] = {"ngp": 1, "cic": 2, "tsc": 3, "pcs": 4}

Scheme = Literal["ngp", "cic", "tsc", "pcs"]


def scheme_order(scheme: str) -> int:
    """Number of cells per axis a particle touches under ``scheme`` (1 NGP ... 4 PCS).

    This is also the power ``p`` of the Fourier window ``sinc(k dx / 2)^p`` per axis.
    """
    key = str(scheme).lower()
    if key not in SCHEMES:
        raise ValueError(
            f"unknown mass assignment scheme {scheme!r}; choose one of {list(SCHEMES)}"
        )
    return SCHEMES[key]


# ---------------------------------------------------------------- validation (numba)


def _first(stats: np.ndarray, col: int) -> int:
    firsts = stats[:, col][stats[:, col] >= 0]
    return int(firsts.min()) if firsts.size else -1


@dataclass(frozen=True)
class ParticleScan:
    """What :func:`scan_particles` found in a set of particles (combinable across batches).

    Attributes
    ----------
    n : int
        Particles scanned.
    nonfinite, outside : int
        Particles with a NaN/inf position or mass; finite ones outside ``[0, L]``.
    first_nonfinite, first_outside : (int, tuple) or None
        Global index and position of the first of each.
    has_weights : bool
    """

    n: int
    nonfinite: int = 0
    outside: int = 0
    first_nonfinite: tuple[int, tuple[float, ...]] | None = None
    first_outside: tuple[int, tuple[float, ...]] | None = None
    has_weights: bool = False

    @staticmethod
    def combine(scans: Sequence[ParticleScan]) -> ParticleScan:
        """One scan of the concatenated batches (given in order)."""
        firsts = [s.first_nonfinite for s in scans if s.first_nonfinite is not None]
        outs = [s.first_outside for s in scans if s.first_outside is not None]
        return ParticleScan(
            sum(s.n for s in scans),
            sum(s.nonfinite for s in scans),
            sum(s.outside for s in scans),
            min(firsts) if firsts else None,
            min(outs) if outs else None,
            any(s.has_weights for s in scans),
        )

    def raise_if_bad(self, box_size: Sequence[float], *, wrap: bool = False) -> None:
        """Raise NonFiniteError, or ParticleBoundsError unless ``wrap``, naming count and first."""
        if self.nonfinite:
            i, x = self.first_nonfinite  # type: ignore[misc]  # set with its count
            what = "position or mass" if self.has_weights else "position"
            raise NonFiniteError(
                f"{self.nonfinite} of {self.n} particles have a NaN or infinite {what} (first: "
                f"particle {i} at {x}); clean the input first"
            )
        if self.outside and not wrap:
            i, x = self.first_outside  # type: ignore[misc]  # set with its count
            box = np.asarray(box_size, np.float64)
            raise ParticleBoundsError(
                f"{self.outside} of {self.n} particles lie outside the box [0, {_fmt_box(box)}] "
                f"Mpc/h (first: particle {i} at {x}); check the box size and length units, or "
                "pass wrap=True (--wrap) to wrap them periodically"
            )


def scan_particles(
    positions: np.ndarray,
    box_size: Sequence[float],
    *,
    weights: np.ndarray | None = None,
    offset: int = 0,
) -> ParticleScan:
    """Count NaN/inf positions or weights and positions outside ``[0, L]`` (parallel).

    Parameters
    ----------
    positions : (N, 3) float array
        Positions in Mpc/h.
    box_size : 3 floats
        Periodic box side lengths in Mpc/h.
    weights : (N,) array, optional
        Per-particle masses (any units).
    offset : int
        Global index of ``positions[0]`` (for messages when scanning a batch).
    """
    n = positions.shape[0]
    has_w = weights is not None
    if n == 0:
        return ParticleScan(0, has_weights=has_w)
    box = np.asarray(box_size, dtype=np.float64)
    w = weights if has_w else np.zeros(1, np.float64)
    nparts = int(min(n, 4 * numba.get_num_threads()))
    return scan_from_stats(
        scan_statuses(positions, w, has_w, box, nparts), positions, has_w, offset
    )


def scan_from_stats(
    stats: np.ndarray, positions: np.ndarray, has_w: bool, offset: int = 0
) -> ParticleScan:
    """The :class:`ParticleScan` of per-part counts ``stats`` (rows of non-finite count,
    first non-finite index, outside count, first outside index; -1 for none)."""

    def first(col: int) -> tuple[int, tuple[float, ...]] | None:
        i = _first(stats, col)
        return None if i < 0 else (i + offset, tuple(float(v) for v in positions[i]))

    return ParticleScan(
        positions.shape[0],
        int(stats[:, 0].sum()),
        int(stats[:, 2].sum()),
        first(1),
        first(3),
        has_w,
    )


def check_particles(
    positions: np.ndarray,
    box_size: Sequence[float],
    *,
    weights: np.ndarray | None = None,
    wrap: bool = False,
) -> None:
    """Refuse NaN/inf positions or weights, and positions outside ``[0, L]`` unless ``wrap``.

    Parameters
    ----------
    positions : (N, 3) float array
        Positions in Mpc/h.
    box_size : 3 floats
        Periodic box side lengths in Mpc/h.
    weights : (N,) array, optional
        Per-particle masses (any units).
    wrap : bool
        Accept positions outside the box (they are wrapped periodically by the kernels).

    Raises
    ------
    NonFiniteError, ParticleBoundsError
        Naming how many particles and the first one.
    """
    scan_particles(positions, box_size, weights=weights).raise_if_bad(box_size, wrap=wrap)


def _fmt_box(box: np.ndarray) -> str:
    return f"{box[0]:g}" if np.all(box == box[0]) else "(" + ", ".join(f"{b:g}" for b in box) + ")"


# ---------------------------------------------------------------- kernels (numba)
#
# Every kernel receives the support ``p`` as the length of a tuple of zeros, ``(0,) * p``: a
# tuple's length is part of its numba type, so ``p`` is a compile-time constant, the loops
# over the p^3 nodes unroll, the weight tuples index statically, and each scheme gets its
# own cached specialisation (a closure factory would not cache; ``numba.literally`` costs a
# retyping on every call).


@njit(cache=True, nogil=True)
def deposit_window(pos, weights, has_w, shape, inv, pt, shift, origin, acc):
    """Serial deposit into the sub-block ``acc`` of the periodic grid starting at ``origin``.

    Contributions to nodes outside the block are dropped, so a chunk is exact when it
    is given every particle whose support touches it (in any order).
    """
    p = len(pt)  # a compile-time constant: the length of the tuple type
    nx, ny, nz = shape[0], shape[1], shape[2]
    cx, cy, cz = acc.shape
    ox, oy, oz = origin[0], origin[1], origin[2]
    flat = acc.reshape(-1)
    for i in range(pos.shape[0]):
        jx0, jx1, jx2, jx3, wx0, wx1, wx2, wx3 = axis_nodes(pos[i, 0], inv[0], nx, p, shift)
        jx = (jx0, jx1, jx2, jx3)
        wx = (wx0, wx1, wx2, wx3)
        lx0 = jx[0] - ox
        if lx0 < 0:
            lx0 += nx
        if lx0 >= cx and lx0 + p - 1 < nx:
            continue  # support entirely outside along x (the common rejection)
        jy0, jy1, jy2, jy3, wy0, wy1, wy2, wy3 = axis_nodes(pos[i, 1], inv[1], ny, p, shift)
        jy = (jy0, jy1, jy2, jy3)
        wy = (wy0, wy1, wy2, wy3)
        jz0, jz1, jz2, jz3, wz0, wz1, wz2, wz3 = axis_nodes(pos[i, 2], inv[2], nz, p, shift)
        jz = (jz0, jz1, jz2, jz3)
        wz = (wz0, wz1, wz2, wz3)
        mass = weights[i] if has_w else 1.0
        ly0 = jy[0] - oy
        if ly0 < 0:
            ly0 += ny
        lz0 = jz[0] - oz
        if lz0 < 0:
            lz0 += nz
        if lx0 + p <= cx and ly0 + p <= cy and lz0 + p <= cz:
            # the whole support inside the block (most particles): no per-node tests
            for a in range(p):
                ma = mass * wx[a]
                for b in range(p):
                    mab = ma * wy[b]
                    base = ((lx0 + a) * cy + ly0 + b) * cz + lz0
                    for c in range(p):
                        flat[np.uint64(base + c)] += mab * wz[c]
            continue
        for a in range(p):
            lx = jx[a] - ox
            if lx < 0:
                lx += nx
            if lx >= cx:
                continue
            ma = mass * wx[a]
            for b in range(p):
                ly = jy[b] - oy
                if ly < 0:
                    ly += ny
                if ly >= cy:
                    continue
                mab = ma * wy[b]
                base = (lx * cy + ly) * cz
                for c in range(p):
                    lz = jz[c] - oz
                    if lz < 0:
                        lz += nz
                    if lz < cz:
                        flat[base + lz] += mab * wz[c]
    return acc


@njit(parallel=True, cache=True)
def _readout(grid, pos, inv, pt, shift, out):
    p = len(pt)  # a compile-time constant: the length of the tuple type
    nx, ny, nz = grid.shape
    for i in prange(pos.shape[0]):
        jx0, jx1, jx2, jx3, wx0, wx1, wx2, wx3 = axis_nodes(pos[i, 0], inv[0], nx, p, shift)
        jx = (jx0, jx1, jx2, jx3)
        wx = (wx0, wx1, wx2, wx3)
        jy0, jy1, jy2, jy3, wy0, wy1, wy2, wy3 = axis_nodes(pos[i, 1], inv[1], ny, p, shift)
        jy = (jy0, jy1, jy2, jy3)
        wy = (wy0, wy1, wy2, wy3)
        jz0, jz1, jz2, jz3, wz0, wz1, wz2, wz3 = axis_nodes(pos[i, 2], inv[2], nz, p, shift)
        jz = (jz0, jz1, jz2, jz3)
        wz = (wz0, wz1, wz2, wz3)
        total = 0.0
        for a in range(p):
            for b in range(p):
                wab = wx[a] * wy[b]
                for c in range(p):
                    total += wab * wz[c] * grid[jx[a], jy[b], jz[c]]
        out[i] = total
    return out


def grid_shape(nmesh: int | Sequence[int]) -> tuple[int, int, int]:
    """Cells per axis from one int or 3 ints, refusing non-positive sizes (ShapeError)."""
    if isinstance(nmesh, (int, np.integer)):
        shape: tuple[int, ...] = (int(nmesh),) * 3
    else:
        shape = tuple(int(v) for v in nmesh)
    if len(shape) != 3 or any(v <= 0 for v in shape):
        raise ShapeError(f"grid must be a positive int or 3 positive ints, got {nmesh!r}")
    return shape


def box_lengths(box_size: float | Sequence[float]) -> tuple[float, float, float]:
    """Box sides in Mpc/h from one length or 3, refusing non-finite or non-positive ones."""
    if isinstance(box_size, (int, float, np.integer, np.floating)):
        box: tuple[float, ...] = (float(box_size),) * 3
    else:
        box = tuple(float(v) for v in box_size)
    if len(box) != 3 or not all(np.isfinite(b) and b > 0 for b in box):
        raise ValueError(
            f"box_size must be a positive length in Mpc/h (or 3 of them), got {box_size!r}"
        )
    return box


def _as_positions(positions: np.ndarray) -> np.ndarray:
    pos = np.asarray(positions)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ShapeError(
            f"positions must have shape (N, 3), got {pos.shape}; transpose a (3, N) array"
        )
    if pos.dtype not in (np.float32, np.float64):
        if pos.dtype.kind not in "iuf":
            raise ShapeError(f"positions must be real numbers in Mpc/h, got dtype {pos.dtype}")
        pos = pos.astype(np.float64)
    return np.ascontiguousarray(pos)


def _as_weights(weights: np.ndarray | None, n: int) -> np.ndarray | None:
    """Weights as contiguous float64 (one kernel specialisation, exact float64 products)."""
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.shape != (n,):
        raise ShapeError(f"weights must have shape ({n},) to match the positions, got {w.shape}")
    if w.dtype.kind not in "fiu":
        raise ShapeError(f"weights must be real numbers, got dtype {w.dtype}")
    return np.ascontiguousarray(w, dtype=np.float64)


def deposit(
    positions: np.ndarray,
    nmesh: int | Sequence[int],
    box_size: float | Sequence[float],
    *,
    scheme: Scheme = "cic",
    weights: np.ndarray | None = None,
    wrap: bool = False,
    interlaced: bool = False,
    shift: float = 0.0,
    dtype: str | np.dtype = "float32",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Deposit particles on a periodic grid (mass assignment), in memory.

    Parameters
    ----------
    positions : (N, 3) float32 or float64 array
        Particle positions in Mpc/h, in ``[0, L]`` per axis (``L`` wraps to 0).
    nmesh : int or 3 ints
        Grid cells per axis.
    box_size : float or 3 floats
        Periodic box side lengths in Mpc/h.
    scheme : {"ngp", "cic", "tsc", "pcs"}
        Mass assignment scheme.
    weights : (N,) array, optional
        Particle masses in the caller's units; unit mass when omitted (the grid then counts
        particles).
    wrap : bool
        Wrap positions outside ``[0, L]`` periodically instead of refusing them.
    interlaced : bool
        Return the interlaced grid (see :func:`interlace_grids`): a second grid is deposited with
        positions shifted by half a cell and the two are combined in Fourier space.
    shift : float
        Shift every position by this many cells before assignment (0.5 gives the second
        grid of interlacing).
    dtype : dtype
        Output dtype (float32 or float64). Accumulation is always float64.
    out : ndarray, optional
        C-contiguous float32/float64 grid of shape ``nmesh`` to add into.

    Returns
    -------
    numpy.ndarray
        Mass per cell (sum of the weights assigned to it), shape ``nmesh``. The total equals
        the total mass to float64 rounding (before the cast to ``dtype``).

    Raises
    ------
    ShapeError, NonFiniteError, ParticleBoundsError
    """
    p = scheme_order(scheme)
    shape = grid_shape(nmesh)
    box = box_lengths(box_size)
    pos = _as_positions(positions)
    w = _as_weights(weights, pos.shape[0])
    if interlaced:
        check_particles(pos, box, weights=w, wrap=wrap)
        first = deposit(pos, shape, box, scheme=scheme, weights=w, wrap=True, dtype="float64")
        second = deposit(
            pos, shape, box, scheme=scheme, weights=w, wrap=True, shift=0.5, dtype="float64"
        )
        grid = interlace_grids(first, second).astype(dtype, copy=False)
        if out is not None:
            out += grid
            return out
        return grid
    if out is None:
        out = np.zeros(shape, dtype=dtype)
    elif (
        out.shape != shape
        or not out.flags.c_contiguous
        or out.dtype not in (np.float32, np.float64)
    ):
        raise ShapeError(
            f"out must be a C-contiguous float32/float64 array of shape {shape}, got "
            f"{out.shape} {out.dtype}"
        )
    n = pos.shape[0]
    if n == 0:
        return out
    from bigpaint.mesh.assign_planes import deposit_planes

    def check(stats: np.ndarray) -> None:
        scan_from_stats(stats, pos, w is not None).raise_if_bad(box, wrap=wrap)

    inv = np.array([s / b for s, b in zip(shape, box, strict=True)], np.float64)
    box_a = np.asarray(box, np.float64)
    deposit_planes(pos, w, shape, inv, p, float(shift), out.reshape(-1), box_a, check)
    return out


# ---------------------------------------------------------------- readout


def readout(
    grid: np.ndarray,
    positions: np.ndarray,
    box_size: float | Sequence[float],
    *,
    scheme: Scheme = "cic",
    wrap: bool = False,
    shift: float = 0.0,
) -> np.ndarray:
    """Interpolate a periodic grid at particle positions (the adjoint of :func:`deposit`).

    ``sum(deposit(x, w) * g) == sum(w * readout(g, x))`` for any weights ``w`` and grid
    ``g``, to float64 rounding.

    Parameters
    ----------
    grid : (nx, ny, nz) array
        Values at cell centres.
    positions : (N, 3) float array
        Positions in Mpc/h.
    box_size : float or 3 floats
        Periodic box side lengths in Mpc/h.
    scheme : {"ngp", "cic", "tsc", "pcs"}
        Interpolation scheme (same weights as the deposit).
    wrap : bool
        Wrap positions outside ``[0, L]`` instead of refusing them.
    shift : float
        Shift in cells, as in :func:`deposit`.

    Returns
    -------
    numpy.ndarray
        float64 values, shape (N,), in the grid's units.
    """
    p = scheme_order(scheme)
    g = np.asarray(grid)
    if g.ndim != 3:
        raise ShapeError(f"grid must be 3-D, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise NonFiniteError(
            f"grid holds {int((~np.isfinite(g)).sum())} NaN/inf values; clean it first"
        )
    box = box_lengths(box_size)
    pos = _as_positions(positions)
    check_particles(pos, box, wrap=wrap)
    inv = np.array([s / b for s, b in zip(g.shape, box, strict=True)], np.float64)
    out = np.empty(pos.shape[0], np.float64)
    if pos.shape[0]:
        _readout(np.ascontiguousarray(g), pos, inv, (0,) * p, float(shift), out)
    return out


# ---------------------------------------------------------------- interlacing


def interlace_phase(shape: Sequence[int], shift: float = 0.5) -> np.ndarray:
    """Phase ``exp(+i k . s H)`` on the ``rfftn`` grid that undoes a shift of ``s`` cells.

    Mode numbers follow :func:`bigpaint.mesh.kgrid.mode_numbers` (Pylians' rule: the Nyquist
    index of an even axis is ``+n/2``), so in-memory and chunked interlacing agree exactly.
    Returns a complex128 array broadcastable to ``rfftn`` output of a grid of ``shape``.
    """
    from bigpaint.mesh.kgrid import mode_numbers

    nx, ny, nz = (int(v) for v in shape)
    px = np.exp(2j * np.pi * shift * mode_numbers(nx) / nx)[:, None, None]
    py = np.exp(2j * np.pi * shift * mode_numbers(ny) / ny)[None, :, None]
    pz = np.exp(2j * np.pi * shift * mode_numbers(nz, half=True) / nz)[None, None, :]
    return px * py * pz


def interlace_grids(first: np.ndarray, second: np.ndarray, *, shift: float = 0.5) -> np.ndarray:
    """Combine a grid and its half-cell-shifted twin in Fourier space (interlacing).

    ``second`` must be deposited with positions shifted by ``+shift`` cells on every axis
    (``deposit(..., shift=0.5)``). Its Fourier modes carry the phase ``exp(-i k . s dx)``;
    undoing it and averaging with ``first`` cancels the aliasing images with odd index sum,
    which removes most of the aliasing bias of P(k) below the Nyquist frequency.

    Returns
    -------
    numpy.ndarray
        The interlaced real grid, float64 (float32 when both inputs are float32).
    """
    a = np.asarray(first)
    b = np.asarray(second)
    if a.shape != b.shape or a.ndim != 3:
        raise ShapeError(f"interlace needs two 3-D grids of one shape, got {a.shape} and {b.shape}")
    fa = np.fft.rfftn(a)
    fb = np.fft.rfftn(b)
    fb *= interlace_phase(a.shape, shift).astype(fb.dtype, copy=False)
    fa += fb
    fa *= 0.5
    return np.fft.irfftn(fa, s=a.shape, axes=(0, 1, 2))
