"""Reading dask's block_info: the locations equal the blocks dask cuts, for input and output."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from bigpaint.chunked.block_info import array_location, chunk_location


def test_locations_are_the_blocks_dask_cuts():
    x = da.zeros((7, 5, 6), chunks=(3, 5, 4))
    seen = {}

    def record(block: np.ndarray, block_info=None) -> np.ndarray:
        idx = chunk_location(block_info)
        assert chunk_location(block_info, None) == idx
        seen[idx] = (array_location(block_info), array_location(block_info, None))
        return block

    x.map_blocks(record, dtype=x.dtype).compute(scheduler="sync")
    starts = [np.cumsum((0, *c)) for c in x.chunks]
    assert len(seen) == 3 * 1 * 2
    for idx, (loc_in, loc_out) in seen.items():
        want = [(int(s[i]), int(s[i + 1])) for s, i in zip(starts, idx, strict=True)]
        assert loc_in == want and loc_out == want


def test_a_call_without_block_info_is_refused():
    with pytest.raises(TypeError, match="called without dask's block_info"):
        array_location(None)
