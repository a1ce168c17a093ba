"""Mass assignment kernels against a plain numpy (np.add.at) reference, and their physics."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import NonFiniteError, ShapeError
from bigpaint.mesh.assign import (
    SCHEMES,
    ParticleBoundsError,
    deposit,
    interlace_grids,
    readout,
    scheme_order,
)

# ---------------------------------------------------------------- the numpy reference


def bspline(r: np.ndarray, p: int) -> np.ndarray:
    """B-spline assignment kernel of order p (support p cells) at distance r in cells."""
    r = np.abs(r)
    if p == 2:
        return np.clip(1.0 - r, 0.0, None)
    if p == 3:
        return np.where(r < 0.5, 0.75 - r * r, np.where(r < 1.5, 0.5 * (1.5 - r) ** 2, 0.0))
    if p == 4:
        return np.where(
            r < 1.0, (4 - 6 * r**2 + 3 * r**3) / 6, np.where(r < 2.0, (2 - r) ** 3 / 6, 0.0)
        )
    raise ValueError(p)


def reference_deposit(pos, shape, box, p, weights=None, shift=0.0) -> np.ndarray:
    """Deposit by distance to every candidate cell centre, accumulated with np.add.at.

    Written independently of the kernels: weights come from the B-spline of the distance
    between the particle and each cell centre ((j + 0.5) cells), not from a base index.
    """
    pos = np.asarray(pos, np.float64)
    n = len(pos)
    m = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    idx, wts = [], []
    for a in range(3):
        u = pos[:, a] * (shape[a] / box[a]) + shift
        u = np.mod(u, shape[a])
        base = np.floor(u).astype(np.int64)
        if p == 1:
            idx.append([base % shape[a]])
            wts.append([np.ones(n)])
            continue
        js = [base + d for d in range(-2, 3)]
        idx.append([j % shape[a] for j in js])
        wts.append([bspline(u - (j + 0.5), p) for j in js])
    grid = np.zeros(shape)
    for ia, wa in zip(idx[0], wts[0], strict=True):
        for ib, wb in zip(idx[1], wts[1], strict=True):
            for ic, wc in zip(idx[2], wts[2], strict=True):
                np.add.at(grid, (ia, ib, ic), m * wa * wb * wc)
    return grid


def positions_for(kind: str, rng: np.random.Generator, n: int, shape, box) -> np.ndarray:
    """Particle sets that stress the kernels: uniform, on cell faces, on the box edges."""
    box = np.asarray(box, np.float64)
    shape = np.asarray(shape)
    if kind == "uniform":
        return rng.uniform(0, 1, (n, 3)) * box
    if kind == "faces":  # exactly on cell boundaries and cell centres
        cells = rng.integers(0, shape + 1, (n, 3))
        frac = rng.choice([0.0, 0.5], (n, 3))
        return np.minimum((cells + frac) * box / shape, box)
    if kind == "edges":  # 0, L and next to them
        choice = rng.choice([0.0, 1.0, 1e-12, 1 - 1e-12, 0.5], (n, 3))
        return choice * box
    if kind == "clustered":
        return np.mod(rng.normal(0.3, 0.01, (n, 3)) * box, box)
    raise ValueError(kind)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 11), st.integers(1, 11), st.integers(1, 11)),
    box=st.sampled_from([(100.0, 100.0, 100.0), (1.0, 2.5, 7.0), (1000.0, 1000.0, 1000.0)]),
    scheme=st.sampled_from(list(SCHEMES)),
    kind=st.sampled_from(["uniform", "faces", "edges", "clustered"]),
    n=st.integers(0, 300),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_deposit_equals_numpy_reference(shape, box, scheme, kind, n, weighted, seed):
    rng = np.random.default_rng(seed)
    pos = positions_for(kind, rng, n, shape, box)
    w = rng.uniform(0.1, 3.0, n) if weighted else None
    got = deposit(pos, shape, box, scheme=scheme, weights=w, dtype="f8")
    want = reference_deposit(pos, shape, box, scheme_order(scheme), w)
    total = w.sum() if weighted else n
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * max(total, 1) * max(shape))
    assert got.sum() == pytest.approx(total, rel=1e-12, abs=1e-12)  # mass conservation


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_float32_positions_and_grid_round_once(scheme, rng):
    """float32 in and out: accumulation is float64 and every cell is rounded once."""
    shape, box = (24, 10, 9), (240.0, 100.0, 90.0)
    pos = positions_for("uniform", rng, 20_000, shape, box).astype("f4")
    pos[:500] = positions_for("faces", rng, 500, shape, box).astype("f4")
    w = rng.uniform(0.1, 3.0, len(pos))
    got = deposit(pos, shape, box, scheme=scheme, weights=w)
    assert got.dtype == np.float32
    want = reference_deposit(pos, shape, box, scheme_order(scheme), w)
    # within one float32 rounding of the float64 sum (plus the reference's own rounding)
    np.testing.assert_allclose(got, want, rtol=2**-24 + 1e-12, atol=1e-9)
    assert float(got.sum(dtype=np.float64)) == pytest.approx(w.sum(), rel=1e-6)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_mass_conserved_for_many_particles(scheme, rng):
    pos = rng.uniform(0, 250.0, (200_000, 3))
    w = rng.uniform(0.5, 1.5, len(pos))
    grid = deposit(pos, 32, 250.0, scheme=scheme, weights=w, dtype="f8")
    assert grid.min() >= 0
    assert grid.sum() == pytest.approx(w.sum(), rel=1e-13)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
    scheme=st.sampled_from(list(SCHEMES)),
    shift=st.sampled_from([0.0, 0.5]),
    seed=st.integers(0, 2**32 - 1),
)
def test_readout_is_the_adjoint_of_deposit(shape, scheme, shift, seed):
    rng = np.random.default_rng(seed)
    box = (50.0, 60.0, 70.0)
    pos = positions_for("uniform", rng, 200, shape, box)
    pos[:10] = positions_for("edges", rng, 10, shape, box)
    w = rng.normal(size=len(pos))
    g = rng.normal(size=shape)
    dep = deposit(pos, shape, box, scheme=scheme, weights=w, dtype="f8", shift=shift)
    read = readout(g, pos, box, scheme=scheme, shift=shift)
    assert np.sum(dep * g) == pytest.approx(np.sum(w * read), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_readout_interpolates_constants_and_equals_reference(scheme, rng):
    shape = (8, 9, 10)
    box = (8.0, 9.0, 10.0)
    pos = rng.uniform(0, 1, (500, 3)) * box
    np.testing.assert_allclose(
        readout(np.full(shape, 3.5), pos, box, scheme=scheme), 3.5, rtol=1e-13
    )
    # readout at x equals <deposit of a unit particle at x, grid>
    g = rng.normal(size=shape)
    want = [
        np.sum(reference_deposit(p[None], shape, box, scheme_order(scheme)) * g) for p in pos[:40]
    ]
    np.testing.assert_allclose(readout(g, pos[:40], box, scheme=scheme), want, atol=1e-12)


def test_deposit_is_independent_of_the_thread_count(rng):
    pos = rng.uniform(0, 100.0, (50_000, 3))
    w = rng.uniform(0, 1, len(pos))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = deposit(pos, (24, 20, 18), 100.0, scheme="tsc", weights=w, dtype="f8")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = deposit(pos, (24, 20, 18), 100.0, scheme="tsc", weights=w, dtype="f8")
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, many)  # bit for bit, not just close


def test_position_equal_to_box_size_wraps_to_zero():
    L = 64.0
    at_l = np.array([[L, L, L], [L, 3.0, 0.0]])
    at_0 = np.array([[0.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    for scheme in SCHEMES:
        assert np.array_equal(
            deposit(at_l, 8, L, scheme=scheme, dtype="f8"),
            deposit(at_0, 8, L, scheme=scheme, dtype="f8"),
        )


def test_outside_positions_are_refused_unless_wrapped(rng):
    L = 10.0
    pos = rng.uniform(0, L, (100, 3))
    pos[[7, 42, 43]] += [L, 0, 0]
    pos[50, 2] = -0.25
    with pytest.raises(ParticleBoundsError, match=r"4 of 100 particles .* particle 7 at"):
        deposit(pos, 8, L, dtype="f8")
    wrapped = deposit(pos, 8, L, wrap=True, dtype="f8")
    np.testing.assert_allclose(wrapped, deposit(np.mod(pos, L), 8, L, dtype="f8"), atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 5000),
    nbad=st.integers(0, 6),
    cubic=st.booleans(),
    layout=st.sampled_from(["C", "F", "strided"]),
    dtype=st.sampled_from(["f4", "f8"]),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_scan_particles_counts_like_numpy(n, nbad, cubic, layout, dtype, weighted, seed):
    """The scan checks runs of particles at once and looks at one particle only in a run
    that fails: counts and first indices must equal numpy's, for any layout of the
    positions, a cubic box (one flat run of coordinates) or not, and bad values on any
    axis or in the masses, including positions exactly at 0 and L (fine)."""
    from bigpaint.mesh.assign import scan_particles

    rng = np.random.default_rng(seed)
    box = np.array([5.0, 5.0, 5.0] if cubic else [5.0, 3.0, 7.0])
    pos = rng.uniform(0, 1, (n, 3)) * box
    pos[rng.integers(0, n, 3), rng.integers(0, 3, 3)] = 0.0
    pos[rng.integers(0, n), :] = box
    mass = rng.uniform(0.5, 2.0, n) if weighted else None
    for _ in range(nbad):
        i, a = rng.integers(0, n), rng.integers(0, 3)
        kind = rng.integers(0, 4)
        if kind == 3 and weighted:
            mass[i] = np.nan
        else:
            pos[i, a] = [np.nan, np.inf, box[a] * 1.01][min(kind, 2)]
    pos = pos.astype(dtype)
    if layout == "F":
        pos = np.asfortranarray(pos)
    elif layout == "strided":
        pos = np.repeat(pos, 2, axis=0)[::2]
    finite = np.isfinite(pos).all(axis=1) & (np.isfinite(mass) if weighted else True)
    outside = finite & ((pos < 0) | (pos > box.astype(dtype))).any(axis=1)
    got = scan_particles(pos, box, weights=mass)
    assert (got.nonfinite, got.outside) == (int((~finite).sum()), int(outside.sum()))
    bad = np.flatnonzero(~finite)
    assert (got.first_nonfinite[0] if got.first_nonfinite else None) == (
        int(bad[0]) if bad.size else None
    )
    out = np.flatnonzero(outside)
    assert (got.first_outside[0] if got.first_outside else None) == (
        int(out[0]) if out.size else None
    )


def test_bad_inputs_get_one_clear_error(rng):
    pos = rng.uniform(0, 10, (20, 3))
    nan = pos.copy()
    nan[3, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"1 of 20 particles .* particle 3"):
        deposit(nan, 8, 10.0)
    with pytest.raises(NonFiniteError, match="mass"):
        deposit(pos, 8, 10.0, weights=np.where(np.arange(20) == 5, np.inf, 1.0))
    with pytest.raises(ShapeError, match=r"\(N, 3\).*transpose"):
        deposit(pos.T, 8, 10.0)
    with pytest.raises(ShapeError, match=r"weights must have shape \(20,\)"):
        deposit(pos, 8, 10.0, weights=np.ones(19))
    with pytest.raises(ValueError, match="unknown mass assignment scheme"):
        deposit(pos, 8, 10.0, scheme="sph")
    with pytest.raises(ShapeError, match="grid"):
        deposit(pos, (8, 8), 10.0)
    with pytest.raises(NonFiniteError):
        readout(np.full((4, 4, 4), np.nan), pos, 10.0)


def test_accumulates_into_out_and_matches_separate_deposits(rng):
    a = rng.uniform(0, 5, (300, 3))
    b = rng.uniform(0, 5, (200, 3))
    out = deposit(a, 6, 5.0, dtype="f8")
    deposit(b, 6, 5.0, out=out)
    np.testing.assert_allclose(out, deposit(np.concatenate([a, b]), 6, 5.0, dtype="f8"), atol=1e-12)
    with pytest.raises(ShapeError):
        deposit(b, 6, 5.0, out=np.zeros((6, 6, 5)))


# ---------------------------------------------------------------- Pylians convention


def test_matches_pylians_up_to_the_half_cell_node_convention(rng):
    masl = pytest.importorskip("MAS_library")
    n, L = 16, 100.0
    pos = rng.uniform(0, L, (5000, 3)).astype("f4")
    for scheme, p in (("cic", "CIC"), ("tsc", "TSC"), ("ngp", "NGP")):
        theirs = np.zeros((n, n, n), "f4")
        masl.MA(pos, theirs, L, p, verbose=False)
        # Pylians puts grid nodes on cell corners: ours at x + dx/2 are theirs at x
        ours = deposit(pos.astype("f8"), n, L, scheme=scheme, shift=0.5, dtype="f8")
        np.testing.assert_allclose(ours, theirs, atol=2e-4 * ours.max())


# ---------------------------------------------------------------- interlacing


def test_interlace_matches_the_fourier_window_module(rng):
    window = pytest.importorskip("bigpaint.mesh.window")
    shape = (8, 10, 12)
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    fk = window.interlace(np.fft.rfftn(a), np.fft.rfftn(b), shape)
    want = np.fft.irfftn(np.asarray(fk), s=shape, axes=(0, 1, 2))
    np.testing.assert_allclose(interlace_grids(a, b), want, atol=1e-12)


@pytest.mark.parametrize("scheme", ["cic", "tsc"])
def test_interlacing_removes_most_aliasing(scheme, rng):
    """Compare grid modes with the exact Fourier transform of the particles below k_Nyq.

    With the window divided out, a deposited grid's modes are the particles' exact Fourier
    sum plus aliased images; interlacing cancels the odd images, so its error must be
    several times smaller.
    """
    n, L = 32, 1.0
    pos = rng.uniform(0, L, (4000, 3))
    p = scheme_order(scheme)
    plain = deposit(pos, n, L, scheme=scheme, dtype="f8")
    inter = deposit(pos, n, L, scheme=scheme, dtype="f8", interlaced=True)
    assert inter.sum() == pytest.approx(len(pos), rel=1e-12)
    m = np.arange(-n // 4, n // 4)  # modes below k_Nyq / 2
    mx, my, mz = np.meshgrid(m, m, m[m >= 0], indexing="ij")
    k = 2 * np.pi * np.stack([mx, my, mz], -1) / L
    # exact transform with numpy's sign convention, about the cell-centre origin dx/2
    exact = np.exp(-1j * (k @ (pos - 0.5 * L / n).T)).sum(-1)
    w = (np.sinc(mx / n) * np.sinc(my / n) * np.sinc(mz / n)) ** p

    def err(grid: np.ndarray) -> float:
        fk = np.fft.rfftn(grid)[mx % n, my % n, mz] / w
        return float(np.sqrt(np.mean(np.abs(fk - exact) ** 2)))

    assert err(inter) < 0.3 * err(plain)
