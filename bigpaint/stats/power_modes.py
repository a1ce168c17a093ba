"""Binning Fourier modes into power-spectrum sums: one fused, threaded pass over the modes.

Every statistic of :mod:`bigpaint.stats.power` (auto and cross spectra, multipoles, the
comparisons) is a sum over the independent modes of the half-complex ``rfftn`` output of
``Re(a b*)``, times the mass-assignment compensation, times a Legendre weight, per bin. The
bin key of a mode is its integer ``k^2 = m_x^2 + m_y^2 + m_z^2`` (units ``k_F^2``): one
compiled pass accumulates per distinct ``k^2`` (no rounding of ``|k|``, no square root or
division per mode) and the per-``k^2`` sums are then folded into the requested bins, with
``mu^2 = m_par^2 / k^2`` applied per ``k^2``. The compensation is a product of three 1-D
tables, so the pass makes no full-size temporary: it reads the transform once.

Two drivers share the kernel :func:`_accumulate_modes`:

* :func:`binned_sums` on dask arrays (the distributed FFT): one serial call per block, the
  blocks running in parallel on the dask scheduler; only per-bin sums leave a block.
* :func:`memory_sums` on in-memory transforms: the x-planes are cut into a fixed number of
  parts (it depends on the grid only, never on the thread count), each part accumulates its
  own per-``k^2`` partial sums in a numba ``prange`` loop, and the partials are added in part
  order. The result is therefore the same bit for bit on any number of threads.

The loop over ``k_z`` stops at the first mode beyond the last bin (``m_z`` increases along
the half axis), so modes past ``sqrt(3) k_Nyq`` or past a smaller ``kmax`` cost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

from bigpaint.chunked.block_info import array_location
from bigpaint.mesh.kgrid import block_modes

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["BinPlan", "binned_sums", "memory_sums", "plan_bins"]

#: Most parts an in-memory pass is cut into (a fixed number, so sums never depend on threads).
MAX_PARTS = 16


@dataclass(frozen=True)
class BinPlan:
    """How integer ``k^2`` values (in units of ``k_F^2``) map to bins.

    Attributes
    ----------
    edges : numpy.ndarray
        Bin edges in h/Mpc.
    kf : float
        Fundamental wavenumber in h/Mpc.
    k2max : int
        Largest ``k^2`` that falls in a bin; larger ones (and excluded modes) use slot
        ``k2max + 1``.
    bin_of_k2 : numpy.ndarray of int64
        Bin of each ``k^2`` in ``0..k2max + 1``; ``nbins`` means "no bin".
    """

    edges: np.ndarray
    kf: float
    k2max: int
    bin_of_k2: np.ndarray

    @property
    def nbins(self) -> int:
        return len(self.edges) - 1


def plan_bins(edges: np.ndarray, box_size: float) -> BinPlan:
    """Map every integer ``k^2`` (units ``k_F^2``) up to the last edge to its bin.

    Bin ``i`` holds ``edge_i <= |k| < edge_{i+1}``; the last bin is closed; ``k^2 = 0`` (DC)
    is never binned. Edges within 1e-9 ``k_F`` of a multiple of ``k_F`` count as that
    multiple, so integer shells bin exactly like Pylians' ``int(|k| / k_F)``.
    """
    edges = np.asarray(edges, np.float64)
    kf = 2.0 * math.pi / box_size
    u = edges / kf
    u = np.where(np.abs(u - np.round(u)) < 1e-9, np.round(u), u)
    e2 = u**2
    nb = len(edges) - 1
    top = e2[-1] * (1 + 1e-12)
    k2max = math.floor(top)
    k2 = np.arange(k2max + 2, dtype=np.float64)
    b = np.searchsorted(e2, k2, side="right") - 1
    b[(k2 >= e2[-1] * (1 - 1e-12)) & (k2 <= top)] = nb - 1
    b[(b < 0) | (b >= nb)] = nb
    b[0] = nb
    b[-1] = nb
    return BinPlan(edges, kf, k2max, b.astype(np.int64))


# ---------------------------------------------------------------- the fused kernel


@numba.njit(cache=True, nogil=True)
def _accumulate_modes(  # pragma: no cover - compiled; tested through power_spectrum
    a: np.ndarray,
    b: np.ndarray,
    cross: bool,
    mx: np.ndarray,
    my: np.ndarray,
    mz: np.ndarray,
    fx: np.ndarray,
    fy: np.ndarray,
    fz: np.ndarray,
    special_z: np.ndarray,
    drop_xy: np.ndarray,
    los: int,
    k2max: int,
    count: bool,
    cnt: np.ndarray,
    s0: np.ndarray,
    s2: np.ndarray,
    s4: np.ndarray,
    want2: bool,
    want4: bool,
) -> None:
    """One pass over a block: per-k^2 sums of p = Re(a b*) * compensation (and p m_los^2, ^4).

    Modes with k^2 = 0, k^2 > k2max, or dropped by the independent-mode rule are skipped.
    ``mz`` must be non-decreasing and non-negative (the half axis): the z loop stops at the
    first mode past ``k2max``.
    """
    bx, by, bz = a.shape
    for i in range(bx):
        x2 = mx[i] * mx[i]
        for j in range(by):
            xy2 = x2 + my[j] * my[j]
            if xy2 > k2max:
                continue
            fxy = fx[i] * fy[j]
            dropped = drop_xy[i, j]
            for k in range(bz):
                k2 = xy2 + mz[k] * mz[k]
                if k2 > k2max:
                    break
                if k2 == 0 or (dropped and special_z[k]):
                    continue
                va = a[i, j, k]
                if cross:
                    vb = b[i, j, k]
                    p = np.float64(va.real) * vb.real + np.float64(va.imag) * vb.imag
                else:
                    p = np.float64(va.real) * va.real + np.float64(va.imag) * va.imag
                p *= fxy * fz[k]
                if count:
                    cnt[k2] += 1.0
                s0[k2] += p
                if want2:
                    if los == 0:
                        par = mx[i]
                    elif los == 1:
                        par = my[j]
                    else:
                        par = mz[k]
                    q = p * par * par
                    s2[k2] += q
                    if want4:
                        s4[k2] += q * par * par


@numba.njit(cache=True, parallel=True)
def _accumulate_parts(  # pragma: no cover - compiled; tested through memory_sums
    a, b, cross, mx, my, mz, fx, fy, fz, special_z, drop_xy, los, k2max, count, nparts,
    cnt, s0, s2, s4, want2, want4,
):  # fmt: skip
    """``_accumulate_modes`` over ``nparts`` x-ranges in parallel, each into its own row of
    the partial sums, then the rows added in order into row 0 (deterministic)."""
    nx = a.shape[0]
    for t in numba.prange(nparts):
        lo = nx * t // nparts
        hi = nx * (t + 1) // nparts
        _accumulate_modes(
            a[lo:hi], b[lo:hi], cross, mx[lo:hi], my, mz, fx[lo:hi], fy, fz, special_z,
            drop_xy[lo:hi], los, k2max, count, cnt[t], s0[t], s2[t], s4[t], want2, want4,
        )  # fmt: skip
    for t in range(1, nparts):
        for q in range(s0.shape[1]):
            s0[0, q] += s0[t, q]
            if count:
                cnt[0, q] += cnt[t, q]
        for q in range(s2.shape[1]):
            s2[0, q] += s2[t, q]
        for q in range(s4.shape[1]):
            s4[0, q] += s4[t, q]


# ---------------------------------------------------------------- per-k^2 sums to bins


def _independent(
    mx: np.ndarray, my: np.ndarray, mz: np.ndarray, nx: int, nz: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k_z = 0`` / Nyquist planes and the (x, y) rows whose modes there are dropped."""
    special_z = mz == 0
    if nz % 2 == 0:
        special_z = special_z | (mz == nz // 2)
    x_edge = (mx == 0) | ((mx == nx // 2) & (nx % 2 == 0))
    drop_xy = (mx[:, None] < 0) | (x_edge[:, None] & (my[None, :] < 0))
    return special_z, drop_xy


def _legendre(
    pair_sums: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ells: tuple[int, ...],
    k2f: np.ndarray,
) -> list[np.ndarray]:
    """Per-k^2 sums of p L_ell(mu) from those of p, p m_par^2 and p m_par^4."""
    per_k2 = []
    for s0, s2, s4 in pair_sums:
        for ell in ells:
            if ell == 0:
                per_k2.append(s0)
            elif ell == 2:
                per_k2.append(0.5 * (3.0 * s2 / k2f - s0))
            else:
                per_k2.append((35.0 * s4 / k2f**2 - 30.0 * s2 / k2f + 3.0 * s0) / 8.0)
    return per_k2


def _fold(
    cnt: np.ndarray,
    pair_sums: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ells: tuple[int, ...],
    plan: BinPlan,
) -> np.ndarray:
    """Rows count, sum|k|, then per pair one row per ell, per bin, from per-k^2 sums."""
    length = plan.k2max + 1
    k2f = np.arange(length, dtype=np.float64)
    k2f[0] = 1.0
    per_k2: list[np.ndarray] = [cnt, cnt * np.sqrt(np.arange(length, dtype=np.float64))]
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf input: the caller refuses it
        per_k2 += _legendre(pair_sums, ells, k2f)
    out = np.empty((len(per_k2), plan.nbins))
    bins = plan.bin_of_k2[:length]
    for q, v in enumerate(per_k2):
        out[q] = np.bincount(bins, weights=v, minlength=plan.nbins + 1)[: plan.nbins]
    return out


def _pair_factors(
    factors: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...],
    ia: int,
    ib: int,
    sl: Sequence[slice],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fa, fb = factors[ia], factors[ib]
    fx, fy, fz = (np.ascontiguousarray(fa[d][sl[d]] * fb[d][sl[d]]) for d in range(3))
    return fx, fy, fz


def _n_parts(nx: int, k2max: int, rows: int) -> int:
    """Parts of an in-memory pass: up to MAX_PARTS, fewer when the partial sums would pass
    64 MiB. Depends on the grid and bins only, so sums never depend on the thread count."""
    per_part = max(1, rows * (k2max + 1) * 8)
    return max(1, min(nx, MAX_PARTS, (64 << 20) // per_part))


def memory_sums(
    fks: Sequence[np.ndarray],
    shape: tuple[int, int, int],
    plan: BinPlan,
    pairs: tuple[tuple[int, int], ...],
    factors: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...],
    los: int,
    ells: tuple[int, ...],
) -> np.ndarray:
    """:func:`binned_sums` of in-memory transforms: one threaded pass per pair.

    Parameters
    ----------
    fks : sequence of numpy.ndarray
        ``rfftn`` outputs (complex64 or complex128) of the real grid ``shape``.
    shape, plan, pairs, factors, los, ells
        As in :func:`binned_sums`.

    Returns
    -------
    numpy.ndarray
        ``(2 + len(pairs) * len(ells), nbins)``: mode count, sum of ``|k| / k_F``, then the
        multipole sums of each pair.
    """
    nx, _, nz = shape
    mx, my, mz = (
        np.ascontiguousarray(m.ravel()) for m in block_modes(shape, [(0, s) for s in fks[0].shape])
    )
    special_z, drop_xy = _independent(mx, my, mz, nx, nz)
    want2 = any(e >= 2 for e in ells)
    want4 = 4 in ells
    length = plan.k2max + 1
    nparts = _n_parts(fks[0].shape[0], plan.k2max, 2 + want2 + want4)
    full = [slice(None)] * 3
    cnt = np.zeros((nparts, length))
    pair_sums = []
    for n_pair, (ia, ib) in enumerate(pairs):
        s0 = np.zeros((nparts, length))
        s2 = np.zeros((nparts, length if want2 else 1))
        s4 = np.zeros((nparts, length if want4 else 1))
        fx, fy, fz = _pair_factors(factors, ia, ib, full)
        _accumulate_parts(
            fks[ia], fks[ib], ia != ib, mx, my, mz, fx, fy, fz, special_z, drop_xy, los,
            plan.k2max, n_pair == 0, nparts, cnt, s0, s2, s4, want2, want4,
        )  # fmt: skip
        pair_sums.append((s0[0], s2[0], s4[0]))
    return _fold(cnt[0], pair_sums, ells, plan)


def _block_sums(
    *blocks: np.ndarray,
    shape: tuple[int, int, int],
    plan: BinPlan,
    pairs: tuple[tuple[int, int], ...],
    factors: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...],
    los: int,
    ells: tuple[int, ...],
    block_info: dict | None = None,
) -> np.ndarray:
    loc = array_location(block_info)
    sl = [slice(a, b) for a, b in loc]
    mx, my, mz = (m.ravel() for m in block_modes(shape, loc))
    special_z, drop_xy = _independent(mx, my, mz, shape[0], shape[2])
    length = plan.k2max + 1
    cnt = np.zeros(length)
    want2 = any(e >= 2 for e in ells)
    want4 = 4 in ells
    pair_sums = []
    for n_pair, (ia, ib) in enumerate(pairs):
        s0, s2, s4 = np.zeros(length), np.zeros(length), np.zeros(length)
        fx, fy, fz = _pair_factors(factors, ia, ib, sl)
        _accumulate_modes(
            blocks[ia], blocks[ib], ia != ib, mx, my, mz, fx, fy, fz, special_z, drop_xy, los,
            plan.k2max, n_pair == 0, cnt, s0, s2, s4, want2, want4,
        )  # fmt: skip
        pair_sums.append((s0, s2, s4))
    return _fold(cnt, pair_sums, ells, plan)[None, None, None]


def binned_sums(
    fks: Sequence[da.Array | np.ndarray],
    shape: tuple[int, int, int],
    plan: BinPlan,
    pairs: tuple[tuple[int, int], ...],
    factors: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...],
    los: int,
    ells: tuple[int, ...],
) -> np.ndarray:
    """Sum per bin over all modes: rows count, sum|k|, then per pair one row per ell.

    In-memory transforms (numpy arrays) take the threaded :func:`memory_sums`; dask arrays
    are reduced block by block where they lie, and only per-bin sums reach the client.
    """
    in_memory = [f for f in fks if isinstance(f, np.ndarray)]
    if len(in_memory) == len(fks):
        return memory_sums(in_memory, shape, plan, pairs, factors, los, ells)
    import dask.array as da

    nq = 2 + len(pairs) * len(ells)
    lazy = [f if isinstance(f, da.Array) else da.from_array(f) for f in fks]
    ref = lazy[0]
    grid = ref.numblocks
    sums = da.map_blocks(
        _block_sums,
        *(f.rechunk(ref.chunks) for f in lazy),
        shape=shape,
        plan=plan,
        pairs=pairs,
        factors=factors,
        los=los,
        ells=ells,
        new_axis=[3, 4],
        chunks=(*tuple((1,) * g for g in grid), (nq,), (plan.nbins,)),
        dtype=np.float64,
        meta=np.array((), np.float64),
        token="power-bin",
    )
    return np.asarray(sums.sum(axis=(0, 1, 2)).compute())
