"""Union-find, periodic labelling and periodic extents against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bigpaint.errors import ConfigError
from bigpaint.segment.components import (
    label_periodic,
    neighbour_offsets,
    periodic_extent,
    union_find,
)
from bigpaint.testing import assert_equivalent_labels

from .reference import periodic_components


@given(
    n=st.integers(1, 40),
    pairs=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=60),
    perm_seed=st.integers(0, 1000),
)
@settings(max_examples=60)
def test_union_find_roots_are_set_minima(n, pairs, perm_seed):
    pairs = [(a % n, b % n) for a, b in pairs]
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    roots = union_find(n, a, b)
    g = coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    for c in np.unique(lab):
        members = np.flatnonzero(lab == c)
        assert np.all(roots[members] == members.min())
    perm = np.random.default_rng(perm_seed).permutation(a.size)
    np.testing.assert_array_equal(union_find(n, b[perm], a[perm]), roots)


@given(
    seed=st.integers(0, 2**16),
    fill=st.floats(0.2, 0.6),
    connectivity=st.sampled_from([1, 2, 3]),
    periodic=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
)
@settings(max_examples=80)
def test_label_periodic_equals_graph_components(seed, fill, connectivity, periodic, shape):
    mask = np.random.default_rng(seed).random(shape) < fill
    lab, n = label_periodic(mask, connectivity, periodic)
    ref = periodic_components(mask, connectivity, periodic)
    assert_equivalent_labels(lab, ref)
    assert n == len(np.unique(ref[ref > 0]))
    ids, first = np.unique(lab.ravel(), return_index=True)
    by_appearance = ids[ids > 0][np.argsort(first[ids > 0])]
    assert list(by_appearance) == list(range(1, n + 1))  # numbered in C order


def test_label_periodic_joins_across_every_face_and_corner():
    mask = np.zeros((6, 6, 6), bool)
    mask[0, 0, 0] = mask[5, 5, 5] = True  # corner-adjacent only through the wrap
    assert label_periodic(mask, 3)[1] == 1
    assert label_periodic(mask, 2)[1] == 2
    assert label_periodic(mask, 3, (True, True, False))[1] == 2


@given(
    n=st.integers(1, 30),
    occupied=st.sets(st.integers(0, 29), min_size=1, max_size=30),
    split=st.integers(1, 4),
)
@settings(max_examples=80)
def test_periodic_extent_is_the_smallest_covering_arc(n, occupied, split):
    occ = sorted({o % n for o in occupied})
    # describe the occupied voxels as a few intervals (runs), in any order
    runs = []
    start = occ[0]
    for a, b in zip(occ, [*occ[1:], None], strict=True):
        if b is None or b != a + 1:
            runs.append((start, a + 1))
            if b is not None:
                start = b
    runs = runs[::-1] if split % 2 else runs
    s, e, full = periodic_extent(runs, n)
    covered = {(s + i) % n for i in range(e)}
    assert set(occ) <= covered
    best = min(max((o - first) % n for o in occ) + 1 for first in range(n))
    assert e == best
    assert full == (len(occ) == n)


def test_bad_connectivity():
    with pytest.raises(ConfigError, match="connectivity"):
        neighbour_offsets(4)
    assert len(neighbour_offsets(1)) == 6
    assert len(neighbour_offsets(3)) == 26
    assert len(neighbour_offsets(3, half=True)) == 13
