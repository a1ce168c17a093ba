"""The threaded whole-grid deposits (x-slabs deposited in passes, or a small grid in two
halves): exact, and the same on any thread count.

Positions on a 1/16-cell lattice with integer masses make every NGP/CIC/TSC weight product
and every partial sum exact in float64, so the deposit must equal the numpy reference
(``np.add.at``, any order) bit for bit; random positions must give the same bits on one and
two threads. The scratch is forced down to one slab per pass as well, so that slabs are
deposited in several passes, with supports spilling across slab edges and the periodic wrap.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from bigpaint.mesh import assign_halves, assign_planes
from bigpaint.mesh.assign import deposit, scheme_order
from tests.mesh.test_assign import reference_deposit

SHAPE = (41, 7, 10)  # five slabs of x-planes, the last one nine planes wide
BOX = (41.0, 14.0, 5.0)


@pytest.fixture(params=["one slab per group", "default groups", "two halves"])
def groups(request, monkeypatch):
    """The passes (the grid kept out of the small-grid halves) or the halves."""
    assert assign_halves.in_halves(SHAPE, 4)  # so both paths are tested on SHAPE
    if request.param != "two halves":
        monkeypatch.setattr(assign_halves, "HALVES_BYTES", 0)
    if request.param == "one slab per group":
        monkeypatch.setattr(assign_planes, "PASS_BYTES", 1)
        monkeypatch.setattr(assign_planes, "PASS_FRACTION", 2**40)
        monkeypatch.setattr(assign_planes, "SCRATCH_BYTES", 1)
    return request.param


def _threads(k: int):
    before = numba.get_num_threads()
    numba.set_num_threads(min(k, numba.config.NUMBA_NUM_THREADS))
    return before


def _lattice(rng: np.random.Generator, n: int) -> np.ndarray:
    """Positions on a 1/16-cell lattice, including 0, L and the cells next to the wrap."""
    cells = np.asarray(SHAPE)
    steps = rng.integers(0, cells * 16 + 1, (n, 3))
    steps[:8] = [[0, 0, 0], cells * 16, [1, 1, 1], cells * 16 - 1] * 2
    return steps / 16.0 * (np.asarray(BOX) / cells)


@pytest.mark.parametrize("scheme", ["ngp", "cic", "tsc"])  # PCS weights hold 1/6: not exact
@pytest.mark.parametrize("threads", [1, 2])
def test_equals_reference_exactly_on_one_and_two_threads(scheme, threads, groups, rng):
    pos = _lattice(rng, 3000)
    mass = rng.integers(1, 5, len(pos)).astype(np.float64)
    want = reference_deposit(pos, SHAPE, BOX, scheme_order(scheme), weights=mass)
    before = _threads(threads)
    try:
        got = deposit(pos, SHAPE, BOX, scheme=scheme, weights=mass, dtype="f8")
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("scheme", ["cic", "pcs"])
def test_random_positions_same_bits_on_one_and_two_threads(scheme, groups, rng):
    pos = rng.uniform(0, 1, (20_000, 3)) * np.asarray(BOX)
    pos[:4] = [[0, 0, 0], BOX, [BOX[0] * (1 - 1e-12), 0, 0], [1e-12, BOX[1], 0]]
    grids = []
    for k in (1, 2):
        before = _threads(k)
        try:
            grids.append(deposit(pos.astype(np.float32), SHAPE, BOX, scheme=scheme, dtype="f8"))
        finally:
            numba.set_num_threads(before)
    assert np.array_equal(grids[0], grids[1])
    ref = reference_deposit(pos.astype(np.float32), SHAPE, BOX, scheme_order(scheme))
    np.testing.assert_allclose(grids[0], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cap", [1, 5, 10, 1000])
def test_groups_are_consecutive_slabs_within_the_cap(cap, rng):
    counts = rng.integers(0, 8, 23)
    starts = assign_planes._groups(counts, cap)
    assert starts[0] == 0 and starts[-1] == len(counts) and np.all(np.diff(starts) >= 1)
    for g in range(len(starts) - 1):
        held = counts[starts[g] : starts[g + 1]]
        assert held.sum() <= cap or np.count_nonzero(held) == 1
        if g + 1 < len(starts) - 1:  # greedy: the next slab would not have fitted
            assert held.sum() + counts[starts[g + 1]] > cap or held.sum() == 0
