"""Training truth: halo counts per mass bin, protohalo labels, periodic normalised distances."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ConfigError
from bigpaint.sim.truth import (
    connected_protohalos,
    halo_counts,
    normalized_distance,
    periodic_edt,
    protohalo_labels,
)


def _catalogue(masses, centres, members):
    order = np.argsort(-np.asarray(masses), kind="stable")
    return pa.table(
        {
            "halo_id": np.arange(len(masses)),
            "n_particles": [len(members[i]) for i in order],
            "mass": np.asarray(masses, float)[order],
            "x": np.asarray(centres)[order, 0],
            "y": np.asarray(centres)[order, 1],
            "z": np.asarray(centres)[order, 2],
            "members": pa.array([sorted(members[i]) for i in order], pa.list_(pa.int64())),
        }
    )


def test_halo_counts_per_mass_bin():
    rng = np.random.default_rng(1)
    masses = 10 ** rng.uniform(12, 15, 300)
    centres = rng.uniform(0, 50.0, (300, 3))
    cat = _catalogue(masses, centres, [[i] for i in range(300)])
    edges = [1e12, 1e13, 1e14, 1e15]
    counts = halo_counts(cat, 10, 50.0, edges)
    assert counts.shape == (3, 10, 10, 10)
    want = np.histogram(masses, edges)[0]
    np.testing.assert_array_equal(counts.sum(axis=(1, 2, 3)), want)
    m = cat["mass"].to_numpy()
    c = np.stack([cat[k].to_numpy() for k in "xyz"], 1)
    b = np.searchsorted(edges, m[0], side="right") - 1
    assert counts[(b, *(np.floor(c[0] / 5.0).astype(int)))] >= 1
    with pytest.raises(ConfigError, match="mass_bins"):
        halo_counts(cat, 10, 50.0, [1e13, 1e12])


def _random_setup(rng, n=12, box=24.0, n_halo=8):
    pos = rng.uniform(0, box, (600, 3))
    ids = rng.permutation(600) + 50
    owner = rng.integers(-1, n_halo, 600)  # -1: in no halo
    members = [ids[owner == h].tolist() for h in range(n_halo)]
    masses = [len(m) * 1e12 + h for h, m in enumerate(members)]  # distinct
    cat = _catalogue(masses, np.zeros((n_halo, 3)), members)
    return pos, ids, cat, n, box


@given(seed=st.integers(0, 10_000), cut=st.sampled_from([0.0, 6e13, 8e13]))
@settings(max_examples=20)
def test_protohalo_label_is_the_largest_halo_in_the_cell(seed, cut):
    pos, ids, cat, n, box = _random_setup(np.random.default_rng(seed))
    labels = protohalo_labels(pos, ids, cat, n, box, min_mass=cut, connected=False)
    mass = cat["mass"].to_numpy()
    label_of = {}
    for h, mem in enumerate(cat["members"].to_pylist()):
        for pid in mem:
            label_of[pid] = h + 1
    cells = np.floor(pos / (box / n)).astype(int) % n
    want = np.zeros((n, n, n), np.int32)
    for (i, j, k), pid in zip(map(tuple, cells), ids, strict=True):
        lab = label_of.get(int(pid), 0)
        if lab and mass[lab - 1] >= cut and (want[i, j, k] == 0 or lab < want[i, j, k]):
            want[i, j, k] = lab
    np.testing.assert_array_equal(labels, want)
    # every labelled cell belongs to a halo above the mass cut
    assert np.all(mass[labels[labels > 0] - 1] >= cut)


def _periodic_pieces(labels):
    """Brute force: the periodic face-connected pieces of each label, by breadth-first search."""
    shape = labels.shape
    seen = np.zeros(shape, bool)
    pieces = []
    for start in zip(*np.nonzero(labels), strict=True):
        if seen[start]:
            continue
        lab, piece, todo = labels[start], [start], [start]
        seen[start] = True
        while todo:
            c = todo.pop()
            for axis, step in itertools.product(range(3), (-1, 1)):
                nb = list(c)
                nb[axis] = (nb[axis] + step) % shape[axis]
                nb = tuple(nb)
                if not seen[nb] and labels[nb] == lab:
                    seen[nb] = True
                    piece.append(nb)
                    todo.append(nb)
        pieces.append((int(lab), piece))
    return pieces


@given(seed=st.integers(0, 10_000), fill=st.floats(0.2, 0.8), shape=st.sampled_from(
    [(7, 6, 5), (4, 9, 6), (8, 8, 8)]))  # fmt: skip
@settings(max_examples=25, deadline=None)
def test_connected_protohalos_keep_each_labels_largest_periodic_piece(seed, fill, shape):
    rng = np.random.default_rng(seed)
    raw = np.where(rng.random(shape) < fill, rng.integers(1, 5, shape), 0).astype(np.int32)
    got, stats = connected_protohalos(raw)
    want = np.zeros_like(raw)
    size = lambda p: (len(p[1]), -min(np.ravel_multi_index(c, shape) for c in p[1]))  # noqa: E731
    pieces = _periodic_pieces(raw)
    for lab in np.unique(raw[raw > 0]):
        best = max((p for p in pieces if p[0] == lab), key=size)
        for c in best[1]:
            want[c] = lab
    np.testing.assert_array_equal(got, want)
    # each label is now one periodic face-connected component, and fragments are background
    assert sorted(p[0] for p in _periodic_pieces(got)) == sorted(np.unique(got[got > 0]))
    assert np.all((got == raw) | (got == 0))
    assert stats["fragment_cells"] == int(np.count_nonzero(raw)) - int(np.count_nonzero(got))
    n_pieces = np.bincount([p[0] for p in pieces])
    assert stats["labels_in_several_pieces"] == int(np.count_nonzero(n_pieces > 1))


def test_a_protohalo_across_the_periodic_wrap_is_one_piece():
    lab = np.zeros((6, 6, 6), np.int32)
    lab[[0, 5], 2, 2] = 7  # neighbours through the wrap
    lab[3, 3, 3] = 7  # a detached fragment
    got, stats = connected_protohalos(lab)
    assert got[0, 2, 2] == got[5, 2, 2] == 7 and got[3, 3, 3] == 0
    assert stats == {"labels": 1, "labels_in_several_pieces": 1, "labelled_cells": 3,
                     "fragment_cells": 1}  # fmt: skip


@given(seed=st.integers(0, 10_000))
@settings(max_examples=10, deadline=None)
def test_protohalo_labels_are_connected_and_above_the_mass_cut(seed):
    pos, ids, cat, n, box = _random_setup(np.random.default_rng(seed))
    raw = protohalo_labels(pos, ids, cat, n, box, min_mass=6e13, connected=False)
    labels = protohalo_labels(pos, ids, cat, n, box, min_mass=6e13)
    np.testing.assert_array_equal(labels, connected_protohalos(raw)[0])
    assert len(_periodic_pieces(labels)) == len(np.unique(labels[labels > 0]))
    mass = cat["mass"].to_numpy()
    assert np.all(mass[labels[labels > 0] - 1] >= 6e13)


def _brute_force_periodic_edt(labels):
    n = labels.shape
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in n], indexing="ij"), -1).reshape(-1, 3)
    flat = labels.ravel()
    out = np.zeros(flat.shape)
    for c in np.flatnonzero(flat):
        other = flat != flat[c]
        d = idx[other] - idx[c]
        d = np.abs(d)
        d = np.minimum(d, np.array(n) - d)
        out[c] = np.sqrt((d**2).sum(1).min())
    return out.reshape(n)


@given(seed=st.integers(0, 10_000), fill=st.floats(0.3, 0.97))
@settings(max_examples=10)
def test_periodic_edt_equals_brute_force(seed, fill):
    rng = np.random.default_rng(seed)
    lab = np.where(rng.random((10, 9, 8)) < fill, rng.integers(1, 3, (10, 9, 8)), 0)
    lab[:] = np.where(rng.random(lab.shape) < 0.5, lab, np.roll(lab, 1, axis=0))
    got = periodic_edt(lab, pad=1)
    np.testing.assert_allclose(got, _brute_force_periodic_edt(lab), atol=1e-5)
    np.testing.assert_allclose(periodic_edt(np.roll(lab, (3, -2, 5), (0, 1, 2))),
                               np.roll(got, (3, -2, 5), (0, 1, 2)), atol=1e-5)  # fmt: skip


def test_normalized_distance_is_one_at_the_deepest_cell_and_zero_outside():
    n = 20
    lab = np.zeros((n, n, n), np.int32)
    x = np.arange(n)
    r2 = lambda c: sum((np.minimum(abs(g - ci), n - abs(g - ci))) ** 2 for g, ci in zip(  # noqa: E731
        np.meshgrid(x, x, x, indexing="ij"), c, strict=True))  # fmt: skip
    lab[r2((0, 0, 0)) <= 16] = 1  # a ball across every face of the box
    lab[r2((10, 10, 10)) <= 9] = 2
    lab[r2((10, 14, 10)) <= 4] = 3  # touching object 2
    d = normalized_distance(lab)
    assert np.all(d[lab == 0] == 0)
    for obj in (1, 2, 3):
        vals = d[lab == obj]
        assert vals.max() == 1.0 and vals.min() > 0
    assert d[0, 0, 0] == 1.0  # the ball's centre, in the corner, is its deepest cell
    for i, j, k in itertools.product(range(n), repeat=3):  # 1 exactly where the raw distance peaks
        if lab[i, j, k] == 1 and d[i, j, k] == 1.0:
            assert (i, j, k) == (0, 0, 0)
    assert not normalized_distance(np.zeros((4, 4, 4), int)).any()
