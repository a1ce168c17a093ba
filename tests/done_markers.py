"""Reading a Field's block-completion markers while another process or thread writes it.

The tests that kill a job mid-run poll the markers to choose their moment. The marker
folder appears before its metadata is written, so a poll can find the store half made:
that reads as no block done yet, and the next poll looks again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr


def done_so_far(out: Path) -> np.ndarray:
    """The completion markers of the Field at ``out`` (bool, over its block grid); empty while
    they are still being created."""
    if not (out / "_bigpaint" / "done" / "zarr.json").exists():
        return np.zeros(0, bool)
    try:
        marks = zarr.open_array(str(out), path="_bigpaint/done", mode="r")[...]
    except (zarr.errors.ArrayNotFoundError, ValueError):  # metadata half written
        return np.zeros(0, bool)
    return np.asarray(marks).astype(bool)
