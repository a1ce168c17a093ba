"""Power and cross spectra: Pylians conventions, chunk invariance, physics, bad inputs."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from bigpaint.errors import ConfigError, MetadataError, NonFiniteError, ShapeError
from bigpaint.field import write_array
from bigpaint.mass_assignment import NO_WINDOW
from bigpaint.mesh.assign import deposit
from bigpaint.mesh.fft import irfftn, rfftn
from bigpaint.mesh.window import interlace
from bigpaint.stats.bins import kbins, kmax_grid
from bigpaint.stats.power import (
    compare_spectra,
    cross_correlation,
    plan_bins,
    power_spectrum,
    stochasticity,
    transfer_function,
)
from bigpaint.testing import chunk_layouts
from tests.stats.reference import cic_deposit, gaussian_field, pylians_pk

MAS_P = {None: 0, "NGP": 1, "CIC": 2, "TSC": 3}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(b)))


@settings(max_examples=25, deadline=None)
@given(
    n=st.sampled_from([6, 8, 9, 12]),
    mas=st.sampled_from(list(MAS_P)),
    los=st.integers(0, 2),
    cross=st.booleans(),
    data=st.data(),
)
def test_equals_pylians_transcription_for_any_chunking(n, mas, los, cross, data) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, n, n))
    y = x + 0.5 * rng.standard_normal((n, n, n)) if cross else None
    ca = data.draw(chunk_layouts(x.shape, max_parts=3))
    cb = data.draw(chunk_layouts(x.shape, max_parts=3))
    ds = power_spectrum(
        da.from_array(x, chunks=ca),
        None if y is None else da.from_array(y, chunks=cb),
        box_size=50.0,
        mas=mas,
        mas_other=mas,
        los=los,
    )
    ref = pylians_pk(x, 50.0, MAS_P[mas], los, other=y)
    np.testing.assert_array_equal(ds.n_modes.values, ref["n_modes"])
    for key in ("k", "P0", "P2", "P4"):
        assert _rel(ds[key].values, ref[key]) < 1e-11, key


def test_float32_field_agrees_to_single_precision(box16: np.ndarray) -> None:
    ds = power_spectrum(da.from_array(box16, chunks=(6, 5, 5)), box_size=100.0, mas="CIC")
    ref = pylians_pk(box16.astype(np.float64), 100.0, 2, 2)
    assert _rel(ds.P0.values, ref["P0"]) < 1e-5
    assert ds.P0.attrs["units"] == "(Mpc/h)^3"
    assert ds.k.attrs["units"] == "h/Mpc"


def test_gaussian_field_recovers_input_spectrum_chi_square() -> None:
    """A GRF with known P(k): binned estimates are consistent with the bin expectation.

    For each bin the expectation is the mean of P(|k|) over its modes and the variance the sum
    of the mode variances (P^2 for complex modes, 2 P^2 for the real self-conjugate ones) over
    N_modes^2. chi^2 over all bins must lie in the central 99.8% of its distribution.
    """
    n, box = 32, 200.0

    def pk(k: np.ndarray) -> np.ndarray:
        return 2.0e4 * (k / 0.1) ** -1.5 * np.exp(-((k / 0.8) ** 2))

    x = gaussian_field(n, box, pk, seed=11)
    ds = power_spectrum(
        da.from_array(x, chunks=(11, 10, 11)), box_size=box, mas=None, multipoles=(0,)
    )
    # expectation and variance per bin from the modes themselves
    kf = 2 * np.pi / box
    m = np.where(np.arange(n) > n // 2, np.arange(n) - n, np.arange(n))
    mz = np.arange(n // 2 + 1)
    mx, my, mzz = np.meshgrid(m, m, mz, indexing="ij")
    k = kf * np.sqrt(mx**2 + my**2 + mzz**2)
    special = (mzz == 0) | (mzz == n // 2)
    edge = (mx == 0) | (mx == n // 2)
    keep = ~(special & ((mx < 0) | (edge & (my < 0))))
    selfconj = special & edge & ((my == 0) | (my == n // 2))
    edges = kbins(box, n)
    b = np.digitize(k, edges) - 1
    b[k == edges[-1]] = len(edges) - 2
    ok = keep & (k > 0) & (b >= 0) & (b < len(edges) - 1)
    p = np.zeros_like(k)
    p[k > 0] = pk(k[k > 0])
    nb = len(edges) - 1
    cnt = np.bincount(b[ok], minlength=nb)
    expect = np.bincount(b[ok], weights=p[ok], minlength=nb) / cnt
    var = (
        np.bincount(b[ok], weights=(p[ok] ** 2) * np.where(selfconj[ok], 2.0, 1.0), minlength=nb)
        / cnt**2
    )
    np.testing.assert_array_equal(ds.n_modes.values, cnt)
    chi2 = float(np.sum((ds.P0.values - expect) ** 2 / var))
    assert sps.chi2.ppf(0.001, nb) < chi2 < sps.chi2.ppf(0.999, nb), (chi2, nb)
    # and a wrong normalisation (a factor 1.2) would be caught by the same statistic
    chi2_bad = float(np.sum((1.2 * ds.P0.values - expect) ** 2 / var))
    assert chi2_bad > sps.chi2.ppf(0.999, nb)


@pytest.fixture(scope="module")
def poisson_grids() -> dict[str, np.ndarray]:
    n, box = 32, 100.0
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, box, (2 * n**3, 3))
    g1 = deposit(pos, n, box, scheme="cic", dtype="float64")
    g2 = deposit(pos, n, box, scheme="cic", shift=0.5, dtype="float64")
    # the project's kernels and the small reference deposit agree (same cell-centre convention)
    np.testing.assert_allclose(g1, cic_deposit(pos, n, box), rtol=0, atol=1e-9)
    np.testing.assert_allclose(g2, cic_deposit(pos, n, box, shift=0.5), rtol=0, atol=1e-9)
    gi = irfftn(interlace(rfftn(g1), rfftn(g2), (n, n, n)), (n, n, n)).compute()
    return {"plain": g1, "interlaced": gi, "n_particles": np.array(len(pos)), "box": np.array(box)}


def _band(ds, lo: float, hi: float, sn: float) -> tuple[float, float]:
    """Mode-weighted mean of P/shot-noise for lo < k/k_Nyq <= hi, and its 1-sigma error."""
    kn = ds.attrs["k_nyquist"]
    sel = (ds.k.values > lo * kn) & (ds.k.values <= hi * kn)
    w = ds.n_modes.values[sel]
    return float(np.sum(ds.P0.values[sel] / sn * w) / w.sum()), 1.0 / math.sqrt(w.sum())


def test_poisson_shot_noise_is_one_over_n(tmp_path, poisson_grids) -> None:
    """Uniform random particles, CIC counts: compensated with Jing's alias sum, P(k) = 1/n flat
    at every k; the reported shot noise of the count Field is V / N exactly."""
    g = poisson_grids["plain"]
    box = float(poisson_grids["box"])
    npart = int(poisson_grids["n_particles"])
    url = str(tmp_path / "counts.zarr")
    write_array(
        url,
        g,
        chunks=(10, 12, 9),
        meta={"box_size": box, "kind": "halo_count", "units": "1", "provenance": {"mas": "CIC"}},
    )
    ds = power_spectrum(url, compensation="aliased", multipoles=(0,))
    sn = box**3 / npart
    assert ds.attrs["shot_noise"] == pytest.approx(sn, rel=1e-9)
    assert ds.attrs["mas"] == "CIC" and ds.attrs["contrast"] == "True"
    for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 1.8)):
        mean, err = _band(ds, lo, hi, sn)
        assert abs(mean - 1) < 4 * err, (lo, hi, mean, err)
    assert np.all(np.isfinite(ds.P0.values))


def test_interlacing_reduces_aliasing(poisson_grids) -> None:
    """With the plain sinc^2 compensation the aliased shot noise rises towards k_Nyq; the
    interlaced grid removes the odd images, leaving P = 1/n up to k_Nyq."""
    box = float(poisson_grids["box"])
    sn = box**3 / int(poisson_grids["n_particles"])
    res = {}
    for name in ("plain", "interlaced"):
        g = poisson_grids[name]
        ds = power_spectrum(g / g.mean() - 1, box_size=box, mas="CIC", multipoles=(0,))
        res[name] = _band(ds, 0.5, 1.0, sn)
    plain, err = res["plain"]
    inter, _ = res["interlaced"]
    assert plain - 1 > 8 * err, "non-interlaced CIC must show the alias excess"
    assert abs(inter - 1) < 4 * err
    assert abs(inter - 1) < 0.25 * abs(plain - 1)


def test_compare_spectra_definitions_and_sign() -> None:
    rng = np.random.default_rng(2)
    n, box = 16, 80.0
    true = gaussian_field(n, box, lambda k: 1e3 * k**-1.0, seed=3)
    noise = gaussian_field(n, box, lambda k: 2e2 + 0 * k, seed=4)
    pred = 0.8 * true + noise
    del rng
    ds = compare_spectra(
        da.from_array(pred, chunks=7),
        da.from_array(true, chunks=(5, 16, 3)),
        box_size=box,
        mas=None,
        mas_true=None,
    )
    pa = power_spectrum(pred, box_size=box, mas=None, multipoles=(0,)).P0.values
    pb = power_spectrum(true, box_size=box, mas=None, multipoles=(0,)).P0.values
    px = power_spectrum(
        pred, true, box_size=box, mas=None, mas_other=None, multipoles=(0,)
    ).P0.values
    np.testing.assert_allclose(ds.P_pred.values, pa, rtol=1e-12)
    np.testing.assert_allclose(ds.P_true.values, pb, rtol=1e-12)
    np.testing.assert_allclose(ds.P_cross.values, px, rtol=1e-12)
    np.testing.assert_allclose(ds.T.values, np.sqrt(pa / pb), rtol=1e-12)
    np.testing.assert_allclose(ds.r_c.values, px / np.sqrt(pa * pb), rtol=1e-12)
    np.testing.assert_allclose(ds.stochasticity.values, pb * (1 - (px**2 / (pa * pb))), rtol=1e-10)
    assert np.all(np.abs(ds.r_c.values) <= 1 + 1e-12)
    assert np.all(ds.r_c.values > 0.3)
    anti = compare_spectra(-true, true, box_size=box, mas=None, mas_true=None)
    np.testing.assert_allclose(anti.r_c.values, -1.0, rtol=1e-12)
    np.testing.assert_allclose(anti.stochasticity.values, 0.0, atol=1e-9 * np.nanmax(pb))
    assert np.isnan(ds.attrs["shot_noise_pred"])
    # helpers on plain numbers
    assert transfer_function(4.0, 1.0) == 2.0
    assert cross_correlation(-1.0, 1.0, 4.0) == -0.5
    assert stochasticity(2.0, 0.5) == 1.5


def test_contrast_scaling_and_units(tmp_path, box16) -> None:
    dens = 1.0 + 0.1 * box16.astype(np.float64)
    url = str(tmp_path / "rho.zarr")
    write_array(
        url,
        dens,
        chunks=6,
        meta={"box_size": 100.0, "kind": "density", "units": "Msun/h/(Mpc/h)^3"},
    )
    ds = power_spectrum(url, mas=None, multipoles=(0,))
    ref = pylians_pk(dens / dens.mean() - 1, 100.0, 0, 2)
    assert _rel(ds.P0.values, ref["P0"]) < 1e-10
    assert ds.P0.attrs["units"] == "(Mpc/h)^3"
    raw = power_spectrum(url, mas=None, multipoles=(0,), contrast=False)
    assert raw.P0.attrs["units"] == "(Msun/h/(Mpc/h)^3)^2 (Mpc/h)^3"
    assert _rel(raw.P0.values, pylians_pk(dens, 100.0, 0, 2)["P0"]) < 1e-10


def test_bins_options() -> None:
    box, n = 100.0, 16
    kf = 2 * np.pi / box
    e = kbins(box, n)
    assert e[0] == pytest.approx(kf) and e[-1] == pytest.approx(kmax_grid(box, n))
    assert len(e) - 1 == int(math.sqrt(3) * n / 2)
    np.testing.assert_allclose(np.diff(e)[:-1], kf)
    lg = kbins(box, n, log=True, nbins=5, kmin=0.1, kmax=0.5)
    np.testing.assert_allclose(lg, np.geomspace(0.1, 0.5, 6))
    lin = kbins(box, n, dk=2 * kf, kmax=10 * kf)
    np.testing.assert_allclose(lin / kf, [1, 3, 5, 7, 9, 10])
    # an edge exactly on an integer shell bins like Pylians' int(|k|/kF)
    plan = plan_bins(np.arange(1, 4) * kf, box)
    assert plan.bin_of_k2[1] == 0 and plan.bin_of_k2[4] == 1 and plan.bin_of_k2[9] == 1
    assert plan.bin_of_k2[0] == plan.nbins
    x = np.random.default_rng(0).standard_normal((n, n, n))
    ds = power_spectrum(x, box_size=box, bins=[0.1, 0.2, 0.4], multipoles=(0, 2))
    assert ds.sizes["bin"] == 2 and set(ds.data_vars) == {"P0", "P2"}
    fine = power_spectrum(x, box_size=box, bins=np.linspace(kf, 1.2 * kf, 5), multipoles=(0,))
    assert np.isnan(fine.P0.values[1]) and fine.n_modes.values[1] == 0


def test_bad_inputs_are_refused(tmp_path, box16) -> None:
    a = str(tmp_path / "a.zarr")
    b = str(tmp_path / "b.zarr")
    c = str(tmp_path / "c.zarr")
    gauss = {"kind": "delta", "units": "1", "mass_assignment": NO_WINDOW}
    write_array(a, box16, chunks=8, meta={"box_size": 100.0, **gauss})
    write_array(b, box16, chunks=8, meta={"box_size": 200.0, **gauss})
    write_array(c, box16[:8, :8, :8], chunks=8, meta={"box_size": 100.0, **gauss})
    with pytest.raises(MetadataError, match="different box sizes"):
        power_spectrum(a, b)
    with pytest.raises(ShapeError, match="different grids"):
        compare_spectra(a, c)
    with pytest.raises(ConfigError, match=r"sqrt\(3\) k_Nyq"):
        power_spectrum(a, bins=[0.1, 1.0])
    with pytest.raises(ConfigError, match="leave the range"):
        power_spectrum(a, bins=[0.0, 0.1])
    with pytest.raises(ConfigError, match="increasing"):
        power_spectrum(a, bins=[0.2, 0.1])
    with pytest.raises(ConfigError, match="multipoles"):
        power_spectrum(a, multipoles=(1,))
    with pytest.raises(ConfigError, match="line of sight"):
        power_spectrum(a, los="w")
    with pytest.raises(ConfigError, match="box_size"):
        power_spectrum(box16)
    with pytest.raises(ShapeError, match="cubic"):
        power_spectrum(np.zeros((8, 8, 4)), box_size=10.0)
    bad = box16.copy()
    bad[1, 2, 3] = np.inf
    with pytest.raises(NonFiniteError):
        power_spectrum(bad, box_size=100.0)
    with pytest.raises(NonFiniteError):
        power_spectrum(bad + 1.0, box_size=100.0, contrast=True)
