"""Merging watershed basins by dynamics: saddles, the merge rule, the chunked engine."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.morphology import h_maxima

from bigpaint.errors import ConfigError
from bigpaint.field import create_field, open_field, write_array
from bigpaint.segment.dynamics import basin_saddles, merge_basins_periodic, merge_by_dynamics
from bigpaint.segment.engine import SegmentParams, segment
from bigpaint.segment.engine.reduce import rename_block
from bigpaint.segment.markers import find_markers, marker_image
from bigpaint.segment.watershed import watershed_periodic
from bigpaint.testing import chunk_layouts, regular_chunks

from .reference import blobs, count_lifts, saddles_brute

SHAPE = (24, 24, 24)
DMETA = {"box_size": 48.0, "kind": "distance", "units": "1", "redshift": 0.0}
FIXTURES = [
    dict(n=25, seed=1, big=7.0, tube=2.5),  # ties, a big object, a winding tube
    dict(n=30, seed=2, big=9.0, jitter=True),  # tie-free, object > chunk
    dict(n=40, seed=3, radius=(1.0, 3.0)),  # many small touching objects
]


def _basins(d, connectivity=1, min_distance=1):
    markers = marker_image(d.shape, find_markers(d, min_distance=min_distance))
    return watershed_periodic(d, markers, connectivity=connectivity)


@pytest.mark.parametrize("connectivity", [1, 2, 3])
@pytest.mark.parametrize("periodic", [(True, True, True), (False, True, False)])
def test_saddles_equal_brute_force(connectivity, periodic):
    rng = np.random.default_rng(connectivity)
    labels = rng.integers(0, 5, (7, 6, 5))
    labels[rng.random(labels.shape) < 0.3] = 0
    d = rng.random(labels.shape).astype(np.float32)
    a, b, s = basin_saddles(labels, d, connectivity, periodic)
    expect = saddles_brute(labels, d, connectivity, periodic)
    pairs = list(zip(a.tolist(), b.tolist(), strict=True))
    assert pairs == sorted(expect)
    assert dict(zip(pairs, s.tolist(), strict=True)) == pytest.approx(expect)


def test_two_peaks_merge_exactly_when_the_lower_rises_less_than_h():
    """Along a line: peaks 1.0 and 0.8 joined through a saddle of 0.5 (dynamics 0.3)."""
    d = np.zeros((3, 3, 9))
    d[1, 1, 1:8] = [0.6, 1.0, 0.7, 0.5, 0.6, 0.8, 0.4]
    labels = _basins(d)
    assert len(np.unique(labels)) == 3
    one = merge_basins_periodic(labels, d, 0.31)
    assert set(np.unique(one)) == {0, np.ravel_multi_index((1, 1, 2), d.shape) + 1}
    np.testing.assert_array_equal(merge_basins_periodic(labels, d, 0.3), labels)
    np.testing.assert_array_equal(merge_basins_periodic(labels, d, 0.0), labels)


def test_merge_ignores_edge_order_and_duplicates():
    _, d = blobs(shape=SHAPE, **FIXTURES[0])
    labels = _basins(d, 2)
    ids = np.unique(labels[labels > 0])
    peaks = ndi.maximum(d, labels, ids)
    a, b, s = basin_saddles(labels, d, 2, (True,) * 3)
    want = merge_by_dynamics(ids, peaks, a, b, s, 0.4)
    assert 0 < np.count_nonzero(want != ids) < ids.size
    rng = np.random.default_rng(0)
    k = rng.permutation(2 * a.size) % a.size  # every edge twice, once with a lower saddle
    low = np.where(np.arange(k.size) < a.size, s[k], s[k] - 0.1)
    got = merge_by_dynamics(ids, peaks, b[k], a[k], low, 0.4)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("h", [0.2, 0.5, 0.8])
def test_merged_regions_keep_the_dynamics_invariant(fixture, h):
    """Adjacent final regions differ by at least h (lower peak above their saddle); every
    region is one connected piece holding the highest distance of its basins."""
    _, d = blobs(shape=SHAPE, **fixture)
    basins = _basins(d, 1, 2)
    merged = merge_basins_periodic(basins, d, h)
    ids = np.unique(merged[merged > 0])
    peaks = dict(zip(ids.tolist(), ndi.maximum(d, merged, ids), strict=True))
    a, b, s = basin_saddles(merged, d, 1, (True,) * 3)
    for x, y, saddle in zip(a.tolist(), b.tolist(), s.tolist(), strict=True):
        assert min(peaks[x], peaks[y]) - saddle >= h
    for rid in ids:  # the region's label is the marker of its highest basin
        assert d.ravel()[rid - 1] == peaks[rid]
    assert (merged > 0).sum() == (basins > 0).sum()


@pytest.mark.parametrize("h", [0.05, 0.3, 0.6])
def test_regions_are_the_basins_of_scikit_image_h_maxima(h):
    """On a tie-free map whose objects do not wind around the box, seeded at every local
    maximum: each merged region holds exactly one connected h-maximum of scikit-image's
    ``h_maxima`` (on the 3x3x3 tiling, middle copy), and every h-maximum lies in one region."""
    _, d = blobs(shape=SHAPE, n=14, seed=0, big=6.0, jitter=True, radius=(1.5, 3.5))
    d = d.astype(np.float64)
    assert count_lifts(d > 0, 3)
    basins = _basins(d, 3)
    merged = merge_basins_periodic(basins, d, h, connectivity=3)
    n = SHAPE[0]
    hmax = h_maxima(np.tile(d, (3, 3, 3)), h, footprint=np.ones((3, 3, 3)))
    middle = ndi.label(hmax, np.ones((3, 3, 3)))[0][n : 2 * n, n : 2 * n, n : 2 * n]
    pairs = {(int(m), int(r)) for m, r in zip(middle[middle > 0], merged[middle > 0], strict=True)}
    regions = [r for _, r in pairs]
    assert len(pairs) == len({m for m, _ in pairs})  # each h-maximum inside one region
    assert sorted(regions) == sorted(set(regions)) == sorted(np.unique(merged[merged > 0]))
    assert (len(regions) < len(np.unique(basins)) - 1) == (h > 0.1)  # objects with two tops


@given(
    chunks=chunk_layouts(SHAPE),
    fixture=st.sampled_from(FIXTURES),
    connectivity=st.sampled_from([1, 2, 3]),
    min_distance=st.integers(1, 2),
    h=st.sampled_from([0.1, 0.4, 0.8]),
)
@settings(max_examples=25)
def test_chunked_merge_equals_whole_box(chunks, fixture, connectivity, min_distance, h):
    """Labels and region table of any chunk layout equal the whole-box watershed merged by
    :func:`merge_basins_periodic` (objects cross seams, corners and the wrap)."""
    _, d = blobs(shape=SHAPE, **fixture)
    params = SegmentParams(min_distance=min_distance, connectivity=connectivity, h=h)
    labels = np.zeros(SHAPE, np.int64)
    res = segment(d, params, chunks=chunks, labels=labels)
    basins = watershed_periodic(
        d,
        marker_image(SHAPE, find_markers(d, min_distance=min_distance)),
        connectivity=connectivity,
    )
    ref = merge_basins_periodic(basins, d, h, connectivity=connectivity)
    np.testing.assert_array_equal(labels, ref)
    ids, vol = np.unique(ref[ref > 0], return_counts=True)
    np.testing.assert_array_equal(res.id, ids)
    np.testing.assert_array_equal(res.volume, vol)
    assert res.stats["merged_basins"] == len(np.unique(basins)) - len(np.unique(ref))


@given(chunks=regular_chunks(SHAPE, min_size=5))
@settings(max_examples=3)
def test_field_run_renames_written_labels(tmp_path_factory, chunks):
    """Labels written as a Field carry the merged names; renaming a block again (a resumed
    run) changes nothing."""
    tmp = tmp_path_factory.mktemp("dyn")
    _, d = blobs(shape=SHAPE, **FIXTURES[0])
    url = str(tmp / "dist.zarr")
    write_array(url, d, chunks=chunks, meta=DMETA)
    meta = {**DMETA, "kind": "labels"}
    writer = create_field(str(tmp / "l.zarr"), shape=SHAPE, chunks=chunks, meta=meta, dtype="i8")
    params = SegmentParams(min_distance=1, h=0.5)
    res = segment(open_field(url), params, labels=writer, workdir=str(tmp))
    assert res.stats["merged_basins"] > 0
    ref = merge_basins_periodic(_basins(d), d, 0.5)
    np.testing.assert_array_equal(open_field(writer.url)["labels"].values, ref)
    basins = _basins(d)
    renamed = np.unique(basins[basins != ref])
    into = np.array([ref[basins == r][0] for r in renamed])
    for b in writer.blocks():
        rename_block(b, plan=_plan(SHAPE, writer), dest=writer, renamed=renamed, into=into)
    np.testing.assert_array_equal(open_field(writer.url)["labels"].values, ref)


def _plan(shape, writer):
    from bigpaint.blockwise import BlockPlan

    return BlockPlan.build(shape, writer.block_chunks, (0, 0, 0))


@pytest.mark.parametrize("h", [-0.1, float("nan"), float("inf")])
def test_bad_merge_height_is_refused(h):
    with pytest.raises(ConfigError, match=r"h \(the dynamics.*finite distance >= 0"):
        segment(np.zeros(SHAPE, np.float32), SegmentParams(h=h))
