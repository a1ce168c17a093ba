"""Interlaced deposit: two grids half a cell apart, combined in Fourier space, written by block.

Interlacing needs a global FFT, so it cannot be done block by block: the plain grid and the
grid shifted by half a cell are deposited as temporary float64 Fields in the job's spill
directory (raw sums of the weights), both are transformed with the distributed FFT
(:mod:`bigpaint.mesh.fft`), combined with :func:`bigpaint.mesh.window.interlace`,
transformed back straight into the output's write blocks, and each pending block is turned
into the stored quantity and written by one task.

The temporary Fields carry their own job tokens, so a rerun of a killed interlaced job finds
them (finished or not) and resumes from them, as it resumes the output.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from bigpaint.chunked.graph import TaskGraph, run_graph
from bigpaint.field import FieldWriter, create_field, open_field, zarr_array
from bigpaint.io.particles import ParticleSource
from bigpaint.mesh.deposit.blocks import quantity_scale, to_quantity
from bigpaint.mesh.deposit.plan import DepositPlan
from bigpaint.mesh.deposit.run import route_and_deposit

__all__ = ["deposit_interlaced", "write_block"]


def deposit_interlaced(
    src: ParticleSource,
    plan: DepositPlan,
    create: Callable[[], FieldWriter],
    *,
    quantity: str,
    wrap: bool,
    spill_dir: str,
    home_fraction: float,
    progress: bool,
    job: str,
) -> FieldWriter:
    """Two mass grids (plain and shifted by half a cell) as temporary Fields in
    ``spill_dir``, then their FFT combination written into the Field ``create()`` makes
    (not finalized)."""
    import dask.array as da

    from bigpaint.mesh import fft as bfft
    from bigpaint.mesh import window as bwindow

    write_chunks = tuple(c[0] for c in plan.chunks)
    shifted = DepositPlan(plan.shape, plan.chunks, plan.box_size, plan.scheme, 0.5)
    temps = []
    writer: FieldWriter | None = None
    weight = 0.0
    for name, pl in (("plain", plan), ("shifted", shifted)):
        tmp_url = os.path.join(spill_dir, f"{name}.zarr")

        def create_tmp(tmp_url: str = tmp_url, name: str = name) -> FieldWriter:
            return create_field(
                tmp_url,
                shape=plan.shape,
                chunks=write_chunks,
                meta={"box_size": plan.box_size, "kind": "mass", "units": "1"},
                dtype="float64",
                job=f"{job}-{name}",
            )

        tmp, routing, _ = route_and_deposit(src, pl, create_tmp, spill_dir=spill_dir,
                                            quantity="mass", raw=True, wrap=wrap,
                                            home_fraction=home_fraction, progress=progress,
                                            scheduler=None)  # fmt: skip
        tmp.finalize()
        temps.append(tmp_url)
        weight = routing.weight
        if writer is None:
            writer = create()  # both routings validated the input before the output exists
    assert writer is not None  # the loop ran twice
    arrays = [da.from_zarr(zarr_array(open_field(u))) for u in temps]
    fk = bwindow.interlace(bfft.rfftn(arrays[0]), bfft.rfftn(arrays[1]), plan.shape)
    grid = bfft.irfftn(fk, plan.shape, chunks=writer.block_chunks)
    scale, cell_volume = quantity_scale(src, plan, quantity, weight)
    # the blocks are upstream of the writes (the FFT stages): one write task per pending block
    graph = TaskGraph("deposit-interlace")
    (blocks,) = graph.upstream(grid)
    dest = graph.data("dest", writer)
    keys = [
        graph.task(
            write_block,
            idx,
            blocks[idx[0]][idx[1]][idx[2]],
            dest=dest,
            quantity=quantity,
            scale=scale,
            cell_volume=cell_volume,
        )
        for idx in writer.pending()
    ]
    run_graph(graph, keys, progress=progress)
    return writer


def write_block(
    index: tuple[int, int, int],
    block: np.ndarray,
    *,
    dest: FieldWriter,
    quantity: str,
    scale: float,
    cell_volume: float,
) -> None:
    """Write one block of the combined grid (a task), as the stored quantity."""
    out = to_quantity(np.asarray(block, np.float64), quantity, scale, cell_volume)
    dest.write_block(index, out)
