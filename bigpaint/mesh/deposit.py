"""Chunked deposition of particles into a Field: routing plan, spill buckets, one task per block.

How it works
------------
1. **Route** (one task per particle batch; memory: one batch). Read the batch, refuse NaN
   and out-of-box positions (before anything is written), and find for every particle the
   output blocks its assignment kernel touches: 1 block for most particles, up to ``p^3``
   (2^3 for CIC) for particles whose support straddles a seam, including seams across the
   periodic wrap. Each batch is bucketed by block (a stable counting sort) and spilled to
   one file, so unordered snapshots pay one sequential write and one read. A batch that
   can be re-read from its source and lies mostly in one block (spatially ordered input,
   such as a sub-cube of particles from a Lagrangian grid) is left where it is: that
   "home" block re-reads it, and only the particles that touch other blocks (the few that
   crossed a seam) are spilled, so ordered input does not pay for a shuffle.
2. **Deposit** (one task per output block; memory: the block in float64 plus one batch or
   bucket). Read the block's bucket from every spilled batch and the few ordered batches
   that touch it, deposit them with the block's window kernel, which keeps only the nodes
   inside the block, and write the block once, with its completion marker.

Routing a particle to every block its support touches is the ghost-cell fold done on
particles instead of on grids: instead of depositing into a block plus ``p - 1`` ghost
layers and adding the ghosts into the neighbours afterwards (a third pass and a float64 halo
exchange), the few seam particles (~3(p-1)/C of them for blocks of C cells) are deposited
by each block they touch. The result is the same sum, every block is written by exactly
one task with no read-modify-write, and resuming a killed run redoes only unwritten blocks.

Each value is a float64 sum in a fixed order (batch order, then particle order), so the
result does not depend on the worker count or the schedule; it equals the in-memory
:func:`bigpaint.mesh.assign.deposit` to float64 rounding of the summation order.

Interlacing needs a global FFT: the plain and the half-cell-shifted grids are deposited as
temporary Fields, combined in Fourier space with :func:`bigpaint.mesh.window.interlace` on
the distributed FFT of :mod:`bigpaint.mesh.fft`, and written block by block.

Why hand-written: dask's shuffle works on dataframes and would move every particle through
the scheduler's memory; a bucket file per batch, addressed by block, gives the same routing
with bounded memory and a trivially resumable second phase.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numba import njit

from bigpaint.chunked.grid import BlockGrid, ChunkSpec
from bigpaint.errors import ChunkingError, ConfigError, MetadataError, ShapeError
from bigpaint.field import FieldWriter, create_field, job_token, remove_field
from bigpaint.io.open import open_particles
from bigpaint.io.particles import DEFAULT_BATCH_SIZE, Batch, ParticleSource
from bigpaint.mesh.assign import (
    ParticleScan,
    axis_weights,
    box_lengths,
    deposit_window,
    grid_shape,
    scan_particles,
    scheme_order,
    wrap_index,
)
from bigpaint.outputs import check_apart, job_path, owned_dir, remove_owned, writing
from bigpaint.progress import compute
from bigpaint.store import store_exists

__all__ = [
    "DepositPlan",
    "DepositStats",
    "deposit_blocks",
    "deposit_to_field",
]

Quantity = Literal["mass", "density", "delta"]
QUANTITIES = ("mass", "density", "delta")

#: A re-readable batch with at least this fraction of its particles in one block (spatially
#: ordered input) is re-read by that block; only its other particles are spilled.
DEFAULT_HOME_FRACTION = 0.5


# ---------------------------------------------------------------- plan (pure)


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
            _route_count(
                pos,
                np.array(self.shape, np.int64),
                self.inv_cell,
                (0,) * self.p,
                self.shift,
                *self._chunk_of,
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
            _route_fill(
                pos,
                w,
                weights is not None,
                np.array(self.shape, np.int64),
                self.inv_cell,
                (0,) * self.p,
                self.shift,
                *self._chunk_of,
                np.array(self.grid, np.int64),
                cursor,
                skip,
                out_pos,
                out_w if out_w is not None else np.zeros(1),
            )
        return counts, out_pos, out_w


# ---------------------------------------------------------------- routing kernels (numba)


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


# ---------------------------------------------------------------- executor pieces


@dataclass(frozen=True)
class BatchRoute:
    """Where one batch's particles go (the result of a route task)."""

    index: int
    count: int
    weight_sum: float
    blocks: np.ndarray  # sorted block ids with a bucket in the spill file
    counts: np.ndarray  # particles (with seam copies) per bucket
    spill: str | None  # path prefix of the bucket files (None: nothing spilled)
    scan: ParticleScan  # NaN / out-of-box findings (a bad batch is not routed)
    home: int = -1  # block that re-reads the whole batch from the source (-1: none)
    home_count: int = 0  # particles touching the home block


