"""A blockwise job run as a subprocess by test_resume.py (killed mid-way, then re-run).

Usage: python resume_job.py INPUT OUTPUT LOG DELAY
Each block appends its index to LOG when it starts computing, then sleeps DELAY seconds.
"""

from __future__ import annotations

import functools
import sys
import time

import scipy.ndimage as ndi

from bigpaint.chunked.apply import apply_blockwise
from bigpaint.context import gaussian_context
from bigpaint.field import create_field, field_meta, job_token, open_field, zarr_array

SIGMA = (1.2, 1.2, 1.2)


def slow_smooth(window, block_info, *, log: str, delay: float):
    with open(log, "a") as fh:
        fh.write(",".join(map(str, block_info.index)) + "\n")
    time.sleep(delay)
    return ndi.gaussian_filter(window, SIGMA, mode="wrap")


def main(inp: str, out: str, log: str, delay: float) -> None:
    src = open_field(inp)
    arr = zarr_array(src)
    dest = create_field(
        out,
        shape=arr.shape,
        chunks=4,
        meta=field_meta(src),
        job=job_token(op="resume-test", inp=inp),
    )
    func = functools.partial(slow_smooth, log=log, delay=delay)
    apply_blockwise(func, src, dest, gaussian_context(SIGMA))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
