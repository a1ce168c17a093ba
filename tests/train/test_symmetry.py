"""The 48 cube and 8 square symmetries form a group and keep input and target aligned."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bigpaint.train.symmetry import Symmetry, random_symmetry, symmetries


def _key(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize(("ndim", "order"), [(3, 48), (2, 8)])
def test_group_is_distinct_and_closed(ndim, order):
    group = symmetries(ndim)
    assert len(group) == order == len(set(group))
    cube = np.random.default_rng(1).standard_normal((5,) * ndim)
    images = {_key(g.apply(cube)): g for g in group}
    assert len(images) == order  # 48 (8) different transforms of a generic array
    assert group[0].apply(cube) is not None and np.array_equal(group[0].apply(cube), cube)
    for a, b in itertools.product(group, group):
        c = a.compose(b)
        assert c in group  # closure
        np.testing.assert_array_equal(c.apply(cube), b.apply(a.apply(cube)))
        assert np.array_equal(a.compose(b).matrix(), b.matrix() @ a.matrix())
    for g in group:
        np.testing.assert_array_equal(g.inverse().apply(g.apply(cube)), cube)
        assert g.compose(g.inverse()) == group[0]
        m = g.matrix()
        assert np.array_equal(np.abs(m).sum(0), np.ones(ndim)) and abs(round(np.linalg.det(m))) == 1


def test_matrix_acts_on_indices():
    """Output index = M @ input index (+ offset for reversed axes)."""
    n = 5
    cube = np.arange(n**3).reshape(n, n, n)
    for g in symmetries(3):
        out = g.apply(cube)
        m = g.matrix()
        for i in [(0, 1, 2), (4, 0, 3), (2, 2, 1)]:
            j = m @ np.array(i) + (n - 1) * (m.sum(1) < 0)
            assert out[tuple(j)] == cube[i]


def test_numpy_and_torch_agree_and_leading_axes_are_kept():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5, 6))
    for g in symmetries(3)[::7]:
        np.testing.assert_array_equal(g.apply(x), g.apply(torch.as_tensor(x)).numpy())
        assert g.apply(x).shape[:2] == (2, 3)


def test_input_and_target_stay_aligned():
    """A target that is a centred crop of (a function of) the input stays the centred crop
    of the transformed input, for every element."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 12, 12, 12))
    y = np.tanh(x[:, 3:-3, 3:-3, 3:-3])
    for g in symmetries(3):
        gx, gy = g.apply(x), g.apply(y)
        np.testing.assert_array_equal(np.tanh(gx[:, 3:-3, 3:-3, 3:-3]), gy)
    x2 = rng.standard_normal((2, 10, 10))
    for g in symmetries(2):
        np.testing.assert_array_equal(g.apply(x2)[:, 2:-2, 2:-2], g.apply(x2[:, 2:-2, 2:-2]))


def test_random_symmetry_is_uniform_and_seeded():
    rng = np.random.default_rng(4)
    draws = [random_symmetry(rng, 3) for _ in range(4800)]
    counts = np.array([draws.count(g) for g in symmetries(3)])
    assert counts.min() > 50 and counts.max() < 150
    a = [random_symmetry(np.random.default_rng(9)) for _ in range(3)]
    b = [random_symmetry(np.random.default_rng(9)) for _ in range(3)]
    assert a == b


def test_bad_use():
    with pytest.raises(ValueError, match="needs >= 3 axes"):
        Symmetry((0, 1, 2), (False,) * 3).apply(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="different dimension"):
        symmetries(3)[1].compose(symmetries(2)[1])
