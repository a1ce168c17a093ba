"""Phase 1 of a deposit, one task per particle batch: check, route and spill it.

A route task (memory: one batch) reads its batch, refuses NaN and out-of-box positions
(reported for all batches together, before anything but buckets is written), counts the
blocks every particle touches (:meth:`~bigpaint.mesh.deposit.plan.DepositPlan.route_counts`)
and spills the batch to one bucket file, grouped by block, so an unordered snapshot pays one
sequential write and one read. A batch that can be re-read from its source and lies mostly in
one block (spatially ordered input) is left where it is: that *home* block re-reads it in
phase 2, and only its particles that touch other blocks are spilled.

:class:`Routing` is what the client keeps of the phase: per batch, the blocks and row ranges
of its buckets; it tells each block what to read (:meth:`Routing.items`) and sums up the
deposit (:class:`DepositStats`).

In-process dask particles enter as upstream of the task graph
(:meth:`bigpaint.chunked.graph.TaskGraph.upstream`): each batch's chunk is computed once,
on the worker that routes it, together with whatever produced it (e.g. an FFT).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigpaint.chunked.graph import TaskGraph, run_graph
from bigpaint.errors import ShapeError
from bigpaint.io.particles import Batch, ParticleSource
from bigpaint.mesh.assign import ParticleScan, scan_particles
from bigpaint.mesh.deposit.plan import DepositPlan

__all__ = [
    "DEFAULT_HOME_FRACTION",
    "BatchRoute",
    "BlockItem",
    "DepositStats",
    "Routing",
    "route_batch",
    "route_phase",
]

#: A re-readable batch with at least this fraction of its particles in one block (spatially
#: ordered input) is re-read by that block; only its other particles are spilled.
DEFAULT_HOME_FRACTION = 0.5

#: What a block reads of one batch: (batch index, first row, rows, bucket file prefix, or
#: None when the block re-reads the whole batch from the source).
BlockItem = tuple[int, int, int, str | None]


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


def route_batch(
    batch: Batch,
    *data: Any,
    source: ParticleSource,
    plan: DepositPlan,
    wrap: bool,
    spill_dir: str,
    home_fraction: float,
) -> BatchRoute:
    """Route one batch (a task): check it, then spill its buckets under ``spill_dir``.

    ``data`` are the batch's computed dask chunks (positions, masses or None) for a dask
    source, and empty for a source that reads its own batches.
    """
    pos, mass = source.load(batch, data or None)
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


@dataclass(frozen=True)
class Routing:
    """The batches of a source and where each one's particles went (phase 1's result)."""

    batches: list[Batch]
    routes: list[BatchRoute]

    @property
    def n_particles(self) -> int:
        return int(sum(r.count for r in self.routes))

    @property
    def weight(self) -> float:
        """Total mass (or particle count), summed exactly (``math.fsum``)."""
        return float(math.fsum(r.weight_sum for r in self.routes))

    def items(self) -> dict[int, list[BlockItem]]:
        """Per block id: what the block reads, in batch order."""
        out: dict[int, list[BlockItem]] = {}
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


def route_phase(
    source: ParticleSource,
    plan: DepositPlan,
    *,
    wrap: bool,
    spill_dir: str,
    home_fraction: float,
    progress: bool,
    scheduler: str | None,
) -> Routing:
    """Phase 1: validate every particle and bucket the batches (nothing is written but buckets).

    Raises
    ------
    NonFiniteError, ParticleBoundsError
        For the first bad particle of the whole source, once every batch has been read.
    """
    os.makedirs(spill_dir, exist_ok=True)
    batches = source.batches()
    live = [b for b in batches if b.count > 0]
    graph = TaskGraph("deposit-route")
    shared = {"source": source, "plan": plan, "wrap": wrap, "spill_dir": spill_dir,
              "home_fraction": home_fraction}  # fmt: skip
    refs: dict[str, Any] = {k: graph.data(k, v) for k, v in shared.items()}
    data = source.batch_data()
    deps = [()] * len(live) if data is None else _upstream(graph, [data[b.index] for b in live])
    keys = [graph.task(route_batch, b, *d, **refs) for b, d in zip(live, deps, strict=True)]
    routes = run_graph(graph, keys, progress=progress, scheduler=scheduler)
    routes.sort(key=lambda r: r.index)
    ParticleScan.combine([r.scan for r in routes]).raise_if_bad(plan.box_size, wrap=wrap)
    return Routing(batches, routes)


def _upstream(graph: TaskGraph, data: list[Any]) -> list[tuple[Any, ...]]:
    """Each batch's dask chunks (a tuple of ``Delayed`` or None) as upstream Refs of
    ``graph``; None stays None."""
    chunks = [d for parts in data for d in parts if d is not None]
    refs = iter(graph.upstream(*chunks))
    return [tuple(None if d is None else next(refs) for d in parts) for parts in data]
