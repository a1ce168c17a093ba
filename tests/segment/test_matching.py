"""Per-object matching of a segmentation against truth labels, on images with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bigpaint.errors import ConfigError, ShapeError
from bigpaint.segment.matching import match_objects, overlap_table, score_by_mass
from bigpaint.sim.truth import connected_protohalos

CELL = 7.0e11  # Msun/h
EDGES = np.array([0.5, 10.5, 1000.5]) * CELL  # small (1-10 cells) and large objects


def scores(segments, truth, edges=EDGES):
    return score_by_mass(match_objects(overlap_table(segments, truth)), cell_mass=CELL, edges=edges)


def boxes() -> np.ndarray:
    """Truth: a 4x4x4 cube (64 cells, id 1), a 2x2x2 cube (8 cells, id 2), a 1x2x2 slab (id 3)."""
    t = np.zeros((10, 10, 10), np.int32)
    t[0:4, 0:4, 0:4] = 1
    t[6:8, 6:8, 6:8] = 2
    t[6, 0:2, 0:2] = 3
    return t


def test_perfect_segmentation_is_complete_and_pure():
    t = boxes()
    s = scores(t.astype(np.int64), t)
    np.testing.assert_array_equal(s.n_truth, [2, 1])
    np.testing.assert_array_equal(s.n_recovered, [2, 1])
    np.testing.assert_array_equal(s.completeness, [1.0, 1.0])
    np.testing.assert_array_equal(s.purity, [1.0, 1.0])
    np.testing.assert_array_equal(s.completeness_err, [0.0, 0.0])


def test_relabelled_perfect_segmentation_is_still_perfect():
    t = boxes()
    rename = np.array([0, 9001, 17, 400000000000], np.int64)  # sparse, unordered ids
    m = match_objects(overlap_table(rename[t], t))
    np.testing.assert_array_equal(m.best_segment, [9001, 17, 400000000000])
    np.testing.assert_array_equal(m.fraction_of_truth, [1.0, 1.0, 1.0])
    assert m.recovered.all() and m.pure.all()
    s = scores(rename[t], t)
    np.testing.assert_array_equal(s.completeness, [1.0, 1.0])
    np.testing.assert_array_equal(s.purity, [1.0, 1.0])


def test_object_split_in_equal_halves_is_not_recovered():
    t = boxes()
    seg = t.astype(np.int64)
    seg[0:2, 0:4, 0:4] = 10  # the 64-cell cube in two halves of 32
    seg[2:4, 0:4, 0:4] = 11
    m = match_objects(overlap_table(seg, t))
    assert not m.recovered[0] and m.recovered[1:].all()
    assert m.best_segment[0] == 10  # tie: the lowest id
    assert m.fraction_of_truth[0] == 0.5 and m.fraction_of_segment[0] == 1.0
    s = scores(seg, t)
    np.testing.assert_array_equal(s.n_recovered, [2, 0])
    np.testing.assert_array_equal(s.completeness, [1.0, 0.0])
    # each half is all truth but holds only half of it: not a mutual majority
    np.testing.assert_array_equal(s.n_segments, [2, 2])
    np.testing.assert_array_equal(s.n_pure, [2, 0])


def test_merged_objects_leave_the_smaller_unrecovered():
    t = boxes()
    seg = np.where(t > 0, 5, 0)  # one segment over all three: 64 of its 76 cells are id 1
    m = match_objects(overlap_table(seg, t))
    np.testing.assert_array_equal(m.recovered, [True, False, False])
    np.testing.assert_array_equal(m.best_segment, [5, 5, 5])
    np.testing.assert_allclose(m.fraction_of_segment, np.array([64, 8, 4]) / 76)
    assert m.pure.tolist() == [True]


def test_merge_of_equals_makes_an_impure_segment():
    t = np.zeros((8, 8, 8), np.int64)
    t[0:2, 0:2, 0:2] = 1
    t[2:4, 0:2, 0:2] = 2  # touching cubes of 8 cells, merged into one segment of 16
    seg = np.where(t > 0, 3, 0)
    m = match_objects(overlap_table(seg, t))
    assert not m.recovered.any()
    assert not m.pure.any()
    s = scores(seg, t)
    np.testing.assert_array_equal(s.n_truth, [2, 0])
    np.testing.assert_array_equal(s.n_segments, [0, 1])
    np.testing.assert_array_equal(s.completeness, [0.0, np.nan])
    np.testing.assert_array_equal(s.purity, [np.nan, 0.0])
    assert np.isnan(s.purity_err[0]) and s.purity_err[1] == 0.0


def test_segment_outside_truth_is_impure_and_untouched_truth_unmatched():
    t = boxes()
    seg = np.zeros_like(t, dtype=np.int64)
    seg[0:4, 0:4, 0:4] = 1
    seg[9, 9, 9] = 2  # a lone segment on background
    m = match_objects(overlap_table(seg, t))
    np.testing.assert_array_equal(m.best_segment, [1, 0, 0])
    np.testing.assert_array_equal(m.fraction_of_truth, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(m.fraction_of_segment, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(m.pure, [True, False])
    s = scores(seg, t)
    np.testing.assert_array_equal(s.n_segments, [1, 1])
    np.testing.assert_array_equal(s.n_pure, [0, 1])
    np.testing.assert_allclose(s.completeness, [0.0, 1.0])


def test_binomial_errors():
    t = np.zeros((4, 4, 4), np.int64)
    t.ravel()[:4] = [1, 2, 3, 4]  # four one-cell objects, one recovered
    seg = np.zeros_like(t)
    seg.ravel()[0] = 7
    s = scores(seg, t)
    assert s.completeness[0] == 0.25
    assert s.completeness_err[0] == pytest.approx(np.sqrt(0.25 * 0.75 / 4))


def test_connected_truth_labels_are_the_reference():
    # a label in two periodic pieces: connected truth keeps the larger, so a segmentation
    # of that piece alone is complete against it
    raw = np.zeros((8, 8, 8), np.int64)
    raw[0:3, 0:2, 0:2] = 1
    raw[5, 5, 5] = 1  # a stray cell of the same halo
    conn, _ = connected_protohalos(raw)
    seg = np.zeros_like(raw)
    seg[0:3, 0:2, 0:2] = 4
    assert scores(seg, conn).completeness[1] == 1.0
    m = match_objects(overlap_table(seg, raw))
    assert m.fraction_of_truth[0] == pytest.approx(12 / 13)


def test_bad_input_is_refused():
    t = boxes()
    with pytest.raises(ShapeError, match="differ in shape"):
        overlap_table(t[:5], t)
    with pytest.raises(ConfigError, match="integers"):
        overlap_table(t.astype(np.float32), t)
    with pytest.raises(ConfigError, match=">= 0"):
        overlap_table(t, -t)
    m = match_objects(overlap_table(t, t))
    with pytest.raises(ConfigError, match="cell_mass"):
        score_by_mass(m, cell_mass=0.0, edges=EDGES)
    with pytest.raises(ConfigError, match="increasing"):
        score_by_mass(m, cell_mass=CELL, edges=EDGES[::-1])
    with pytest.raises(ConfigError, match="increasing"):
        score_by_mass(m, cell_mass=CELL, edges=[1.0])


def test_empty_images():
    z = np.zeros((3, 3, 3), np.int64)
    s = scores(z, z)
    np.testing.assert_array_equal(s.n_truth + s.n_segments, [0, 0])
    assert np.isnan(s.completeness).all() and np.isnan(s.purity).all()


def brute_overlap(seg: np.ndarray, truth: np.ndarray) -> dict[tuple[int, int], int]:
    out: dict[tuple[int, int], int] = {}
    for a, b in zip(truth.ravel().tolist(), seg.ravel().tolist(), strict=True):
        if a and b:
            out[(a, b)] = out.get((a, b), 0) + 1
    return out


labels = hnp.arrays(np.int64, (4, 5, 3), elements=st.integers(0, 5))


@settings(max_examples=60, deadline=None)
@given(seg=labels, truth=labels, seed=st.integers(0, 2**32 - 1))
def test_invariant_under_relabelling_and_counts_add_up(seg, truth, seed):
    o = overlap_table(seg, truth)
    rows = zip(o.truth_id.tolist(), o.segment_id.tolist(), o.shared.tolist(), strict=True)
    pairs = {(a, b): n for a, b, n in rows}
    assert pairs == brute_overlap(seg, truth)
    assert o.shared.sum() == np.count_nonzero((seg > 0) & (truth > 0))
    assert o.truth_cells.sum() == np.count_nonzero(truth)
    assert o.segment_cells.sum() == np.count_nonzero(seg)

    m = match_objects(o)
    assert m.recovered.sum() == m.pure.sum()  # mutual majorities pair one to one
    for tid, ok in zip(m.truth_ids.tolist(), m.recovered.tolist(), strict=True):
        inside = truth == tid
        held = [(np.count_nonzero(inside & (seg == sid)), sid) for sid in np.unique(seg[inside])]
        n, sid = max([h for h in held if h[1] > 0], default=(0, 0))
        expect = sid > 0 and 2 * n > inside.sum() and 2 * n > np.count_nonzero(seg == sid)
        assert ok == expect

    edges = np.array([0.5, 2.5, 6.5, 100.5]) * CELL  # covers every size in a 60-cell box
    s = score_by_mass(m, cell_mass=CELL, edges=edges)
    assert s.n_truth.sum() == m.truth_ids.size and s.n_segments.sum() == m.segment_ids.size
    assert s.n_recovered.sum() == s.n_pure.sum() == m.recovered.sum()

    rng = np.random.default_rng(seed)
    ids = np.unique(seg[seg > 0])
    new = rng.choice(10**12, size=ids.size, replace=False) + 1
    lut = np.zeros(seg.max() + 1, np.int64)
    lut[ids] = new
    r = score_by_mass(match_objects(overlap_table(lut[seg], truth)), cell_mass=CELL, edges=edges)
    for name in ("n_truth", "n_recovered", "n_segments", "n_pure"):
        np.testing.assert_array_equal(getattr(r, name), getattr(s, name))
    np.testing.assert_array_equal(r.completeness, s.completeness)
    np.testing.assert_array_equal(r.purity, s.purity)
