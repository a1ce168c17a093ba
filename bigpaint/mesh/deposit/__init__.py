"""Chunked deposition of particles into a Field: routing plan, spill buckets, one task per block.

How it works
------------
1. **Route** (:mod:`~bigpaint.mesh.deposit.route`, one task per particle batch; memory: one
   batch). Read the batch, refuse NaN and out-of-box positions (before anything is
   written), and find for every particle the output blocks its assignment kernel touches
   (:mod:`~bigpaint.mesh.deposit.plan`): 1 block for most particles, up to ``p^3`` (2^3 for
   CIC) for particles whose support straddles a seam, including seams across the periodic
   wrap. Each batch is bucketed by block (a stable counting sort) and spilled to one file
   (:mod:`~bigpaint.mesh.deposit.spill`), so unordered snapshots pay one sequential write
   and one read. A batch that can be re-read from its source and lies mostly in one block
   (spatially ordered input, such as a sub-cube of particles from a Lagrangian grid) is
   left where it is: that "home" block re-reads it, and only the particles that touch
   other blocks (the few that crossed a seam) are spilled, so ordered input does not pay
   for a shuffle.
2. **Deposit** (:mod:`~bigpaint.mesh.deposit.blocks`, one task per output block; memory:
   the block in float64 plus one batch or bucket). Read the block's bucket from every
   spilled batch and the few ordered batches that touch it, deposit them with the block's
   window kernel, which keeps only the nodes inside the block, and write the block once,
   with its completion marker.

Both phases run on :func:`bigpaint.chunked.graph.run_graph` (the current distributed client
or local threads); :mod:`~bigpaint.mesh.deposit.run` runs them in order
(:func:`deposit_blocks`), and :mod:`~bigpaint.mesh.deposit.to_field` wraps them into a Field
job (:func:`deposit_to_field`: the record of :mod:`~bigpaint.mesh.deposit.record`, the
output's lock, resume, the spill directory's life).

Routing a particle to every block its support touches is the ghost-cell fold done on
particles instead of on grids: instead of depositing into a block plus ``p - 1`` ghost
layers and adding the ghosts into the neighbours afterwards (a third pass and a float64 halo
exchange), the few seam particles (~3(p-1)/C of them for blocks of C cells) are deposited
by each block they touch. The result is the same sum, every block is written by exactly
one task with no read-modify-write, and resuming a killed run redoes only unwritten blocks.

Each value is a float64 sum in a fixed order (batch order, then particle order), so the
result does not depend on the worker count or the schedule; it equals the in-memory
:func:`bigpaint.mesh.assign.deposit` to float64 rounding of the summation order.

Interlacing needs a global FFT (:mod:`~bigpaint.mesh.deposit.interlace`): the plain and the
half-cell-shifted grids are deposited as temporary Fields, combined in Fourier space with
:func:`bigpaint.mesh.window.interlace` on the distributed FFT of :mod:`bigpaint.mesh.fft`,
and written block by block.

Why hand-written: dask's shuffle works on dataframes and would move every particle through
the scheduler's memory; a bucket file per batch, addressed by block, gives the same routing
with bounded memory and a trivially resumable second phase.
"""

from bigpaint.mesh.deposit.plan import DepositPlan
from bigpaint.mesh.deposit.record import cosmology_record
from bigpaint.mesh.deposit.route import DEFAULT_HOME_FRACTION, DepositStats
from bigpaint.mesh.deposit.run import QUANTITIES, Quantity, deposit_blocks
from bigpaint.mesh.deposit.to_field import deposit_to_field

__all__ = [
    "DEFAULT_HOME_FRACTION",
    "QUANTITIES",
    "DepositPlan",
    "DepositStats",
    "Quantity",
    "cosmology_record",
    "deposit_blocks",
    "deposit_to_field",
]
