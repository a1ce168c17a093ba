"""Markers against scikit-image's peak_local_max and a brute-force periodic maximum test."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.feature import peak_local_max

from bigpaint.errors import ConfigError
from bigpaint.segment.markers import find_markers

from .reference import blobs, markers_brute


@given(
    seed=st.integers(0, 2**16),
    m=st.integers(1, 3),
    thr=st.floats(0.0, 0.6),
)
@settings(max_examples=30)
def test_markers_equal_peak_local_max_on_the_padded_box(seed, m, thr):
    """Tie-free maps: the periodic markers are peak_local_max(min_distance=m,
    threshold_abs=thr, exclude_border=False) on the box padded by wrap, read on the box."""
    d = np.random.default_rng(seed).random((14, 13, 12)).astype(np.float32)
    got = find_markers(d, min_distance=m, threshold=thr)
    pad = np.pad(d, m, mode="wrap")
    peaks = peak_local_max(pad, min_distance=m, threshold_abs=thr, exclude_border=False)
    inside = np.all((peaks >= m) & (peaks < np.array(d.shape) + m), axis=1)
    coords = peaks[inside] - m
    ref = np.sort(np.ravel_multi_index(coords.T, d.shape))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_markers_with_ties_equal_brute_force(m):
    """True normalized distance maps are full of ties (centres are all exactly 1)."""
    _, d = blobs(shape=(20, 20, 20), n=25, seed=2, big=6.0, tube=2.0)
    got = find_markers(d, min_distance=m)
    np.testing.assert_array_equal(got, markers_brute(d, d, m, 0.0, 0.0))
    assert got.size > 10


@given(
    seed=st.integers(0, 2**16),
    sigma=st.floats(0.4, 1.6),
    m=st.integers(1, 2),
    mthr=st.floats(0.0, 0.5),
)
@settings(max_examples=20)
def test_smoothed_markers_equal_brute_force(seed, sigma, m, mthr):
    d = np.random.default_rng(seed).random((12, 12, 12)).astype(np.float32)
    d = np.round(d * 8) / 8  # ties in the raw map too
    got = find_markers(d, min_distance=m, threshold=0.1, marker_threshold=mthr, sigma=sigma)
    s = ndi.gaussian_filter(d, sigma, mode="wrap")
    np.testing.assert_array_equal(got, markers_brute(s, d, m, 0.1, mthr))


def test_marker_parameters_are_checked():
    d = np.zeros((6, 6, 6), np.float32)
    with pytest.raises(ConfigError, match="min_distance"):
        find_markers(d, min_distance=0)
    with pytest.raises(ConfigError, match="at least 7"):
        find_markers(d, min_distance=3)
    with pytest.raises(ConfigError, match="sigma"):
        find_markers(d, sigma=-1)
    assert find_markers(d).size == 0
