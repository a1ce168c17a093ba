"""P(k) of in-memory arrays (whole-grid FFT, one threaded pass) against a few lines of numpy.

The reference bins ``|delta_k|^2`` (or ``Re(a b*)``) of ``numpy.fft.rfftn`` by Pylians' rule:
integer shells ``int(|k| / k_F)``, one mode per conjugate pair in the ``k_z = 0`` and Nyquist
planes, DC dropped, the CIC window divided out per mode. Odd and even grids, with and without
compensation, auto and cross; and the same bits on one and two threads.
"""

from __future__ import annotations

import dask.array as da
import numba
import numpy as np
import pytest

from bigpaint.errors import NonFiniteError
from bigpaint.stats.power import compare_spectra, power_spectrum

BOX = 300.0


def numpy_pk(a: np.ndarray, b: np.ndarray | None, p: int) -> tuple[np.ndarray, np.ndarray]:
    """P0 per integer shell and its mode count, from numpy alone (the naive reference)."""
    n = a.shape[0]
    fa = np.fft.rfftn(a.astype(np.float64))
    fb = fa if b is None else np.fft.rfftn(b.astype(np.float64))
    m = np.fft.fftfreq(n, 1.0 / n)
    m[n // 2] = abs(m[n // 2])  # Pylians' Nyquist sign: +n/2
    mz = np.arange(n // 2 + 1)
    w = np.sinc(m / n) ** p
    window = w[:, None, None] * w[None, :, None] * (np.sinc(mz / n) ** p)[None, None, :]
    power = (fa * fb.conj()).real / window**2
    kx, ky, kz = m[:, None, None], m[None, :, None], mz[None, None, :]
    shell = np.broadcast_to(np.sqrt(kx**2 + ky**2 + kz**2).astype(np.int64), power.shape)
    keep = np.ones(power.shape, bool)
    for plane in {0, n // 2} if n % 2 == 0 else {0}:
        keep[:, :, plane] = ~((m[:, None] < 0) | ((m[:, None] % (n / 2) == 0) & (m[None, :] < 0)))
    keep[0, 0, 0] = False
    top = int(np.sqrt(3) * (n // 2)) + 1
    cnt = np.bincount(shell[keep], minlength=top + 1)[1 : top + 1]
    tot = np.bincount(shell[keep], weights=power[keep], minlength=top + 1)[1 : top + 1]
    nb = int(np.max(shell[keep]))  # shells up to the corner of the grid hold modes
    return tot[:nb] / cnt[:nb] * BOX**3 / n**6, cnt[:nb]


@pytest.mark.parametrize("n", [9, 10])
@pytest.mark.parametrize("mas", [None, "CIC"])
def test_auto_spectrum_equals_numpy(n, mas, rng):
    a = rng.standard_normal((n, n, n))
    ds = power_spectrum(a, box_size=BOX, mas=mas, multipoles=(0,))
    want, cnt = numpy_pk(a, None, 2 if mas else 0)
    np.testing.assert_array_equal(ds.n_modes.values, cnt)
    np.testing.assert_allclose(ds.P0.values, want, rtol=1e-11)


@pytest.mark.parametrize("n", [9, 10])
def test_cross_spectrum_equals_numpy(n, rng):
    a = rng.standard_normal((n, n, n))
    b = (a + rng.standard_normal((n, n, n))).astype(np.float32)
    ds = compare_spectra(a, b, box_size=BOX, mas="CIC", mas_true="CIC")
    want, _ = numpy_pk(a, b, 2)
    np.testing.assert_allclose(ds.P_cross.values, want, rtol=1e-6)
    x = power_spectrum(a, b, box_size=BOX, mas="CIC", mas_other="CIC", multipoles=(0,))
    np.testing.assert_allclose(x.P0.values, ds.P_cross.values, rtol=1e-12)


@pytest.mark.parametrize("los", [0, 2])
def test_multipoles_equal_the_distributed_path(los, rng):
    a = rng.standard_normal((12, 12, 12))
    mem = power_spectrum(a, box_size=BOX, mas="TSC", los=los)
    dist = power_spectrum(da.from_array(a, chunks=5), box_size=BOX, mas="TSC", los=los)
    for var in ("P0", "P2", "P4"):
        np.testing.assert_allclose(mem[var].values, dist[var].values, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(mem.n_modes.values, dist.n_modes.values)


def test_same_bits_on_one_and_two_threads(rng):
    a = rng.standard_normal((20, 20, 20)).astype(np.float32)
    b = rng.standard_normal((20, 20, 20)).astype(np.float32)
    before = numba.get_num_threads()
    out = []
    try:
        for k in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(k)
            out.append(power_spectrum(a, b, box_size=BOX, mas="CIC", mas_other="CIC"))
    finally:
        numba.set_num_threads(before)
    for var in ("P0", "P2", "P4"):
        assert np.array_equal(out[0][var].values, out[1][var].values)


def test_nan_in_the_second_field_is_named(rng):
    a = rng.standard_normal((8, 8, 8))
    b = a.copy()
    b[3, 1, 4] = np.nan
    with pytest.raises(NonFiniteError, match=r"\(3, 1, 4\)"):
        power_spectrum(a, b, box_size=BOX, mas=None)
