"""The one chunk policy: BlockGrid normalises a layout, refuses what does not fit, and its
blocks tile the grid exactly; every chunked stage takes its blocks from it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from dask.array.core import normalize_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.blockwise import BlockPlan
from bigpaint.chunked.grid import BlockGrid
from bigpaint.errors import ChunkingError, ShapeError
from bigpaint.field import create_field
from bigpaint.mesh.deposit import DepositPlan
from bigpaint.mesh.fft import irfftn
from bigpaint.testing import axis_chunks

META = {"box_size": 10.0, "kind": "delta", "units": "1"}


@st.composite
def layouts(draw: st.DrawFn) -> tuple[tuple[int, ...], object]:
    """A shape of 1 to 3 axes and a layout for it: one int, or per axis an int or sizes."""
    shape = draw(st.lists(st.integers(1, 23), min_size=1, max_size=3).map(tuple))
    if draw(st.booleans()):
        return shape, draw(st.integers(1, min(shape)))
    per_axis = [draw(st.one_of(st.integers(1, n), axis_chunks(n, max_parts=5))) for n in shape]
    return shape, tuple(per_axis)


@settings(max_examples=200, deadline=None)
@given(layouts())
def test_blocks_tile_the_grid_exactly(layout):
    shape, chunks = layout
    grid = BlockGrid(shape, chunks)
    assert grid.chunks == normalize_chunks(chunks, shape)  # dask's reading of a valid layout
    cover = np.zeros(shape, np.int64)
    ids = []
    for index in grid.blocks():
        core = grid.core(index)
        assert tuple(s.start for s in core) == grid.origin(index)
        assert tuple(s.stop - s.start for s in core) == grid.block_shape(index)
        assert all(s.stop - s.start >= 1 for s in core)
        cover[core] += 1
        ids.append(grid.block_id(index))
        assert grid.block_index(ids[-1]) == index
        for axis, s in enumerate(core):
            assert set(grid.block_of(axis)[s]) == {index[axis]}
    np.testing.assert_array_equal(cover, 1)  # every voxel in exactly one block
    assert ids == list(range(grid.n_blocks))  # C order, numbered from 0
    assert grid.n_blocks == int(np.prod(grid.grid))


def test_layouts_normalise_to_block_sizes_per_axis():
    assert BlockGrid((10, 8, 4), 4).chunks == ((4, 4, 2), (4, 4), (4,))
    assert BlockGrid((10, 8, 3), (5, 8, 1)).chunks == ((5, 5), (8,), (1, 1, 1))
    assert BlockGrid((10, 8, 3), ((3, 7), 3, (2, 1))).chunks == ((3, 7), (3, 3, 2), (2, 1))
    assert BlockGrid([np.int64(6)], np.int32(4)).chunks == ((4, 2),)
    assert BlockGrid((10, 8, 4), 4).regular
    assert not BlockGrid((10, 8, 3), ((3, 7), 8, 3)).regular
    assert BlockGrid((6, 6, 6), 6).n_blocks == 1


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (96, r"^chunk 96 along axis 0 is larger than the grid of 64 voxels; give chunks <= 64$"),
        (
            (64, 65, 8),
            r"^chunk 65 along axis 1 is larger than the grid of 64 voxels; give chunks <= 64$",
        ),
        (0, r"chunks must be positive, got 0; give sizes >= 1"),
        ((8, -1, 8), r"chunks must be positive"),
        (((32, 0, 32), 8, 8), r"chunks must be positive"),
        (
            ((32, 31), 8, 8),
            r"chunks \(32, 31\) along axis 0 sum to 63 voxels, the grid has 64; give sizes that sum to 64",
        ),
        (
            (8, 8),
            r"chunks \(8, 8\) give 2 axes, the grid \(64, 64, 64\) has 3; give one size, or one entry per axis",
        ),
        (8.0, r"chunks must be whole numbers of voxels, got 8.0"),
        ((8, 8.5, 8), r"whole numbers of voxels"),
        (True, r"whole numbers of voxels"),
        ("auto", r"whole numbers of voxels"),
        (None, r"whole numbers of voxels"),
        (((), 8, 8), r"chunks along axis 0 must be whole numbers of voxels"),
    ],
)
def test_a_layout_that_does_not_fit_is_refused_in_one_line(chunks, message):
    with pytest.raises(ChunkingError, match=message) as err:
        BlockGrid((64, 64, 64), chunks)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("shape", [(), (4, 0, 4), (4, -2), (4.0, 4)])
def test_a_grid_needs_positive_whole_sizes(shape):
    with pytest.raises(ShapeError, match="positive whole sizes"):
        BlockGrid(shape, 1)


def test_indices_outside_the_grid_are_not_blocks():
    grid = BlockGrid((8, 8, 8), 4)
    for bad in ((2, 0, 0), (-1, 0, 0), (0, 0)):
        with pytest.raises(IndexError, match="not a block"):
            grid.core(bad)
    with pytest.raises(IndexError, match="not in a grid of 8 blocks"):
        grid.block_index(8)


def test_equal_layouts_are_equal_and_survive_pickling():
    a = BlockGrid((10, 8, 3), (4, 4, 3))
    assert a == BlockGrid((10, 8, 3), ((4, 4, 2), (4, 4), 3))
    assert a != BlockGrid((10, 8, 3), (5, 4, 3))
    assert hash(a) == hash(BlockGrid((10, 8, 3), ((4, 4, 2), 4, (3,))))
    b = pickle.loads(pickle.dumps(a))
    assert b == a and b.core((2, 1, 0)) == a.core((2, 1, 0))
    assert "_starts" not in repr(a)


def test_every_chunked_stage_refuses_a_chunk_larger_than_the_grid(tmp_path):
    """Blockwise plans, deposit plans, Field writers and the inverse FFT all take their
    blocks from BlockGrid: one policy, one message, nothing written."""
    message = r"^chunk 12 along axis 0 is larger than the grid of 8 voxels; give chunks <= 8$"
    with pytest.raises(ChunkingError, match=message):
        BlockPlan.build((8, 8, 8), 12, 1)
    with pytest.raises(ChunkingError, match=message):
        DepositPlan(8, 12, 100.0)
    with pytest.raises(ChunkingError, match=message):
        create_field(str(tmp_path / "f.zarr"), shape=(2, 8, 8, 8), chunks=12, meta=META)
    with pytest.raises(ChunkingError, match=message):
        irfftn(np.zeros((8, 8, 5), complex), (8, 8, 8), chunks=12)
    assert list(tmp_path.iterdir()) == []


def test_the_default_block_fits_the_grid_and_a_given_layout_is_kept():
    from bigpaint.chunked.grid import DEFAULT_BLOCK, default_chunks

    assert default_chunks(None, (512, 512, 512)) == DEFAULT_BLOCK
    assert default_chunks(None, (64, 256, 32)) == (64, 128, 32)
    assert BlockGrid((64, 256, 32), default_chunks(None, (64, 256, 32))).grid == (1, 2, 1)
    assert default_chunks(96, (64, 64, 64)) == 96  # the user's, refused by BlockGrid
