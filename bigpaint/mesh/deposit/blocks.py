"""Phase 2 of a deposit, one task per output block: deposit what it reads, write it once.

A block task (memory: the block in float64 plus one batch or bucket) reads its bucket of
every spilled batch and the ordered batches it is home to, deposits them with the block's
window kernel (:func:`bigpaint.mesh.assign.deposit_window`, which keeps only the nodes
inside the block), turns the mass per cell into the stored quantity and writes the block,
with its completion marker when the destination is a Field. Every block is written by
exactly one task, with no read-modify-write, so resuming a killed run redoes only the
blocks not written.

Each value is a float64 sum in a fixed order (batch order, then particle order), so the
result does not depend on the worker count or the schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bigpaint.chunked.graph import run_tasks
from bigpaint.errors import ConfigError
from bigpaint.field import FieldWriter
from bigpaint.io.particles import Batch, ParticleSource
from bigpaint.mesh.assign import deposit_window
from bigpaint.mesh.deposit.plan import DepositPlan
from bigpaint.mesh.deposit.route import BlockItem, Routing

__all__ = ["deposit_block", "deposit_phase", "quantity_scale", "to_quantity"]


def to_quantity(acc: np.ndarray, quantity: str, scale: float, cell_volume: float) -> np.ndarray:
    """Mass per cell (float64) to the stored quantity (see :func:`quantity_scale`)."""
    if quantity == "mass":
        return acc * scale if scale != 1.0 else acc
    if quantity == "density":
        return acc * (scale / cell_volume)
    return acc * scale - 1.0  # delta: scale = n_cells / total weight


def quantity_scale(
    source: ParticleSource, plan: DepositPlan, quantity: str, weight: float
) -> tuple[float, float]:
    """The factor from summed weights to ``quantity``, and the cell volume in (Mpc/h)^3.

    ``weight`` is the total mass (or particle count) of the source; ``delta`` divides by
    its mean per cell, the other quantities multiply by the particle mass when the source
    gives one mass for all particles.

    Raises
    ------
    ConfigError
        ``delta`` of a source whose total mass is not positive.
    """
    cell_volume = float(np.prod([b / n for b, n in zip(plan.box_size, plan.shape, strict=True)]))
    unit = source.particle_mass if (source.particle_mass and not source.has_masses) else 1.0
    if quantity == "delta":
        if not weight > 0:
            raise ConfigError(
                f"the total particle mass is {weight}; delta needs a positive mean density"
            )
        return float(np.prod(plan.shape)) / weight, cell_volume
    return float(unit), cell_volume


def deposit_block(
    index: tuple[int, int, int],
    items: list[BlockItem],
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
    """Deposit one block (a task) and write it to ``dest``; returns the particles read."""
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
    out = to_quantity(acc, quantity, scale, cell_volume).astype(dtype, copy=False)
    if isinstance(dest, FieldWriter):
        dest.write_block(index, out)
    else:
        dest[plan.core(index)] = out
    return n


def deposit_phase(
    source: ParticleSource,
    plan: DepositPlan,
    routing: Routing,
    dest: np.ndarray | FieldWriter,
    todo: Sequence[tuple[int, ...]],
    *,
    quantity: str,
    raw: bool = False,
    progress: bool,
    scheduler: str | None,
) -> None:
    """Phase 2: one task per block of ``todo``: deposit its buckets and ordered batches,
    write it once.

    ``raw`` writes the plain sum of the weights per cell (no particle mass, no
    normalisation): the intermediate grids of interlacing.
    """
    scale, cell_volume = quantity_scale(source, plan, quantity, routing.weight)
    if raw:
        scale = 1.0
    items = routing.items()
    calls = [(tuple(idx), items.get(plan.block_id(idx), [])) for idx in todo]
    run_tasks(
        deposit_block,
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