@dataclass(frozen=True)
class DepositStats:
    """What a chunked deposition did.

    Attributes
    ----------
    n_particles : int
    total_mass : float
        Sum of the particle masses (or the particle count), in the source's mass units.
    n_blocks : int
        Blocks written in this call.
    n_batches, spilled_batches : int
        Batches read, and those with a bucket file on disk.
    spilled_particles : int
        Particle copies written to bucket files (seam particles count once per block).
    reread_batches : int
        Batches re-read from the source by their home block (spatially ordered input);
        only their particles that touch other blocks were spilled.
    """

    n_particles: int
    total_mass: float
    n_blocks: int
    n_batches: int
    spilled_batches: int
    spilled_particles: int
    reread_batches: int = 0


def _route_batch(
    batch: Batch,
    data: Any = None,
    *,
    source: ParticleSource,
    plan: DepositPlan,
    wrap: bool,
    spill_dir: str,
    home_fraction: float,
) -> BatchRoute:
    pos, mass = source.load(batch, data)
    if pos.shape != (batch.count, 3):
        raise ShapeError(
            f"batch {batch.index} of {source.describe()} has shape {pos.shape}, "
            f"expected ({batch.count}, 3)"
        )
    scan = scan_particles(pos, plan.box_size, weights=mass, offset=batch.start)
    empty = np.zeros(0, np.int64)
    if scan.nonfinite or (scan.outside and not wrap):  # reported for all batches together
        return BatchRoute(batch.index, len(pos), 0.0, empty, empty, None, scan)
    weight_sum = float(np.sum(mass, dtype=np.float64)) if mass is not None else float(len(pos))
    counts = plan.route_counts(pos)
    home, home_count = -1, 0
    if source.rereadable and len(pos):
        h = int(np.argmax(counts))
        if counts[h] >= home_fraction * len(pos):
            home, home_count = h, int(counts[h])
    if home >= 0 and home_count == int(counts.sum()):  # the whole batch is the home block's
        empty = np.zeros(0, np.int64)
        return BatchRoute(batch.index, len(pos), weight_sum, empty, empty, None, scan, home,
                          home_count)  # fmt: skip
    counts, bpos, bw = plan.route(pos, mass, counts, skip=home)
    blocks = np.flatnonzero(counts)
    prefix = os.path.join(spill_dir, f"batch{batch.index:07d}")
    np.save(prefix + ".pos.npy", bpos)
    if bw is not None:
        np.save(prefix + ".mass.npy", bw)
    return BatchRoute(batch.index, len(pos), weight_sum, blocks, counts[blocks], prefix, scan,
                      home, home_count)  # fmt: skip


def _run(
    fn: Any,
    calls: list[tuple[Any, ...]],
    *,
    shared: dict[str, Any],
    name: str,
    progress: bool,
    scheduler: str | None,
) -> list[Any]:
    """Run one task per call with the project's task runner (distributed client or threads)."""
    from bigpaint.chunked.graph import run_tasks

    return run_tasks(fn, calls, shared=shared, name=name, progress=progress, scheduler=scheduler)


