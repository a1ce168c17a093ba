"""Whole-grid deposit by passes over x-planes: threaded, exact in float64, a small scratch.

The grid's x-planes are cut into slabs of ``w`` planes (a power of two, about ``L2_BYTES``
of float64, at least ``p - 1`` planes, at most ``_MAX_SLABS`` slabs). A particle belongs to
the slab of its first plane. A first pass sorts every block of ``BLOCK`` (255) consecutive
particles by slab, in place of a copy: one byte per particle (its offset in the block, in
slab order) and one byte per block and slab (where the slab's run starts), about 1.25
bytes per particle in all. The same pass checks every particle
(:mod:`bigpaint.mesh.particle_status`) and hands the counts to the caller, which refuses
bad input before anything is written: a separate scan read the positions one more time,
about a tenth of the deposit at 256^3.

Then *passes* of consecutive slabs, holding about ``PASS_BYTES`` of particles (or a
``PASS_FRACTION``-th of the positions if more), run in parallel, one per thread. A pass
takes its slabs one after the other. It streams a slab's particles, block after block (so
in particle order), through its thread's scratch of ``SCRATCH_BYTES`` (one row per axis, so
that the CIC kernel finds cells and weights in vector loops), depositing each
scratchful into the thread's float64 buffer of one slab and the ``p - 1`` planes it spills
into (a few MiB, which stays in cache); then it rounds the slab's planes into the grid at
once and zeroes them for the next slab while they are still in cache. The first
``p - 1`` planes of a slab are shared with the slab before; inside a pass they get the
previous slab's spill added in float64 before the rounding; at the edges of passes both
halves wait in float64 until both passes are done. So every cell is
rounded to the grid's dtype once, from a float64 sum taken in an order fixed by the input
and the grid (not by the pass size or the thread count): the result is the same bit for
bit on any number of threads, with any pass size and any scratch size.

Memory above the positions and the grid: the 1.25 bytes per particle, one scratch and one
slab buffer per thread. The scratch does not grow with the slab: copying a whole slab, or
a whole pass, before depositing it was no faster and held 25 MiB more per thread at 512^3.
Copying every particle at once (the scratch a full copy of the positions) was no faster on
2 cores either: touching that much fresh memory costs page faults (3 to 30 us per 4 KiB
page measured on a shared machine, about 0.2 s for 192 MiB).
Two designs measured slower at 256^3: a pass reading every particle's slab byte to pick
its own (the unpredictable test costs about 40 ms per pass), and depositing straight from
the positions through a sorted index list (a new page at nearly every read, about six
times slower than from the copy).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numba import njit

from bigpaint.mesh.assign_halves import deposit_halves, in_halves
from bigpaint.mesh.particle_status import (
    coordinates,
    is_fine,
    note_status,
    particle_status,
    run_is_fine,
    scan_statuses,
)
from bigpaint.mesh.prefetch import prefetch_row
from bigpaint.mesh.slab_deposit import slab_deposit
from bigpaint.mesh.weights import axis_weights, first_node, wrap_index

__all__ = [
    "BLOCK",
    "L2_BYTES",
    "PASS_BYTES",
    "PASS_FRACTION",
    "SCRATCH_BYTES",
    "deposit_planes",
    "slab_width",
]

#: Target float64 bytes of one slab: a slab's planes stay in cache while it deposits.
L2_BYTES = 4 * 2**20

#: Bytes of particles one pass holds (at least one slab's), or a ``PASS_FRACTION``-th of the
#: positions if more: passes are the units of work the threads share. At 128^3 passes of
#: 16 MiB made two passes of five slabs and three, and took 10 % longer on 2 threads.
PASS_BYTES = 4 * 2**20
PASS_FRACTION = 64

#: Bytes of particles a thread copies before depositing them (at least one block's).
SCRATCH_BYTES = 2**20

#: Particles per block: a particle's offset in its block, and where a slab's run starts in
#: it, are one byte each.
BLOCK = 255

#: Blocks ahead whose run the copy prefetches (see :mod:`bigpaint.mesh.prefetch`).
_AHEAD = 4

#: Most slabs: a block's run starts take ``_MAX_SLABS + 1`` bytes, a quarter byte per particle.
_MAX_SLABS = 64


def slab_width(shape: tuple[int, int, int], p: int) -> int:
    """x-planes per slab for a grid of ``shape`` and support ``p`` (see the module notes)."""
    nx, nyz = shape[0], shape[1] * shape[2]
    w = min(L2_BYTES // (8 * nyz), nx // 8)  # and eight slabs at least, for the threads
    w = max(w, -(-nx // _MAX_SLABS), p - 1, 1)
    w = 1 << (w - 1).bit_length()  # a power of two: the slab of a plane is a shift
    return min(w, nx)


@njit(cache=True, nogil=True, error_model="numpy")
def _sort_blocks(
    pos, weights, has_w, box, inv, nx, pt, shift, bits, nslab, b0, b1, order, first, hist, stats
):  # fmt: skip
    """Blocks b0..b1-1: each particle's slab, the block's particles in slab order
    (``order``: offsets in the block, stable) and where each slab's run starts
    (``first``); ``hist`` counts the particles per slab, and ``stats`` the particles that
    cannot be deposited (see :func:`~bigpaint.mesh.particle_status.note_status`).

    A block is first checked and given its slabs in loops without a branch, which LLVM
    vectorizes (40 % less time than particle by particle, at 256^3); a block where some
    particle fails the check or needs a wrap is done again particle by particle."""
    p = len(pt)  # a compile-time constant: the length of the tuple type
    n = pos.shape[0]
    bx, by, bz = box[0], box[1], box[2]
    flat = coordinates(pos, box)
    fnx = np.float64(nx)
    xb = np.empty(BLOCK, pos.dtype)
    slab = np.empty(BLOCK, np.int64)
    cnt = np.empty(nslab + 1, np.int64)
    for b in range(b0, b1):
        lo = b * BLOCK
        m = min(n, lo + BLOCK) - lo
        fine = run_is_fine(pos, flat, weights, has_w, box, lo, lo + m)
        for j in range(m):
            xb[j] = pos[lo + j, 0]
        for j in range(m):
            u = np.float64(xb[j]) * inv[0] + shift
            fine &= (u >= 0.0) & (u < fnx)  # else axis_weights wraps it
            slab[j] = min(first_node(u, nx, p) >> bits, nslab - 1)
        if not fine:
            for j in range(m):
                i = lo + j
                s = 0  # a NaN has no slab; the caller refuses the input
                if is_fine(pos, i, weights, has_w, bx, by, bz) or note_status(
                    stats, i, particle_status(pos, i, weights, has_w, box)
                ):
                    s = min(axis_weights(pos[i, 0], inv[0], nx, p, shift)[0] >> bits, nslab - 1)
                slab[j] = s
        cnt[:] = 0
        for j in range(m):
            cnt[slab[j] + 1] += 1
        for s in range(nslab):
            hist[s] += cnt[s + 1]
            cnt[s + 1] += cnt[s]
            first[b, s] = cnt[s]
        first[b, nslab] = m
        for j in range(m):
            s = slab[j]
            order[lo + cnt[s]] = j
            cnt[s] += 1


@njit(cache=True, nogil=True)
def _copy_runs(pos, weights, has_w, order, first, k, b, cap, spos, sw):
    """Copy slab ``k``'s runs of blocks ``b``, ``b + 1``, ... to the scratch ``spos`` (one
    row per axis) until the next would overflow ``cap`` particles; return the next block
    and the particles copied. The run ``_AHEAD`` blocks on is prefetched while each is
    copied."""
    nblock = first.shape[0]
    c = 0
    while b < nblock:
        lo = b * BLOCK
        j0 = lo + np.int64(first[b, k])
        j1 = lo + np.int64(first[b, k + 1])
        if c + (j1 - j0) > cap:
            break
        ahead = b + _AHEAD
        if ahead < nblock:
            la = ahead * BLOCK
            for j in range(la + np.int64(first[ahead, k]), la + np.int64(first[ahead, k + 1])):
                prefetch_row(pos, la + np.int64(order[j]))
        for j in range(j0, j1):
            i = lo + np.int64(order[j])
            spos[0, c] = pos[i, 0]
            spos[1, c] = pos[i, 1]
            spos[2, c] = pos[i, 2]
            if has_w:
                sw[c] = weights[i]
            c += 1
        b += 1
    return b, c


@njit(cache=True, nogil=True)
def _round_slab(region, ghost, nhead, width, nyz, flat, o):
    """Round a slab's float64 planes into the grid at ``o``: its first ``nhead`` planes with
    the previous slab's spill ``ghost`` added first (float64), the others as they are; and
    zero them for the next slab while they are in cache."""
    for q in range(nhead * nyz):
        flat[o + q] += region[q] + ghost[q]
    for q in range(nhead * nyz, width * nyz):
        flat[o + q] += region[q]
    region[: width * nyz] = 0.0


@njit(cache=True)
def _groups(counts, cap):
    """Consecutive ranges ``starts[g] .. starts[g + 1]`` holding at most ``cap`` in all (an
    entry above ``cap`` is a range of its own, with only zeros beside it)."""
    nslab = counts.shape[0]
    starts = [0]
    acc = 0
    for k in range(nslab):
        if acc > 0 and acc + counts[k] > cap:
            starts.append(k)
            acc = 0
        acc += counts[k]
    starts.append(nslab)
    return np.array(starts, np.int64)


@njit(cache=True)
def _one_slab(pos, weights, has_w, shape, inv, pt, shift, flat):
    """The whole grid as one slab: no copy, the spill folded back over the wrap."""
    p = len(pt)  # a compile-time constant: the length of the tuple type
    nx = shape[0]
    nyz = shape[1] * shape[2]
    nplane = nx + p - 1
    buf = np.zeros(nplane * nyz, np.float64)
    xs, ys, zs = pos[:, 0], pos[:, 1], pos[:, 2]
    slab_deposit(xs, ys, zs, weights, has_w, shape, inv, pt, shift, 0, pos.shape[0], 0, buf)
    for a in range(nx, nplane):
        o = wrap_index(a, nx) * nyz
        for q in range(nyz):
            buf[o + q] += buf[a * nyz + q]
    for q in range(nx * nyz):
        flat[q] += buf[q]
    return flat


@njit(cache=True, nogil=True)
def _run_pass(
    pos, weights, has_w, shape, inv, pt, shift, width, k0, k1, order, first, flat, edge,
    spos, sw, buf,
):  # fmt: skip
    """Deposit slabs k0..k1-1 (one pass, one thread): stream each slab's particles through
    the scratch ``spos``/``sw`` into ``buf`` (zero on entry, and left zero), then round the
    slab. The first slab's first ``p - 1`` planes and the last slab's spill stay float64,
    in ``edge[0]`` and ``edge[1]``, for the caller to sum with the neighbouring passes'."""
    p = len(pt)  # a compile-time constant: the length of the tuple type
    nx = shape[0]
    nyz = shape[1] * shape[2]
    nslab = first.shape[1] - 1
    nblock = first.shape[0]
    cap = spos.shape[1]
    h = (p - 1) * nyz
    ghost = np.zeros(h, np.float64)  # the spill of the slab before
    for k in range(k0, k1):
        ws = width if k < nslab - 1 else nx - k * width
        b = 0
        while b < nblock:
            b, c = _copy_runs(pos, weights, has_w, order, first, k, b, cap, spos, sw)
            slab_deposit(
                spos[0], spos[1], spos[2], sw, has_w, shape, inv, pt, shift, 0, c, k * width, buf
            )  # fmt: skip
        o = k * width * nyz
        if k == k0:
            edge[0, :] = buf[:h]
            buf[:h] = 0.0
            _round_slab(buf[h:], ghost, 0, ws - (p - 1), nyz, flat, o + h)
        else:
            _round_slab(buf, ghost, p - 1, ws, nyz, flat, o)
        ghost[:] = buf[ws * nyz : ws * nyz + h]
        buf[ws * nyz : ws * nyz + h] = 0.0
    edge[1, :] = ghost


