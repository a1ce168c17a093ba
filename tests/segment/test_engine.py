"""The chunked watershed against whole-box references, for drawn chunk layouts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.segmentation import watershed

from bigpaint.errors import ChunkingError, ConfigError, NonFiniteError
from bigpaint.field import create_field, open_field, write_array
from bigpaint.segment.engine import SegmentParams, segment
from bigpaint.segment.errors import NotADistanceMapError
from bigpaint.segment.markers import find_markers, marker_image
from bigpaint.segment.watershed import watershed_periodic
from bigpaint.testing import assert_equivalent_labels, chunk_layouts, regular_chunks

from .reference import blobs, count_lifts, periodic_components

SHAPE = (24, 24, 24)
DMETA = {"box_size": 48.0, "kind": "distance", "units": "1", "redshift": 0.0}


def _run(d, params, chunks):
    labels = np.zeros(d.shape, np.int64)
    comps = np.zeros(d.shape, np.int64)
    res = segment(d, params, chunks=chunks, labels=labels, components=comps)
    return res, labels, comps


@given(
    chunks=chunk_layouts(SHAPE),
    fixture=st.sampled_from(
        [
            dict(n=25, seed=1, big=7.0, tube=2.5),  # ties, a big object, a winding tube
            dict(n=30, seed=2, big=9.0, jitter=True),  # tie-free, object > chunk
            dict(n=40, seed=3, radius=(1.0, 3.0)),  # many small touching objects
        ]
    ),
    connectivity=st.sampled_from([1, 2, 3]),
    min_distance=st.integers(1, 3),
    sigma=st.sampled_from([0.0, 0.8]),
    dtype=st.sampled_from(["f4", "f8"]),
    marker_threshold=st.sampled_from([None, 0.999]),  # 0.999: plateau markers (peaks of 1)
)
@settings(max_examples=30)
def test_chunked_equals_whole_box(
    chunks, fixture, connectivity, min_distance, sigma, dtype, marker_threshold
):
    """Markers, components and watershed labels of any chunk layout equal the whole-box
    references: brute-force markers, scipy-graph periodic components (up to renaming) and
    the periodic watershed (identical labels: both are named by marker voxel)."""
    _, d = blobs(shape=SHAPE, **fixture)
    d = d.astype(dtype)
    params = SegmentParams(
        min_distance=min_distance,
        connectivity=connectivity,
        sigma=sigma,
        marker_threshold=marker_threshold,
    )
    res, labels, comps = _run(d, params, chunks)
    markers = find_markers(
        d, min_distance=min_distance, sigma=sigma, marker_threshold=marker_threshold
    )
    np.testing.assert_array_equal(np.sort(res.id - 1), markers)
    assert_equivalent_labels(comps, periodic_components(d > 0, connectivity))
    ref = watershed_periodic(d, marker_image(d.shape, markers), connectivity=connectivity)
    np.testing.assert_array_equal(labels, ref)


@given(chunks=chunk_layouts(SHAPE), seed=st.sampled_from([0, 1, 2, 3]))
@settings(max_examples=15)
def test_chunked_equals_skimage_watershed_of_the_tiled_box(chunks, seed):
    """Against scikit-image itself: its watershed of -distance on the 3x3x3 tiling, middle
    copy (tie-free maps whose components do not wind; one object is larger than a chunk and
    crosses the wrap)."""
    _, d = blobs(shape=SHAPE, n=14, seed=seed, big=6.0, jitter=True, radius=(1.5, 3.5))
    mask = d > 0
    assert count_lifts(mask, 1)
    res, labels, _ = _run(d, SegmentParams(min_distance=2), chunks)
    markers = marker_image(d.shape, find_markers(d, min_distance=2))
    tiled = watershed(
        -np.tile(d, (3, 3, 3)), np.tile(markers, (3, 3, 3)), mask=np.tile(mask, (3, 3, 3))
    )
    n = SHAPE[0]
    assert_equivalent_labels(labels, tiled[n : 2 * n, n : 2 * n, n : 2 * n])
    assert res.stats["spanning_components"] >= 1 or all(len(c) == 1 for c in chunks)


@pytest.mark.parametrize("h", [0.0, 0.5])
def test_region_sums_equal_brute_force(h):
    """Region table against the written labels (with h: regions merged by dynamics, whose
    sums and centres add their basins')."""
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    thresholds = tuple(np.linspace(0.0, 0.9, 10))
    params = SegmentParams(min_distance=1, trajectory_thresholds=thresholds, h=h)
    res, labels, _ = _run(d, params, (7, 11, 9))
    assert res.stats["unassigned_voxels"] == 0
    assert (res.stats["merged_basins"] > 0) == (h > 0)
    n = np.array(SHAPE)
    for i, rid in enumerate(res.id):
        sel = labels == rid
        pos = np.argwhere(sel)
        mk = np.array(np.unravel_index(rid - 1, SHAPE))
        rel = (pos - mk + n // 2) % n - n // 2
        centre = (mk + rel.mean(0) + 0.5) % n
        if h == 0 or np.abs(rel).max() < n[0] // 4:  # a merged region's offsets are taken
            # around each basin's marker: the same while the region spans < half the box
            np.testing.assert_allclose(res.centre[i], centre, atol=1e-9)
        np.testing.assert_array_equal(res.marker[i], mk)
        assert res.volume[i] == sel.sum()
        assert res.peak_distance[i] == d[sel].max()
        np.testing.assert_allclose(res.mean_distance[i], d[sel].mean(), rtol=1e-6)
        for j, t in enumerate(thresholds):
            assert res.trajectory_volume[i, j] == np.count_nonzero(d[sel] > t)
            np.testing.assert_allclose(
                res.trajectory_sum[i, j], d[sel][d[sel] > t].sum(), rtol=1e-6
            )
    assert res.volume.sum() == np.count_nonzero(d > 0)


@given(chunks=regular_chunks(SHAPE, min_size=5))
@settings(max_examples=4)
def test_field_run_equals_in_memory(tmp_path_factory, chunks):
    """Zarr Field in, labels Field out, face arrays in a scratch directory (threads)."""
    tmp = tmp_path_factory.mktemp("seg")
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    url = str(tmp / "dist.zarr")
    write_array(url, d, chunks=chunks, meta=DMETA)
    writer = create_field(
        str(tmp / "labels.zarr"),
        shape=SHAPE,
        chunks=chunks,
        meta={**DMETA, "kind": "labels"},
        dtype="i8",
    )
    params = SegmentParams(min_distance=2)
    res = segment(open_field(url), params, labels=writer, workdir=str(tmp))
    _, labels, _ = _run(d, params, chunks)
    np.testing.assert_array_equal(open_field(writer.url)["labels"].values, labels)
    assert len(res) == len(np.unique(labels)) - 1
    assert [p.name for p in tmp.iterdir()] and not any(
        p.name.startswith("bigpaint-segment") for p in tmp.iterdir()
    )


def test_distributed_run_equals_in_memory(tmp_path):
    from distributed import Client, LocalCluster

    _, d = blobs(shape=SHAPE, n=30, seed=2, big=9.0, jitter=True)
    url = str(tmp_path / "dist.zarr")
    write_array(url, d, chunks=(10, 12, 8), meta=DMETA)
    params = SegmentParams(min_distance=2, trajectory_thresholds=(0.2, 0.5))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as c, Client(c):
        res = segment(open_field(url), params, workdir=str(tmp_path))
    ref, _, _ = _run(d, params, (10, 12, 8))
    np.testing.assert_array_equal(res.id, ref.id)
    np.testing.assert_array_equal(res.volume, ref.volume)
    np.testing.assert_array_equal(res.trajectory_volume, ref.trajectory_volume)


def test_no_objects_gives_an_empty_result():
    res, labels, comps = _run(np.zeros(SHAPE, np.float32), SegmentParams(), (10, 10, 10))
    assert len(res) == 0 and not labels.any() and not comps.any()
    assert res.volume.shape == (0,) and res.centre.shape == (0, 3)


def test_foreground_without_markers_stays_unassigned():
    _, d = blobs(shape=SHAPE, n=25, seed=1)
    res, labels, _ = _run(d, SegmentParams(marker_threshold=1.5), 12)
    assert len(res) == 0 and not labels.any()
    assert res.stats["unassigned_voxels"] == np.count_nonzero(d > 0)


def test_negative_values_are_refused(tmp_path):
    d = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    d[3, 17, 5] = -0.25
    with pytest.raises(NotADistanceMapError, match=r"not a distance map.*\(3, 17, 5\)"):
        segment(d, chunks=8)
    url = str(tmp_path / "delta.zarr")
    write_array(url, d, chunks=8, meta={**DMETA, "kind": "delta"})
    with pytest.raises(NotADistanceMapError, match="kind 'delta'"):
        segment(open_field(url))
    d[3, 17, 5] = np.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        segment(d, chunks=8)


def test_bad_parameters_and_destinations(tmp_path):
    d = np.zeros(SHAPE, np.float32)
    with pytest.raises(ConfigError, match="connectivity"):
        segment(d, SegmentParams(connectivity=0))
    with pytest.raises(ConfigError, match="strictly increasing"):
        segment(d, SegmentParams(trajectory_thresholds=(0.5, 0.2)))
    url = str(tmp_path / "d.zarr")
    write_array(url, d, chunks=12, meta=DMETA)
    writer = create_field(str(tmp_path / "l.zarr"), shape=SHAPE, chunks=8, meta=DMETA, dtype="i8")
    with pytest.raises(ChunkingError, match="differ"):
        segment(open_field(url), labels=writer)


@pytest.mark.parametrize(
    "chunks", [(12, 12, 12), (12, 12, 6), (5, 7, (4, 4, 4)), (12, 12, (3, 6, 3))]
)
def test_ties_across_the_wrap_follow_the_global_index(chunks):
    """A bar of equal values along z that crosses the wrap, with peaks at z=2 and z=9. In
    the total order (distance, then global index) the flood from z=2 reaches z=1, z=0 and
    then z=11 before the flood from z=9 gets there; a flood ordered by the unrolled box
    (z = 8..11, 0..3) would hand z=11 and z=0 to the other peak."""
    d = np.zeros((12, 12, 12), np.float32)
    bar = [8, 9, 10, 11, 0, 1, 2, 3]
    d[3, 3, bar] = 0.5
    d[3, 3, 2] = d[3, 3, 9] = 1.0
    params = SegmentParams(min_distance=1, marker_threshold=0.7)
    _, labels, _ = _run(d, params, chunks)
    a = np.ravel_multi_index((3, 3, 2), d.shape) + 1
    b = np.ravel_multi_index((3, 3, 9), d.shape) + 1
    expect = {0: a, 1: a, 2: a, 3: a, 11: a, 8: b, 9: b, 10: b}
    assert {z: int(labels[3, 3, z]) for z in bar} == expect
    ref = watershed_periodic(
        d, marker_image(d.shape, find_markers(d, min_distance=1, marker_threshold=0.7))
    )
    np.testing.assert_array_equal(labels, ref)