class _Opaque:
    """Carries a value into a ``dask.delayed`` graph untouched (delayed would rebuild a
    dataclass from its fields, computing any dask array inside, e.g. DaskParticles')."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _route_dask_batch(batch: Batch, data: Any, source: _Opaque, **kwargs: Any) -> BatchRoute:
    return _route_batch(batch, data, source=source.value, **kwargs)


def _transform(acc: np.ndarray, quantity: str, scale: float, cell_volume: float) -> np.ndarray:
    """Mass per cell (float64) to the stored quantity."""
    if quantity == "mass":
        return acc * scale if scale != 1.0 else acc
    if quantity == "density":
        return acc * (scale / cell_volume)
    return acc * scale - 1.0  # delta: scale = n_cells / total weight


def _deposit_block(
    index: tuple[int, int, int],
    items: list[tuple[int, int, int, str | None]],
    *,
    source: ParticleSource,
    plan: DepositPlan,
    batches: list[Batch],
    dest: Any,
    quantity: str,
    scale: float,
    cell_volume: float,
    dtype: str,
) -> int:
    acc = np.zeros(plan.block_shape(index), np.float64)
    shape = np.array(plan.shape, np.int64)
    origin = np.array(plan.origin(index), np.int64)
    inv = plan.inv_cell
    n = 0
    for b, offset, count, spill in items:
        if spill is None:
            pos, w = source.load(batches[b])
        else:
            pos = np.load(spill + ".pos.npy", mmap_mode="r")[offset : offset + count]
            w = None
            if source.has_masses:
                w = np.load(spill + ".mass.npy", mmap_mode="r")[offset : offset + count]
        pos = np.ascontiguousarray(pos)
        w = None if w is None else np.ascontiguousarray(w, dtype=np.float64)
        deposit_window(
            pos,
            w if w is not None else np.zeros(1),
            w is not None,
            shape,
            inv,
            (0,) * plan.p,
            plan.shift,
            origin,
            acc,
        )
        n += len(pos)
    out = _transform(acc, quantity, scale, cell_volume).astype(dtype, copy=False)
    if isinstance(dest, FieldWriter):
        dest.write_block(index, out)
    else:
        dest[plan.core(index)] = out
    return n


@dataclass(frozen=True)
class _Routing:
    batches: list[Batch]
    routes: list[BatchRoute]

    @property
    def n_particles(self) -> int:
        return int(sum(r.count for r in self.routes))

    @property
    def weight(self) -> float:
        return float(math.fsum(r.weight_sum for r in self.routes))

    def items(self, plan: DepositPlan) -> dict[int, list[tuple[int, int, int, str | None]]]:
        """Per block id: (batch, offset, count, spill prefix or None) in batch order."""
        out: dict[int, list[tuple[int, int, int, str | None]]] = {}
        for r in sorted(self.routes, key=lambda r: r.index):
            if r.home >= 0:  # the home block reads the whole batch from the source
                out.setdefault(r.home, []).append((r.index, 0, r.count, None))
            offsets = np.concatenate([[0], np.cumsum(r.counts)])
            for k, bid in enumerate(r.blocks):
                out.setdefault(int(bid), []).append(
                    (r.index, int(offsets[k]), int(r.counts[k]), r.spill)
                )
        return out

    def stats(self, n_blocks: int) -> DepositStats:
        spilled = [r for r in self.routes if r.spill]
        return DepositStats(
            self.n_particles,
            self.weight,
            n_blocks,
            len(self.routes),
            len(spilled),
            int(sum(int(r.counts.sum()) for r in spilled)),
            sum(1 for r in self.routes if r.home >= 0),
        )


def _route_phase(
    source: ParticleSource,
    plan: DepositPlan,
    *,
    wrap: bool,
    spill_dir: str,
    home_fraction: float,
    progress: bool,
    scheduler: str | None,
) -> _Routing:
    """Phase 1: validate every particle and bucket the batches (nothing is written but buckets)."""
    os.makedirs(spill_dir, exist_ok=True)
    batches = source.batches()
    data = source.batch_data()
    shared = {"plan": plan, "wrap": wrap, "spill_dir": spill_dir, "home_fraction": home_fraction}
    if data is None:
        calls = [(b, None) for b in batches if b.count > 0]
        routes = _run(
            _route_batch,
            calls,
            shared={"source": source, **shared},
            name="deposit-route",
            progress=progress,
            scheduler=scheduler,
        )
    else:
        # in-process dask arrays: the batches are graph dependencies (their upstream, e.g. an
        # FFT, is computed once); dask.compute runs on the current client if there is one
        import dask

        task = dask.delayed(_route_dask_batch, pure=False)
        tasks = [task(b, data[b.index], _Opaque(source), **shared) for b in batches if b.count > 0]
        routes = list(compute(*tasks, name="deposit-route", progress=progress, scheduler=scheduler))
    routes.sort(key=lambda r: r.index)
    ParticleScan.combine([r.scan for r in routes]).raise_if_bad(plan.box_size, wrap=wrap)
    return _Routing(batches, routes)


def _deposit_phase(
    source: ParticleSource,
    plan: DepositPlan,
    routing: _Routing,
    dest: Any,
    todo: Sequence[tuple[int, int, int]],
    *,
    quantity: str,
    raw: bool = False,
    progress: bool,
    scheduler: str | None,
) -> None:
    """Phase 2: one task per block: deposit its buckets and ordered batches, write it once.

    ``raw`` writes the plain sum of the weights per cell (no particle mass, no
    normalisation): the intermediate grids of interlacing.
    """
    scale, cell_volume = _scale(source, plan, quantity, routing.weight)
    if raw:
        scale = 1.0
    items = routing.items(plan)
    calls = [(tuple(idx), items.get(plan.block_id(idx), [])) for idx in todo]
    _run(
        _deposit_block,
        calls,
        shared={
            "source": source,
            "plan": plan,
            "batches": routing.batches,
            "dest": dest,
            "quantity": quantity,
            "scale": scale,
            "cell_volume": cell_volume,
            "dtype": np.dtype(dest.dtype).str,
        },
        name="deposit-blocks",
        progress=progress,
        scheduler=scheduler,
    )


def _scale(
    source: ParticleSource, plan: DepositPlan, quantity: str, weight: float
) -> tuple[float, float]:
    cell_volume = float(np.prod([b / n for b, n in zip(plan.box_size, plan.shape, strict=True)]))
    unit = source.particle_mass if (source.particle_mass and not source.has_masses) else 1.0
    if quantity == "delta":
        if not weight > 0:
            raise ConfigError(
                f"the total particle mass is {weight}; delta needs a positive mean density"
            )
        return float(np.prod(plan.shape)) / weight, cell_volume
    return float(unit), cell_volume


def deposit_blocks(
    particles: ParticleSource,
    dest: np.ndarray | FieldWriter,
    *,
    chunks: Any = None,
    scheme: str = "cic",
    quantity: Quantity = "mass",
    wrap: bool = False,
    shift: float = 0.0,
    spill_dir: str | None = None,
    home_fraction: float = DEFAULT_HOME_FRACTION,
    progress: bool = False,
) -> DepositStats:
    """Deposit a particle source block by block into a numpy grid or an open FieldWriter.

    Parameters
    ----------
    particles : ParticleSource
        Positions in Mpc/h; its ``box_size`` must be set (see :func:`open_particles`).
    dest : numpy.ndarray or FieldWriter
        Output grid (3-D). A FieldWriter gets one task per pending write block (resume) and is
        not finalized here. A numpy array is filled on local threads.
    chunks : optional
        Block layout for a numpy ``dest`` (int, 3 ints or dask-style tuples; default one
        block). A FieldWriter dictates its own blocks.
    scheme : {"ngp", "cic", "tsc", "pcs"}
    quantity : {"mass", "density", "delta"}
        Mass per cell (the source's mass units), mass per (Mpc/h)^3, or the overdensity
        ``mass / mean - 1``.
    wrap : bool
        Wrap positions outside ``[0, L]`` instead of refusing them.
    shift : float
        Shift in cells (0.5: the second grid of interlacing).
    spill_dir : str, optional
        Directory for bucket files (visible to all workers); default a temporary directory.
        The bucket files are removed when done.
    home_fraction : float
        A batch that can be re-read from its source (files, arrays) and has at least this
        fraction of its particles in one block (spatially ordered input, e.g. a Lagrangian
        sub-cube) is read again by that "home" block; only its particles touching other
        blocks (the few that crossed a seam) are spilled. Above 1: always spill (a full
        shuffle); 0: every re-readable batch gets the block holding most of it.
    progress : bool
        Show progress bars.

    Returns
    -------
    DepositStats
    """
    if quantity not in QUANTITIES:
        raise ConfigError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    if particles.box_size is None:
        raise ConfigError(
            "the particle source has no box size; open it with open_particles(box_size=...)"
        )
    if isinstance(dest, FieldWriter):
        if len(dest.shape) != 3:
            raise ShapeError(f"deposit writes a 3-D Field, the writer has shape {dest.shape}")
        plan = DepositPlan(dest.shape, dest.block_chunks, particles.box_size, scheme, shift)
        if chunks is not None and BlockGrid(plan.shape, chunks).chunks != plan.chunks:
            raise ChunkingError(
                f"chunks {chunks} differ from the Field's write blocks {dest.chunks}"
            )
        scheduler = None
    else:
        if dest.ndim != 3:
            raise ShapeError(f"destination grid must be 3-D, got shape {dest.shape}")
        plan = DepositPlan(
            dest.shape,
            chunks if chunks is not None else dest.shape,
            particles.box_size,
            scheme,
            shift,
        )
        scheduler = "threads"
    with _spill_area(spill_dir) as spill:
        routing = _route_phase(
            particles,
            plan,
            wrap=wrap,
            spill_dir=spill,
            home_fraction=home_fraction,
            progress=progress,
            scheduler=scheduler,
        )
        todo = dest.pending() if isinstance(dest, FieldWriter) else list(plan.blocks())
        _deposit_phase(
            particles,
            plan,
            routing,
            dest,
            todo,
            quantity=quantity,
            progress=progress,
            scheduler=scheduler,
        )
    return routing.stats(len(todo))


class _spill_area:
    """A fresh bucket directory (inside ``parent`` if given), removed on exit."""

    def __init__(self, parent: str | None) -> None:
        self.parent = parent
        self.path = ""

    def __enter__(self) -> str:
        if self.parent is None:
            self.path = tempfile.mkdtemp(prefix="bigpaint-deposit-")
        else:
            os.makedirs(self.parent, exist_ok=True)
            self.path = tempfile.mkdtemp(prefix="buckets-", dir=self.parent)
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------- Field-level entry point


def deposit_to_field(
    particles: Any,
    url: str,
    *,
    nmesh: int | Sequence[int],
    chunks: int | Sequence[int] | None = None,
    box_size: float | Sequence[float] | None = None,
    scheme: str = "cic",
    quantity: Quantity = "delta",
    interlace: bool = False,
    wrap: bool = False,
    masses: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    length_unit: str | float | None = None,
    ptype: int = 1,
    redshift: float | None = None,
    cosmology: Any = None,
    dtype: str = "float32",
    spill_dir: str | None = None,
    home_fraction: float = DEFAULT_HOME_FRACTION,
    overwrite: bool = False,
    progress: bool = False,
) -> FieldWriter:
    """Deposit particles onto a periodic grid and write it as a Field, block by block.

    Runs on the current distributed client if there is one, else on local threads.

    Parameters
    ----------
    particles : str, array, dask array or ParticleSource
        What :func:`bigpaint.io.open_particles` accepts: ``.npy``, Zarr, Gadget HDF5 (single
        or multi-file), numpy or dask (N, 3) positions in Mpc/h.
    url : str
        Output Field (Zarr v3 store).
    nmesh : int or 3 ints
        Grid cells per axis.
    chunks : int or 3 ints, optional
        Write block size in cells (default: 128 per axis, or the grid if smaller). Any size
        up to the grid works; the last block per axis may be smaller.
    box_size : float or 3 floats, optional
        Box in Mpc/h; required for inputs without one, checked against snapshot headers.
    scheme : {"ngp", "cic", "tsc", "pcs"}
    quantity : {"delta", "mass", "density"}
        Overdensity (kind ``delta``), mass per cell (kind ``mass``), or mass per (Mpc/h)^3
        (kind ``density``).
    interlace : bool
        Interlace: deposit a second grid shifted by half a cell and combine the two in Fourier
        space with the distributed FFT, which removes most of the aliasing of P(k).
        The scheme and interlacing are the Field's ``mass_assignment`` record, which the
        spectra read to compensate the window.
    wrap : bool
        Wrap positions outside the box instead of refusing them.
    masses, batch_size, length_unit, ptype
        Passed to :func:`bigpaint.io.open_particles`.
    redshift : float, optional
        Stored in the Field (default: the input's, if it has one).
    cosmology : bigpaint.field.Cosmology or mapping, optional
        Stored in the Field (all five parameters: ``Omega_m``, ``Omega_b``, ``h``, ``n_s``,
        ``sigma_8``). Painters with a model card refuse inputs without redshift and cosmology.
    dtype : str
        Stored dtype (accumulation is float64).
    spill_dir : str, optional
        Where bucket files (and, with interlacing, the two intermediate grids) go; must be
        visible to every worker. Default: a hidden directory next to a local output, else the
        system temporary directory. Removed when the Field is finished.
    home_fraction : float
        See :func:`deposit_blocks`.
    overwrite : bool
        Replace an existing output. Without it, re-running the same command on an unfinished
        output resumes it, and any other existing output is refused.
    progress : bool

    Returns
    -------
    FieldWriter
        Of the finished Field (``.open()`` reads it).

    Raises
    ------
    MetadataError, ShapeError, NonFiniteError, ParticleBoundsError, ChunkingError
        Before anything is written.
    """
    if quantity not in QUANTITIES:
        raise ConfigError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    scheme_order(scheme)
    shape = grid_shape(nmesh)
    src = open_particles(
        particles,
        box_size=box_size,
        masses=masses,
        batch_size=batch_size,
        length_unit=length_unit,
        ptype=ptype,
    )
    if chunks is None:
        chunks = tuple(min(n, 128) for n in shape)
    plan = DepositPlan(shape, chunks, src.box_size, scheme)  # type: ignore[arg-type]
    write_chunks = tuple(c[0] for c in plan.chunks)
    units = {"delta": "1", "mass": src.mass_units, "density": f"({src.mass_units}) / (Mpc/h)^3"}[
        quantity
    ]
    if quantity != "delta" and src.mass_units == "1" and src.particle_mass is None:
        units = "particles" if quantity == "mass" else "particles / (Mpc/h)^3"
    params = {
        "scheme": plan.scheme,
        "nmesh": list(shape),
        "chunks": list(write_chunks),
        "quantity": quantity,
        "interlace": bool(interlace),
        "wrap": bool(wrap),
        "box_size": list(src.box_size),
        "dtype": str(np.dtype(dtype)),
    }  # type: ignore[arg-type]
    provenance: dict[str, Any] = {
        "operation": "deposit",
        "inputs": [src.describe()],
        "config": params,
        "n_particles": src.n_particles,
    }
    if hasattr(src, "provenance"):
        provenance["snapshot"] = src.provenance()  # type: ignore[attr-defined]
    meta = {
        "box_size": src.box_size,
        "kind": quantity,
        "units": units,
        "redshift": redshift if redshift is not None else src.redshift,
        "cosmology": cosmology_record(cosmology),
        "provenance": provenance,
        "mass_assignment": {"scheme": plan.scheme.upper(), "interlaced": bool(interlace)},
    }
    inputs = _particle_paths(particles)
    # physics given here joins the token, so a rerun recording other values is not a resume
    given = {"redshift": redshift, "cosmology": meta["cosmology"]}
    given = {k: v for k, v in given.items() if v is not None}
    job = job_token(
        op="deposit",
        input=[job_path(p) for p in inputs.values()] or src.describe(),
        n=src.n_particles,
        **params,
        **given,
    )
    if spill_dir is not None:
        spill_dir = os.path.join(spill_dir, f"bigpaint-deposit-{job[:12]}")
    elif "://" in str(url):
        spill_dir = os.path.join(tempfile.gettempdir(), f"bigpaint-deposit-{job[:12]}")
    else:
        absurl = os.path.abspath(url)
        spill_dir = os.path.join(
            os.path.dirname(absurl), f".{os.path.basename(absurl)}.deposit-{job[:12]}"
        )
    check_apart({"output": url, "spill directory": spill_dir}, inputs)
    with writing({"output": url}, inputs):
        if overwrite:
            remove_field(url)
        _refuse_foreign_output(url, job)
        owned_dir(spill_dir, purpose="deposit spill files")
        return _deposit_guarded(
            src, url, plan, meta, shape, write_chunks, dtype, job, quantity, interlace, wrap,
            spill_dir, home_fraction, progress,
        )  # fmt: skip


def cosmology_record(value: Any) -> dict[str, float] | None:
    """The cosmology record of a Field: all five parameters required and checked (one-line
    :class:`MetadataError`); None stays None."""
    from pydantic import ValidationError

    from bigpaint.field import Cosmology

    if value is None:
        return None
    if isinstance(value, Cosmology):
        return value.model_dump()
    raw = dict(value)
    missing = [k for k in Cosmology.model_fields if k not in raw]
    if missing:
        raise MetadataError(
            f"cosmology lacks {', '.join(missing)}; give all of {', '.join(Cosmology.model_fields)}"
        )
    try:
        return Cosmology.model_validate(raw).model_dump()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise MetadataError(f"cosmology {where}: {err['msg']} (got {err.get('input')!r})") from None


def _deposit_guarded(
    src: ParticleSource,
    url: str,
    plan: DepositPlan,
    meta: dict[str, Any],
    shape: tuple[int, int, int],
    write_chunks: tuple[int, ...],
    dtype: str,
    job: str,
    quantity: str,
    interlace: bool,
    wrap: bool,
    spill_dir: str,
    home_fraction: float,
    progress: bool,
) -> FieldWriter:
    """The deposit proper, under the output's lock, with its spill in ``spill_dir``."""

    def create() -> FieldWriter:
        return create_field(url, shape=shape, chunks=write_chunks, meta=meta, dtype=dtype, job=job)

    try:
        if not interlace:
            with _spill_area(spill_dir) as spill:
                # route first: bad particles raise here, before the Field exists
                routing = _route_phase(
                    src,
                    plan,
                    wrap=wrap,
                    spill_dir=spill,
                    home_fraction=home_fraction,
                    progress=progress,
                    scheduler=None,
                )
                writer = create()
                _deposit_phase(
                    src,
                    plan,
                    routing,
                    writer,
                    writer.pending(),
                    quantity=quantity,
                    progress=progress,
                    scheduler=None,
                )
        else:
            writer = _deposit_interlaced(
                src,
                plan,
                create,
                quantity=quantity,
                wrap=wrap,
                spill_dir=spill_dir,
                home_fraction=home_fraction,
                progress=progress,
                job=job,
            )
        writer.finalize()
    except BaseException:
        # keep the intermediate grids of an interlaced run whose output exists (resume);
        # otherwise leave nothing behind
        if not (interlace and store_exists(url)):
            remove_owned(spill_dir)
        raise
    remove_owned(spill_dir)
    return writer


def _particle_paths(particles: Any) -> dict[str, str]:
    """The files a particle input reads, labelled for :func:`bigpaint.outputs.check_apart`."""
    if isinstance(particles, (str, os.PathLike)):
        return {"particles": str(particles)}
    files = getattr(particles, "files", None) or ()
    one = getattr(particles, "path", None) or getattr(particles, "url", None)
    paths = [str(f) for f in files] or ([str(one)] if one else [])
    return {
        "particles" if len(paths) == 1 else f"particle file {i}": p for i, p in enumerate(paths)
    }


def _refuse_foreign_output(url: str, job: str) -> None:
    """Refuse an existing output written by another job before any work is done."""
    import zarr

    from bigpaint.errors import FieldExistsError

    if not store_exists(url):
        return
    try:
        same = zarr.open_group(store=str(url), mode="r").attrs.get("bigpaint_job") == job
    except Exception:  # not a Zarr group at all
        same = False
    if not same:
        raise FieldExistsError(
            f"output {url} already exists (written by a different job); choose another path or "
            "pass --overwrite"
        )


def _deposit_interlaced(
    src: ParticleSource,
    plan: DepositPlan,
    create: Any,
    *,
    quantity: str,
    wrap: bool,
    spill_dir: str,
    home_fraction: float,
    progress: bool,
    job: str,
) -> FieldWriter:
    """Two mass grids (plain and shifted by half a cell) as temporary Fields, then FFT combine."""
    try:
        from bigpaint.mesh import fft as bfft
        from bigpaint.mesh import window as bwindow
    except ImportError as exc:  # pragma: no cover - the FFT ships with bigpaint
        from bigpaint.errors import MissingDependencyError

        raise MissingDependencyError(f"interlacing needs bigpaint.mesh.fft ({exc})") from None
    import dask
    import dask.array as da

    from bigpaint.field import open_field, zarr_array

    write_chunks = tuple(c[0] for c in plan.chunks)
    shifted = DepositPlan(plan.shape, plan.chunks, plan.box_size, plan.scheme, 0.5)
    temps = []
    writer: FieldWriter | None = None
    weight = 0.0
    for name, pl in (("plain", plan), ("shifted", shifted)):
        with _spill_area(spill_dir) as spill:
            routing = _route_phase(
                src,
                pl,
                wrap=wrap,
                spill_dir=spill,
                home_fraction=home_fraction,
                progress=progress,
                scheduler=None,
            )
            weight = routing.weight
            tmp_url = os.path.join(spill_dir, f"{name}.zarr")
            tmp = create_field(
                tmp_url,
                shape=plan.shape,
                chunks=write_chunks,
                meta={"box_size": plan.box_size, "kind": "mass", "units": "1"},
                dtype="float64",
                job=f"{job}-{name}",
            )
            _deposit_phase(
                src,
                pl,
                routing,
                tmp,
                tmp.pending(),
                quantity="mass",
                raw=True,
                progress=progress,
                scheduler=None,
            )
            tmp.finalize()
            temps.append(tmp_url)
        if writer is None:
            writer = create()  # both routings validated the input before the output exists
    assert writer is not None
    arrays = [da.from_zarr(zarr_array(open_field(u))) for u in temps]
    fk = bwindow.interlace(bfft.rfftn(arrays[0]), bfft.rfftn(arrays[1]), plan.shape)
    grid = bfft.irfftn(fk, plan.shape, chunks=writer.block_chunks)
    scale, cell_volume = _scale(src, plan, quantity, weight)
    # the blocks are graph dependencies (the FFT stages): one write task per pending block
    blocks = grid.to_delayed()
    task = dask.delayed(_write_transformed, pure=False)
    dest = _Opaque(writer)
    writes = [
        task(idx, blocks[idx], dest, quantity=quantity, scale=scale, cell_volume=cell_volume)
        for idx in writer.pending()
    ]
    compute(*writes, name="deposit-interlace", progress=progress)
    return writer


def _write_transformed(
    index: tuple[int, int, int],
    block: np.ndarray,
    dest: _Opaque,
    *,
    quantity: str,
    scale: float,
    cell_volume: float,
) -> None:
    out = _transform(np.asarray(block, np.float64), quantity, scale, cell_volume)
    dest.value.write_block(index, out)
