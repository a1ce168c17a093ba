"""An ``lpt_density`` run as a subprocess by test_lpt_resume.py (killed mid-way, then re-run).

Usage: python lpt_resume_job.py OUTPUT LOG DELAY

Each particle cube and each density block appends ``p <id>`` / ``d <i,j,k>`` to LOG when it
is computed, then sleeps DELAY seconds, so the test can kill the run inside either stage.
"""

from __future__ import annotations

import sys
import time

import dask

import bigpaint.ics.lpt as lpt
import bigpaint.mesh.deposit.blocks as deposit
from bigpaint.ics.power import linear_power

KW = {"grid": 16, "box_size": 64.0, "seed": 5, "tile": 8, "chunks": 4, "block": 4}


def main(out: str, log: str, delay: float) -> None:
    write_cube, deposit_block = lpt.write_particle_block, deposit.deposit_block

    def slow_cube(*arrays, store, todo, block_info=None):
        idx = tuple(int(i) for i in block_info[0]["chunk-location"])
        if store.block_id(idx) in todo:
            with open(log, "a") as fh:
                fh.write(f"p {store.block_id(idx)}\n")
            time.sleep(delay)
        return write_cube(*arrays, store=store, todo=todo, block_info=block_info)

    def slow_block(index, items, **kw):
        with open(log, "a") as fh:
            fh.write("d " + ",".join(map(str, index)) + "\n")
        time.sleep(delay)
        return deposit_block(index, items, **kw)

    lpt.write_particle_block = slow_cube
    deposit.deposit_block = slow_block
    with dask.config.set(scheduler="threads", num_workers=1):
        lpt.lpt_density(out, power=linear_power(), **KW)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
