"""Bispectrum: equals the direct mode-triplet sum; crop and distributed executions agree."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ConfigError, NonFiniteError
from bigpaint.field import write_array
from bigpaint.stats.bispectrum import bispectrum, bispectrum_equilateral, crop_size
from bigpaint.testing import chunk_layouts
from tests.stats.reference import brute_bispectrum

BOX = 100.0
KF = 2 * math.pi / BOX


def _k3(k1: float, k2: float, th: np.ndarray) -> np.ndarray:
    return np.sqrt((k2 * np.sin(th)) ** 2 + (k2 * np.cos(th) + k1) ** 2)


@settings(max_examples=8, deadline=None)
@given(
    n=st.sampled_from([8, 9, 10]),
    k1=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    k2=st.sampled_from([1.0, 2.0, 2.5]),
    width=st.sampled_from([1.0, 1.5]),
    data=st.data(),
)
def test_distributed_equals_direct_triplet_sum(n, k1, k2, width, data) -> None:
    """Tiny grids, shells anywhere (triangles closing modulo n count, as in the FFT estimator)."""
    x = np.random.default_rng(data.draw(st.integers(0, 999))).standard_normal((n, n, n))
    chunks = data.draw(chunk_layouts(x.shape, max_parts=3))
    th = np.array([0.2, 1.3, 2.9])
    ds = bispectrum(
        da.from_array(x, chunks=chunks),
        k1 * KF,
        k2 * KF,
        th,
        box_size=BOX,
        mas=None,
        shell_width=width * KF,
        method="distributed",
    )
    ref = brute_bispectrum(
        x, BOX, [(k1 * KF, k2 * KF, k) for k in _k3(k1 * KF, k2 * KF, th)], width * KF
    )
    for j, (b, cnt) in enumerate(ref):
        assert ds.triangles.values[j] == cnt
        if cnt:
            assert ds.B.values[j] == pytest.approx(b, rel=1e-9, abs=1e-9 * abs(b) + 1e-6)
        else:
            assert np.isnan(ds.B.values[j])


@settings(max_examples=4, deadline=None)
@given(data=st.data())
def test_crop_equals_distributed_and_direct(data) -> None:
    n = 16
    x = np.random.default_rng(data.draw(st.integers(0, 999))).standard_normal((n, n, n))
    chunks = data.draw(chunk_layouts(x.shape, max_parts=3))
    th = np.linspace(0.1, math.pi, 4)
    k1, k2 = 2.0 * KF, 2.5 * KF
    arr = da.from_array(x, chunks=chunks)
    crop = bispectrum(arr, k1, k2, th, box_size=BOX, mas=None)
    assert crop.attrs["method"].startswith("crop")
    dist = bispectrum(arr, k1, k2, th, box_size=BOX, mas=None, method="distributed")
    np.testing.assert_allclose(crop.B.values, dist.B.values, rtol=1e-9)
    np.testing.assert_allclose(crop.Q.values, dist.Q.values, rtol=1e-9)
    np.testing.assert_array_equal(crop.triangles.values, dist.triangles.values)
    ref = brute_bispectrum(x, BOX, [(k1, k2, k) for k in _k3(k1, k2, th)], KF)
    np.testing.assert_allclose(crop.B.values, [b for b, _ in ref], rtol=1e-9)


def test_equilateral_and_reduced_bispectrum() -> None:
    n = 16
    rng = np.random.default_rng(4)
    g = rng.standard_normal((n, n, n))
    x = g + 0.3 * (g**2 - 1)  # non-Gaussian: a non-zero bispectrum
    ks = np.array([1.5, 2.0, 2.5, 3.0]) * KF
    eq = bispectrum_equilateral(da.from_array(x, chunks=(5, 6, 7)), ks, box_size=BOX, mas=None)
    ref = brute_bispectrum(x, BOX, [(k, k, k) for k in ks], KF)
    np.testing.assert_allclose(eq.B.values, [b for b, _ in ref], rtol=1e-9)
    np.testing.assert_array_equal(eq.triangles.values, [c for _, c in ref])
    np.testing.assert_allclose(eq.Q.values, eq.B.values / (3 * eq.P.values**2), rtol=1e-12)
    # the equilateral configuration of the general estimator (theta = 2 pi / 3) agrees
    gen = bispectrum(x, ks[1], ks[1], [2 * math.pi / 3], box_size=BOX, mas=None)
    assert gen.k3.values[0] == pytest.approx(ks[1])
    assert gen.B.values[0] == pytest.approx(eq.B.values[1], rel=1e-9)
    assert gen.attrs["P1"] == pytest.approx(eq.P.values[1], rel=1e-9)
    # shell power equals the mean |delta_k|^2 V / n^6 over the shell modes
    f = np.fft.fftn(x)
    m = np.where(np.arange(n) > n // 2, np.arange(n) - n, np.arange(n))
    kk = KF * np.sqrt(m[:, None, None] ** 2 + m[None, :, None] ** 2 + m[None, None, :] ** 2)
    sel = (kk >= ks[0] - KF / 2) & (kk < ks[0] + KF / 2)
    assert eq.P.values[0] == pytest.approx(np.mean(np.abs(f[sel]) ** 2) * BOX**3 / n**6, rel=1e-9)


def test_mas_and_contrast_follow_the_field(tmp_path) -> None:
    n = 12
    rho = 1.0 + 0.2 * np.random.default_rng(1).standard_normal((n, n, n))
    url = str(tmp_path / "rho.zarr")
    write_array(
        url,
        rho,
        chunks=5,
        meta={"box_size": BOX, "kind": "density", "units": "1", "provenance": {"mas": "CIC"}},
    )
    ds = bispectrum_equilateral(url, [2 * KF], method="distributed")
    assert ds.attrs["mas"] == "CIC" and ds.attrs["contrast"] == "True"
    delta = rho / rho.mean() - 1
    # compensate by hand: divide delta_k by the CIC window, then compare with mas=None
    from bigpaint.mesh.window import window_1d

    m = np.where(np.arange(n) > n // 2, np.arange(n) - n, np.arange(n))
    w = window_1d(m, n, 2)
    fk = np.fft.fftn(delta) / (w[:, None, None] * w[None, :, None] * w[None, None, :])
    comp = np.fft.ifftn(fk).real
    ref = bispectrum_equilateral(comp, [2 * KF], box_size=BOX, mas=None, method="distributed")
    np.testing.assert_allclose(ds.B.values, ref.B.values, rtol=1e-9)


def test_bad_configurations() -> None:
    x = np.random.default_rng(0).standard_normal((16, 16, 16))
    with pytest.raises(ConfigError, match="leaves"):
        bispectrum(x, 0.2 * KF, KF, [0.5], box_size=BOX)
    with pytest.raises(ConfigError, match="leaves"):
        bispectrum_equilateral(x, [14 * KF], box_size=BOX)
    # a derived k3 shell reaching below 0 is clipped (k1 = k2, theta = pi: only |k| < w/2, empty)
    folded = bispectrum(x, 2 * KF, 2 * KF, [math.pi], box_size=BOX, mas=None)
    assert folded.triangles.values[0] == 0 and np.isnan(folded.B.values[0])
    with pytest.raises(ConfigError, match="theta"):
        bispectrum(x, KF, KF, [4.0], box_size=BOX)
    with pytest.raises(ConfigError, match="cannot crop"):
        bispectrum(x, 5 * KF, 5 * KF, [0.5], box_size=BOX, method="crop")
    with pytest.raises(ConfigError, match="method"):
        bispectrum(x, KF, KF, [0.5], box_size=BOX, method="fast")  # type: ignore[arg-type]
    assert crop_size(4) >= 13
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        bispectrum_equilateral(bad, [2 * KF], box_size=BOX)