def deposit_planes(
    pos: np.ndarray,
    weights: np.ndarray | None,
    shape: tuple[int, int, int],
    inv: np.ndarray,
    p: int,
    shift: float,
    flat: np.ndarray,
    box: np.ndarray,
    check: Callable[[np.ndarray], None],
) -> np.ndarray:
    """Add the deposit of ``pos`` to the flat C-order grid ``flat`` (float32 or float64).

    Parameters
    ----------
    pos : (N, 3) float32 or float64 array, C-contiguous
        Positions in Mpc/h (outside ones wrap).
    weights : (N,) float64 array or None
        Masses; unit mass when None.
    shape : 3 int
        Grid cells per axis.
    inv : (3,) float64 array
        Cells per Mpc/h on each axis (``n / L``).
    p : int
        Support in cells per axis (1 NGP, 2 CIC, 3 TSC, 4 PCS).
    shift : float
        Shift of every position in cells (0.5 for the second grid of interlacing).
    flat : 1-D float32 or float64 array
        The grid, added into; every cell is rounded once.
    box : (3,) float64 array
        Box side lengths in Mpc/h.
    check : callable
        Given the counts of particles that cannot be deposited (rows of
        :func:`~bigpaint.mesh.particle_status.note_status`), found in the first pass over
        the positions, before anything is written; it raises to refuse them.

    Returns
    -------
    numpy.ndarray
        ``flat``.
    """
    width = slab_width(shape, p)
    nslab = shape[0] // width
    w = weights if weights is not None else np.zeros(1)
    shape_a = np.array(shape, np.int64)
    pt = (0,) * p
    halves = in_halves(shape, p)
    if nslab == 1 or halves:
        nparts = min(pos.shape[0], 4 * numba.get_num_threads())
        check(scan_statuses(pos, w, weights is not None, box, nparts))
        whole = deposit_halves if halves else _one_slab
        whole(pos, w, weights is not None, shape_a, inv, pt, float(shift), flat)
        return flat
    entry = 3 * pos.itemsize + (8 if weights is not None else 0)
    per_pass = max(PASS_BYTES, pos.nbytes // PASS_FRACTION) // entry
    scratch = max(BLOCK, min(SCRATCH_BYTES // entry, pos.shape[0]))
    has_w = weights is not None
    _deposit_passes(
        pos, w, has_w, box, shape_a, inv, pt, float(shift), width, per_pass, scratch, flat, check
    )  # fmt: skip
    return flat


def _deposit_passes(
    pos: np.ndarray,
    w: np.ndarray,
    has_w: bool,
    box: np.ndarray,
    shape: np.ndarray,
    inv: np.ndarray,
    pt: tuple[int, ...],
    shift: float,
    width: int,
    cap: int,
    scratch: int,
    flat: np.ndarray,
    check: Callable[[np.ndarray], None],
) -> None:
    """Sort the blocks (and check the particles), run the passes on a pool of
    ``numba.get_num_threads()`` threads (the kernels release the GIL), then sum the planes
    shared by passes (see the module notes). Each thread has one scratch and one slab
    buffer, allocated once: fresh pages cost a fault each (0.5 to 30 us apiece measured on
    a shared machine). A numba ``prange`` over the passes was no faster and held about
    150 MiB more at 256^3."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from queue import SimpleQueue

    p = len(pt)
    n, nx, nyz = pos.shape[0], int(shape[0]), int(shape[1] * shape[2])
    bits = width.bit_length() - 1
    nslab = nx // width
    nblock = -(-n // BLOCK)
    nthreads = max(1, min(numba.get_num_threads(), nslab))
    order = np.empty(n, np.uint8)
    first = np.empty((nblock, nslab + 1), np.uint8)
    nparts = min(nblock, 4 * nthreads)
    hist = np.zeros((nparts, nslab), np.int64)
    stats = np.zeros((nparts, 4), np.int64)
    stats[:, 1::2] = -1

    def sort(t: int) -> None:
        b0, b1 = nblock * t // nparts, nblock * (t + 1) // nparts
        _sort_blocks(
            pos, w, has_w, box, inv, nx, pt, shift, bits, nslab, b0, b1, order, first,
            hist[t], stats[t],
        )  # fmt: skip

    with ThreadPoolExecutor(nthreads) as pool:
        list(pool.map(sort, range(nparts)))
        check(stats)
        counts = hist.sum(axis=0)
        passes = _groups(counts, max(1, cap))
        npass = len(passes) - 1
        h = (p - 1) * nyz
        free: SimpleQueue = SimpleQueue()
        for _ in range(min(nthreads, npass)):
            free.put(
                (
                    np.empty((3, scratch), pos.dtype),
                    np.empty(scratch if has_w else 1, np.float64),
                    np.zeros((nx - (nslab - 1) * width + p - 1) * nyz, np.float64),
                )
            )
        # the planes shared by passes g - 1 and g: pass g's own sum + the spill of pass
        # g - 1 (periodic), added in float64 and rounded once as soon as both are done
        heads: dict[int, np.ndarray] = {}
        ghosts: dict[int, np.ndarray] = {}
        lock = threading.Lock()

        def settle(g: int) -> None:
            prev = (g - 1) % npass
            if g in heads and prev in ghosts:
                o = int(passes[g]) * width * nyz
                head, ghost = heads.pop(g), ghosts.pop(prev)
                flat[o : o + h] += head + ghost

        def run(g: int) -> None:
            spos, sw, buf = free.get()
            edge = np.empty((2, h), np.float64)
            try:
                _run_pass(
                    pos, w, has_w, shape, inv, pt, shift, width, passes[g], passes[g + 1],
                    order, first, flat, edge, spos, sw, buf,
                )  # fmt: skip
            finally:
                free.put((spos, sw, buf))
            with lock:
                heads[g], ghosts[g] = edge[0], edge[1]
                settle(g)
                settle((g + 1) % npass)

        list(pool.map(run, range(npass)))
