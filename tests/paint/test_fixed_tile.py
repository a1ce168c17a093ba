"""``fixed_tile``: painting on a global grid of fixed tiles is bit for bit the same for every
chunking on that grid, torch thread count and worker count, for every painter family."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ChunkingError, ConfigError, FieldExistsError, ShapeError
from bigpaint.field import open_field
from bigpaint.paint import paint_field
from bigpaint.paint.workers import clear_painter_cache, fixed_tile_windows
from bigpaint.painters import load_checkpoint
from bigpaint.testing import assert_painted_close, axis_chunks

from .conftest import (
    CASES,
    input_field,
    make_checkpoint,
    make_field,
    paint_chunked,
    paint_input,
    whole_box,
)

#: family -> (fixed tile, margin: None for the full context, less for a U-Net's seam regime)
TILES = {
    "halo-painter": (4, None),
    "dm2gal": (2, None),
    "protohalo-unet": (2, 3),
    "ember": (4, 5),
    "cosmic-web-gan": (32, None),
}


@st.composite
def grid_layouts(draw: st.DrawFn, shape, tile: int, slab_axis=None):
    """Uneven chunk layouts whose blocks start and end on the ``tile`` grid (or the box end);
    any layout along the slab axis of a 2-D painter."""
    layout = []
    for axis, n in enumerate(shape):
        if axis == slab_axis:
            layout.append(draw(axis_chunks(n, 3)))
            continue
        units = draw(axis_chunks(-(-n // tile), 3))
        edges = np.minimum(np.cumsum([0, *units]) * tile, n)
        layout.append(tuple(int(b - a) for a, b in itertools.pairwise(edges)))
    return tuple(layout)


@pytest.mark.parametrize("family", list(CASES))
@settings(max_examples=2)
@given(data=st.data())
def test_fixed_tiles_are_bit_identical_across_layouts_and_threads(family_checkpoints, family, data):
    """Two drawn layouts on the grid, at 1 and 2 torch threads: the same bits. U-Nets at a
    margin below their context too (the seams follow the tiles, not the blocks); at the
    full context the result is whole-box inference up to rounding."""
    _, shape, slab = CASES[family]
    tile, margin = TILES[family]
    x = paint_input(family, data.draw(st.integers(0, 2**16), label="seed"))
    ck = family_checkpoints[family]
    outs = []
    for threads in (1, 2):
        layout = data.draw(grid_layouts(shape[-3:], tile, slab), label=f"layout at {threads}")
        torch.set_num_threads(threads)
        clear_painter_cache()
        outs.append(paint_chunked(ck, x, layout, margin=margin, slab_axis=slab, fixed_tile=tile))
    np.testing.assert_array_equal(outs[1], outs[0])
    if margin is None:
        painter, _ = load_checkpoint(ck)
        assert_painted_close(outs[0], whole_box(painter, x, slab), channel_axis=0)


@pytest.mark.parametrize("family", list(CASES))
def test_fixed_tiles_are_bit_identical_across_worker_counts(tmp_path, cluster, family):
    """``paint_field`` on local threads (2 torch threads) and on 2 single-threaded workers,
    with different chunks on the grid: the same bits."""
    update, _, slab = CASES[family]
    tile, margin = TILES[family]
    ck = make_checkpoint(
        tmp_path / "p.painter", family, depth=2 if slab is not None else None, **update
    )
    src, seen = input_field(tmp_path / "in.zarr", family)
    kw = {"margin": margin, "device": "cpu", "fixed_tile": tile}
    if slab is not None:
        kw["slab"] = {"axis": slab, "thickness": 2}
    plane = [n for a, n in enumerate(seen.shape[-3:]) if a != slab]
    torch.set_num_threads(2)
    paint_field(ck, src, str(tmp_path / "one.zarr"), chunks=max(plane), **kw)
    with cluster.as_current():
        paint_field(ck, src, str(tmp_path / "two.zarr"), chunks=tile, **kw)
    one, two = (open_field(str(tmp_path / f"{n}.zarr")) for n in ("one", "two"))
    np.testing.assert_array_equal(two["painted_test"].values, one["painted_test"].values)
    assert one.attrs["provenance"]["config"]["fixed_tile"] == tile


def test_fixed_tile_windows_follow_the_grid_not_the_block():
    """A piece's window is its whole tile's (the last tile ends at the box edge), so two
    blocks cutting the same tile paint it from the same window."""
    kw = {"tile": 4, "period": (10,), "mode": "valid", "margin": 2, "alignment": 1}
    assert fixed_tile_windows((0,), (10,), **kw) == [
        (((0, 4),), ((-2, 6),)),
        (((4, 8),), ((2, 10),)),
        (((8, 10),), ((6, 12),)),
    ]
    assert fixed_tile_windows((5,), (2,), **kw) == [(((5, 7),), ((2, 10),))]
    same = kw | {"mode": "same", "margin": 3, "alignment": 2}
    assert fixed_tile_windows((4,), (4,), **same) == [(((4, 8),), ((0, 12),))]


def test_fixed_tile_refusals(tmp_path, family_checkpoints):
    """One-line errors before any output: tiles off the U-Net's pooling grid, chunks off the
    tile grid, a tile whose window exceeds the memory budget; a block off the grid fails
    instead of painting from a wrong window; another tile is another job."""
    src = make_field(tmp_path / "in.zarr", (8, 8, 8), 8, box=32.0)
    unet, halo = family_checkpoints["protohalo-unet"], family_checkpoints["halo-painter"]
    with pytest.raises(ConfigError, match="multiple of protohalo-unet's alignment"):
        paint_field(unet, src, str(tmp_path / "a.zarr"), fixed_tile=3)
    with pytest.raises(ChunkingError, match="multiples of it, got chunks"):
        paint_field(halo, src, str(tmp_path / "b.zarr"), chunks=6, fixed_tile=4)
    # 2 MiB holds the smallest sub-tile's window (12^3 voxels), not an 8-voxel tile's (16^3)
    with pytest.raises(ConfigError, match="fixed_tile 8 gives 16x16x16-voxel windows"):
        paint_field(halo, src, str(tmp_path / "c.zarr"), fixed_tile=8, memory_budget="2MiB")
    x = np.zeros((8, 8, 8), "f4")
    with pytest.raises(ShapeError, match="on the tile grid"):
        paint_chunked(halo, x, ((3, 5), (8,), (8,)), fixed_tile=4)
    paint_field(halo, src, str(tmp_path / "d.zarr"), chunks=4, fixed_tile=4)
    with pytest.raises(FieldExistsError, match="different job"):
        paint_field(halo, src, str(tmp_path / "d.zarr"), chunks=4)
