"""The periodic flood against scikit-image's watershed and against itself under rolls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.segmentation import watershed

from bigpaint.segment.markers import find_markers, marker_image
from bigpaint.segment.watershed import (
    flood,
    flood_ranks,
    global_index,
    index_order,
    watershed_periodic,
)
from bigpaint.testing import assert_equivalent_labels

from .reference import blobs, count_lifts


@given(
    seed=st.integers(0, 2**16),
    shape=st.tuples(st.integers(1, 10), st.integers(1, 10), st.integers(1, 10)),
    fill=st.floats(0.3, 1.0),
    n_markers=st.integers(1, 8),
    connectivity=st.sampled_from([1, 2, 3]),
    quantize=st.booleans(),
)
@settings(max_examples=80)
def test_flood_equals_skimage_watershed(seed, shape, fill, n_markers, connectivity, quantize):
    """Non-periodic: bigpaint's Numba flood returns exactly scikit-image's labels when the
    values are distinct (ranks), ties in the original values included."""
    rng = np.random.default_rng(seed)
    d = rng.random(shape)
    if quantize:
        d = np.round(d * 4) / 4  # heavy ties, broken by the ranks
    mask = rng.random(shape) < fill
    markers = np.zeros(shape, np.int64)
    pos = rng.integers(0, d.size, n_markers)
    markers.ravel()[pos] = rng.integers(1, 2**40, n_markers)
    ranks = flood_ranks(d, mask)
    got = flood(ranks, markers, mask, connectivity=connectivity, periodic=(False,) * 3)
    ref = watershed(ranks, markers, mask=mask, connectivity=connectivity)
    np.testing.assert_array_equal(got, ref)


def test_flood_ranks_order_ties_by_global_index():
    d = np.array([[[1.0, 2.0, 2.0, 1.0]]])
    mask = np.ones(d.shape, bool)
    np.testing.assert_array_equal(flood_ranks(d, mask)[0, 0], [2, 0, 1, 3])
    # a window starting at z=2 of a box of 4: its first voxels come after in index order
    g = global_index((0, 0, 2), (1, 1, 4), (1, 1, 4))
    np.testing.assert_array_equal(g[0, 0], [2, 3, 0, 1])
    np.testing.assert_array_equal(flood_ranks(d, mask, g)[0, 0], [3, 1, 0, 2])


@pytest.mark.parametrize("connectivity", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_periodic_watershed_equals_skimage_on_the_tiled_box(seed, connectivity):
    """The periodic reference is scikit-image's watershed of -distance on the 3x3x3 tiling
    of the box (markers tiled too), read on the middle copy: valid when no component winds
    around the box, and on tie-free maps (jittered) where the flooding order is the values'."""
    _, d = blobs(shape=(16, 16, 16), n=10, seed=seed, jitter=True, radius=(1.5, 3.5))
    mask = d > 0
    assert count_lifts(mask, connectivity)
    markers = marker_image(d.shape, find_markers(d, min_distance=2))
    got = watershed_periodic(d, markers, connectivity=connectivity)
    tiled = watershed(
        -np.tile(d, (3, 3, 3)).astype(np.float64),
        np.tile(markers, (3, 3, 3)),
        mask=np.tile(mask, (3, 3, 3)),
        connectivity=connectivity,
    )
    n = d.shape[0]
    np.testing.assert_array_equal(got, tiled[n : 2 * n, n : 2 * n, n : 2 * n])
    assert got[mask].all()


@given(shift=st.tuples(st.integers(0, 23), st.integers(0, 23), st.integers(0, 23)))
@settings(max_examples=10)
def test_periodic_watershed_rolls_with_the_box(shift):
    """Translation across the wrap moves the segmentation with it, also for a component that
    winds around the box (the tube) and one larger than half the box (tie-free map)."""
    _, d = blobs(shape=(24, 24, 24), n=20, seed=5, big=7.0, tube=2.5, jitter=True)
    markers = marker_image(d.shape, find_markers(d, min_distance=2))
    ref = watershed_periodic(d, markers)
    rolled = np.roll(d, shift, axis=(0, 1, 2))
    rm = marker_image(d.shape, find_markers(rolled, min_distance=2))
    got = watershed_periodic(rolled, rm)
    assert_equivalent_labels(got, np.roll(ref, shift, axis=(0, 1, 2)))
    assert not count_lifts(d > 0, 1)  # the fixture does wind


@given(
    seed=st.integers(0, 2**16),
    origin=st.tuples(st.integers(-9, 9), st.integers(-9, 9), st.integers(-9, 9)),
)
@settings(max_examples=40)
def test_fast_float32_ranks_equal_the_lexsort_ranks(seed, origin):
    """The 64-bit key sort (float32 maps) and the general lexsort give the same ranks, for
    window orders across the wrap, with ties, signed values and -0.0."""
    rng = np.random.default_rng(seed)
    d = (np.round(rng.standard_normal((5, 6, 7)) * 3) / 3).astype(np.float32)
    d[0, 0, :3] = [-0.0, 0.0, -0.0]
    mask = rng.random(d.shape) < 0.8
    box = (8, 6, 11)
    fast = flood_ranks(d, mask, index_order(origin, d.shape, box))
    slow = flood_ranks(d.astype(np.float64), mask, global_index(origin, d.shape, box))
    np.testing.assert_array_equal(fast, slow)
