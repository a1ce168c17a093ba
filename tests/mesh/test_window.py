"""Mass-assignment windows, aliasing sums, interlacing and the k-grid bookkeeping."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ConfigError, ShapeError
from bigpaint.mesh.fft import rfftn
from bigpaint.mesh.kgrid import (
    block_modes,
    full_location,
    fundamental,
    independent_modes,
    mode_numbers,
    nyquist,
    rfft_shape,
    wavenumbers,
)
from bigpaint.mesh.window import (
    aliased_power_window_1d,
    compensate,
    interlace,
    mas_order,
    power_compensation,
    window_1d,
)
from bigpaint.testing import chunk_layouts


def test_mode_numbers_follow_pylians_nyquist_sign() -> None:
    assert mode_numbers(8).tolist() == [0, 1, 2, 3, 4, -3, -2, -1]
    assert mode_numbers(7).tolist() == [0, 1, 2, 3, -3, -2, -1]
    assert mode_numbers(8, half=True).tolist() == [0, 1, 2, 3, 4]
    assert mode_numbers(8, 3, 6).tolist() == [3, 4, -3]
    with pytest.raises(ValueError):
        mode_numbers(8, 0, 9)


def test_wavenumbers_units() -> None:
    kx, _, kz = wavenumbers((8, 8, 8), (100.0, 100.0, 100.0))
    kf = 2 * np.pi / 100.0
    assert fundamental((100.0,) * 3)[0] == pytest.approx(kf)
    assert nyquist((100.0,) * 3, (8, 8, 8))[0] == pytest.approx(4 * kf)
    assert kx.shape == (8, 1, 1) and kz.shape == (1, 1, 5)
    assert kx[4, 0, 0] == pytest.approx(4 * kf) and kx[5, 0, 0] == pytest.approx(-3 * kf)


@pytest.mark.parametrize("shape", [(8, 8, 8), (6, 5, 4), (5, 7, 9), (4, 6, 1), (2, 2, 2)])
def test_independent_modes_keep_one_of_each_conjugate_pair(shape) -> None:
    """Brute force: every mode of the full grid is represented exactly once up to conjugation."""
    keep = np.broadcast_to(
        independent_modes(shape, full_location(rfft_shape(shape))), rfft_shape(shape)
    )
    nx, ny, nz = shape
    kept = {(i, j, k) for i, j, k in zip(*np.nonzero(keep), strict=True)}
    classes = set()
    for i, j, k in itertools.product(range(nx), range(ny), range(nz)):
        a = (i, j, k)
        b = ((-i) % nx, (-j) % ny, (-k) % nz)
        classes.add(min(a, b))
    # each conjugate class has exactly one representative among the kept half-space modes
    rep = {}
    for i, j, k in kept:
        a = (i, j, k)
        b = ((-i) % nx, (-j) % ny, (-k) % nz)
        cls = min(a, b)
        assert cls not in rep, f"class {cls} counted twice"
        rep[cls] = a
    assert set(rep) == classes


@settings(max_examples=20, deadline=None)
@given(st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)), st.data())
def test_block_helpers_match_whole_grid(shape, data) -> None:
    half = rfft_shape(shape)
    chunks = data.draw(chunk_layouts(half, max_parts=3))
    whole = np.broadcast_to(independent_modes(shape, full_location(half)), half)
    mx, my, mz = (np.broadcast_to(m, half) for m in block_modes(shape, full_location(half)))
    offs = [np.cumsum((0, *c)) for c in chunks]
    for idx in itertools.product(*(range(len(c)) for c in chunks)):
        loc = [(int(o[i]), int(o[i + 1])) for o, i in zip(offs, idx, strict=True)]
        sl = tuple(slice(a, b) for a, b in loc)
        part = np.broadcast_to(independent_modes(shape, loc), tuple(b - a for a, b in loc))
        np.testing.assert_array_equal(part, whole[sl])
        bx, by, bz = block_modes(shape, loc)
        np.testing.assert_array_equal(np.broadcast_to(bx, part.shape), mx[sl])
        np.testing.assert_array_equal(np.broadcast_to(by, part.shape), my[sl])
        np.testing.assert_array_equal(np.broadcast_to(bz, part.shape), mz[sl])


def test_mas_order_names() -> None:
    assert [mas_order(m) for m in ("ngp", "CIC", "TSC", "PCS", None, "none", 3)] == [
        1,
        2,
        3,
        4,
        0,
        0,
        3,
    ]
    with pytest.raises(ConfigError, match="unknown mass-assignment"):
        mas_order("SPH")
    with pytest.raises(ConfigError):
        mas_order(7)


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_aliased_window_closed_forms_equal_the_alias_sum(p: int) -> None:
    n = 16
    m = np.arange(-n // 2, n // 2 + 1)
    brute = sum(window_1d(m + j * n, n, p) ** 2 for j in range(-4000, 4001))
    np.testing.assert_allclose(
        aliased_power_window_1d(m, n, p), brute, rtol=1e-4 if p == 1 else 1e-9
    )


def test_window_matches_pylians_mas_correction() -> None:
    """Pylians multiplies delta_k by (x / sin x)^p with x = pi m / n per axis."""
    n, p = 32, 2
    m = np.arange(1, 17)
    x = np.pi * m / n
    np.testing.assert_allclose(1.0 / window_1d(m, n, p), (x / np.sin(x)) ** p, rtol=1e-12)
    assert window_1d(np.array([0]), n, p)[0] == 1.0


def test_cic_window_is_the_transform_of_the_cic_kernel() -> None:
    """A unit particle at a cell centre + u deposits a CIC kernel whose DFT is the sinc^2 window
    times the shift phase, averaged over sub-cell offsets (exact for the mean over u)."""
    n = 16
    us = (np.arange(400) + 0.5) / 400
    acc = np.zeros(n, complex)
    for u in us:
        g = np.zeros(n)
        g[0] += 1 - u
        g[1] += u
        k = np.fft.fft(g)
        acc += k * np.exp(2j * np.pi * mode_numbers(n) * u / n)
    acc /= len(us)
    np.testing.assert_allclose(acc.real, window_1d(mode_numbers(n), n, 2), atol=2e-5)


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_compensate_chunked_equals_whole(data) -> None:
    shape = (8, 6, 10)
    x = np.random.default_rng(3).standard_normal(shape)
    fk = np.fft.rfftn(x)
    chunks = data.draw(chunk_layouts(fk.shape, max_parts=3))
    got = compensate(da.from_array(fk, chunks=chunks), shape, "TSC").compute(scheduler="sync")
    ix, iy, iz = block_modes(shape, full_location(fk.shape))
    w = window_1d(ix, 8, 3) * window_1d(iy, 6, 3) * window_1d(iz, 10, 3)
    np.testing.assert_allclose(got, fk / w, rtol=1e-13)
    pc = power_compensation(shape, full_location(fk.shape), "TSC")
    np.testing.assert_allclose(pc[0] * pc[1] * pc[2], 1 / w**2, rtol=1e-13)


def _cic_deposit(pos: np.ndarray, n: int) -> np.ndarray:
    """Reference periodic CIC deposit (cell centres at (i + 1/2) H, positions in cell units)."""
    grid = np.zeros((n, n, n))
    s = pos - 0.5
    i0 = np.floor(s).astype(int)
    f = s - i0
    for dx, dy, dz in itertools.product((0, 1), repeat=3):
        w = (
            np.where(dx, f[:, 0], 1 - f[:, 0])
            * np.where(dy, f[:, 1], 1 - f[:, 1])
            * np.where(dz, f[:, 2], 1 - f[:, 2])
        )
        np.add.at(grid, ((i0[:, 0] + dx) % n, (i0[:, 1] + dy) % n, (i0[:, 2] + dz) % n), w)
    return grid


def test_interlace_cancels_the_odd_alias_of_a_wave_beyond_nyquist() -> None:
    """Particles tracing two density waves along x: mode 3 (resolved) and mode 12 > n/2 = 8,
    which a 16-cell grid aliases onto mode 12 - 16 = -4. The plain CIC grid shows the alias;
    the interlaced grid cancels it (odd image) and keeps the resolved wave."""
    n, low, high = 16, 3, 12
    q = (np.arange(n * 8) + 0.5) / 8  # fine Lagrangian lattice along x, in cell units
    centres = np.arange(n) + 0.5
    x, y, z = np.meshgrid(q, centres, centres, indexing="ij")
    disp = sum(0.02 * n / (2 * np.pi * m) * np.sin(2 * np.pi * m * x / n) for m in (low, high))
    pos = np.stack([(x + disp).ravel(), y.ravel(), z.ravel()], axis=1) % n
    g1 = _cic_deposit(pos, n)
    g2 = _cic_deposit((pos + 0.5) % n, n)
    f1 = da.from_array(np.fft.rfftn(g1), chunks=(5, 6, 4))
    f2 = da.from_array(np.fft.rfftn(g2), chunks=(5, 6, 4))
    fi = interlace(f1, f2, (n, n, n)).compute()
    plain = np.fft.rfftn(g1)
    alias = high  # grid index of mode 12 - 16 = -4
    assert abs(plain[alias, 0, 0]) > 0.05 * abs(plain[low, 0, 0]), "test needs a visible alias"
    assert abs(fi[alias, 0, 0]) < 0.02 * abs(plain[alias, 0, 0])
    np.testing.assert_allclose(abs(fi[low, 0, 0]), abs(plain[low, 0, 0]), rtol=0.02)


def test_window_errors() -> None:
    fk = da.zeros((8, 8, 5), dtype=complex, chunks=4)
    with pytest.raises(ShapeError, match="real FFT of a"):
        compensate(fk, (8, 8, 10), "CIC")
    with pytest.raises(ShapeError, match="differ in shape"):
        interlace(fk, da.zeros((8, 8, 4), dtype=complex), (8, 8, 8))
    with pytest.raises(ConfigError, match="compensation"):
        power_compensation((8, 8, 8), full_location((8, 8, 5)), "CIC", kind="jing")  # type: ignore[arg-type]
    assert compensate(fk, (8, 8, 8), None) is fk
    assert rfftn(np.ones((4, 4, 4))).shape == (4, 4, 3)
