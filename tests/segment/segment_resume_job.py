"""``bigpaint segment`` run as a subprocess by test_segment_resume.py (killed, then re-run).

Usage: python segment_resume_job.py DIST OUT.parquet LABELS CLUSTER.yaml LOG DELAY [OPTION...]

Each pass-1 block and each flood block appends ``b <i,j,k>`` / ``f <i,j,k>`` to LOG when it
starts, then sleeps DELAY seconds. The cluster file asks for an in-process (threads) worker,
so the patched functions are the ones that run. Further arguments go to ``bigpaint segment``.
"""

from __future__ import annotations

import sys
import time

from bigpaint.cli import cli
from bigpaint.segment.engine import blocks, flood


def _logged(fn, tag: str, log: str, delay: float):
    def run(index, *args, **kw):
        with open(log, "a") as fh:
            fh.write(f"{tag} " + ",".join(map(str, index)) + "\n")
        time.sleep(delay)
        return fn(index, *args, **kw)

    return run


def main(
    dist: str, out: str, labels: str, cluster: str, log: str, delay: float, *extra: str
) -> None:
    blocks.pass_block = _logged(blocks.pass_block, "b", log, delay)
    flood.flood_block = _logged(flood.flood_block, "f", log, delay)
    cli.main(
        [
            "segment",
            dist,
            out,
            "--labels",
            labels,
            "--cluster",
            cluster,
            "--trajectories",
            "5",
            *extra,
        ],
        standalone_mode=True,
    )


if __name__ == "__main__":
    main(*sys.argv[1:6], float(sys.argv[6]), *sys.argv[7:])
