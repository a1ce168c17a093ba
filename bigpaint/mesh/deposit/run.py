"""The two phases of a deposit, run in order: route the batches, then deposit the blocks.

:func:`route_and_deposit` is the sequence every deposit runs, once per grid: route into a
fresh spill area, make the destination only once every particle has been checked (so bad
input leaves nothing behind), deposit its pending blocks, drop the buckets.
:func:`deposit_blocks` is its public form for a numpy grid or an open
:class:`~bigpaint.field.FieldWriter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np

from bigpaint.chunked.grid import BlockGrid
from bigpaint.errors import ChunkingError, ConfigError, ShapeError
from bigpaint.field import FieldWriter
from bigpaint.io.particles import ParticleSource
from bigpaint.mesh.deposit.blocks import deposit_phase
from bigpaint.mesh.deposit.plan import DepositPlan
from bigpaint.mesh.deposit.route import DEFAULT_HOME_FRACTION, DepositStats, Routing, route_phase
from bigpaint.mesh.deposit.spill import SpillArea

__all__ = ["QUANTITIES", "Quantity", "check_quantity", "deposit_blocks", "route_and_deposit"]

Quantity = Literal["mass", "density", "delta"]
QUANTITIES = ("mass", "density", "delta")

Dest = TypeVar("Dest", bound=np.ndarray | FieldWriter)


def check_quantity(quantity: str) -> None:
    """Refuse a stored quantity other than ``mass``, ``density`` or ``delta``."""
    if quantity not in QUANTITIES:
        raise ConfigError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")


def route_and_deposit(
    source: ParticleSource,
    plan: DepositPlan,
    make_dest: Callable[[], Dest],
    *,
    spill_dir: str | None,
    quantity: str,
    raw: bool = False,
    wrap: bool,
    home_fraction: float,
    progress: bool,
    scheduler: str | None,
) -> tuple[Dest, Routing, int]:
    """Route ``source`` in a fresh spill area inside ``spill_dir``, then make the destination
    with ``make_dest()`` and deposit its pending blocks (a Field's unwritten blocks, every
    block of a numpy grid).

    Returns
    -------
    dest, routing, n_blocks
        The destination, phase 1's routing and the number of blocks written.
    """
    with SpillArea(spill_dir) as spill:
        # route first: bad particles raise here, before the destination exists
        routing = route_phase(
            source,
            plan,
            wrap=wrap,
            spill_dir=spill,
            home_fraction=home_fraction,
            progress=progress,
            scheduler=scheduler,
        )
        dest = make_dest()
        todo = dest.pending() if isinstance(dest, FieldWriter) else list(plan.blocks())
        deposit_phase(
            source,
            plan,
            routing,
            dest,
            todo,
            quantity=quantity,
            raw=raw,
            progress=progress,
            scheduler=scheduler,
        )
    return dest, routing, len(todo)


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
        Positions in Mpc/h; its ``box_size`` must be set (see
        :func:`bigpaint.io.open_particles`).
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
    check_quantity(quantity)
    if particles.box_size is None:
        raise ConfigError(
            "the particle source has no box size; open it with open_particles(box_size=...)"
        )
    plan = _plan_for(dest, chunks, particles.box_size, scheme, shift)
    # a numpy grid lives in this process: its blocks are written on local threads
    scheduler = None if isinstance(dest, FieldWriter) else "threads"
    _, routing, n_blocks = route_and_deposit(
        particles,
        plan,
        lambda: dest,
        spill_dir=spill_dir,
        quantity=quantity,
        wrap=wrap,
        home_fraction=home_fraction,
        progress=progress,
        scheduler=scheduler,
    )
    return routing.stats(n_blocks)


def _plan_for(
    dest: np.ndarray | FieldWriter,
    chunks: Any,
    box_size: tuple[float, float, float],
    scheme: str,
    shift: float,
) -> DepositPlan:
    """The plan of a deposit into ``dest``: a Field's own write blocks, or ``chunks``."""
    if isinstance(dest, FieldWriter):
        if len(dest.shape) != 3:
            raise ShapeError(f"deposit writes a 3-D Field, the writer has shape {dest.shape}")
        plan = DepositPlan(dest.shape, dest.block_chunks, box_size, scheme, shift)
        if chunks is not None and BlockGrid(plan.shape, chunks).chunks != plan.chunks:
            raise ChunkingError(
                f"chunks {chunks} differ from the Field's write blocks {dest.chunks}"
            )
        return plan
    if dest.ndim != 3:
        raise ShapeError(f"destination grid must be 3-D, got shape {dest.shape}")
    return DepositPlan(dest.shape, chunks if chunks is not None else dest.shape, box_size,
                       scheme, shift)  # fmt: skip
