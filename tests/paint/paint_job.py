"""A paint job run as a subprocess by test_faults.py (killed mid-way, then run again).

Usage: python paint_job.py CHECKPOINT INPUT OUTPUT
"""

from __future__ import annotations

import sys

import torch

from bigpaint.paint import paint_field

if __name__ == "__main__":
    torch.set_num_threads(1)
    paint_field(sys.argv[1], sys.argv[2], sys.argv[3], chunks=4, device="cpu")
