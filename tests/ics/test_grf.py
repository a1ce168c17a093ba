"""Gaussian random fields: seed-only dependence, the input P(k), fixed and paired variants."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ConfigError, FieldExistsError
from bigpaint.field import open_field
from bigpaint.ics.grf import gaussian_field, gaussian_field_array, linear_modes
from bigpaint.ics.noise import white_noise_array
from bigpaint.stats.power import power_spectrum
from bigpaint.testing import regular_chunks


def reference_field(n, box, seed, tile, power, z=0.0, fixed=False):
    """Independent numpy implementation: noise -> np.fft -> sqrt(P / V_cell) -> inverse."""
    w = white_noise_array((n, n, n), (slice(0, n),) * 3, seed=seed, tile=tile, dtype="f8")
    wk = np.fft.rfftn(w)
    kx = 2 * np.pi * np.fft.fftfreq(n, d=box / n)
    kz = 2 * np.pi * np.fft.rfftfreq(n, d=box / n)
    k = np.sqrt(kx[:, None, None] ** 2 + kx[None, :, None] ** 2 + kz[None, None, :] ** 2)
    amp = np.sqrt(power(k, z) / (box / n) ** 3)
    amp[0, 0, 0] = 0.0
    if fixed:
        wk = wk / np.abs(wk) * np.sqrt(n**3)
    return np.fft.irfftn(wk * amp, s=(n, n, n), axes=(0, 1, 2))


def _read(url):
    return open_field(url)["delta"].values


def test_equals_independent_numpy_reference(tmp_path, lp):
    ref = reference_field(32, 150.0, 5, 16, lp, z=0.5)
    mem = gaussian_field_array(32, 150.0, seed=5, power=lp, tile=16, redshift=0.5)
    np.testing.assert_allclose(mem, ref, atol=1e-12 * ref.std())
    w = gaussian_field(
        str(tmp_path / "d.zarr"), grid=32, box_size=150.0, seed=5, power=lp, tile=16,
        redshift=0.5, chunks=(7, 32, 11), precision="double", dtype="float64",
    )  # fmt: skip
    np.testing.assert_allclose(_read(w.url), ref, atol=1e-12 * ref.std())
    meta = open_field(w.url).attrs
    assert meta["redshift"] == 0.5 and meta["cosmology"]["sigma_8"] == lp.cosmology.sigma_8


@given(chunks=regular_chunks((32, 32, 32), min_size=3), seed=st.integers(0, 2**31))
@settings(max_examples=6)
def test_bit_identical_for_any_chunking(tmp_path_factory, lp, chunks, seed):
    tmp = tmp_path_factory.mktemp("grf")
    kw = {"grid": 32, "box_size": 100.0, "seed": seed, "power": lp, "tile": 16}
    a = gaussian_field(str(tmp / "a.zarr"), chunks=chunks, **kw)
    b = gaussian_field(str(tmp / "b.zarr"), chunks=32, **kw)
    np.testing.assert_array_equal(_read(a.url), _read(b.url))
    ref = reference_field(32, 100.0, seed, 16, lp)
    np.testing.assert_allclose(_read(a.url), ref, atol=2e-5 * ref.std())


def test_same_field_on_distributed_workers(tmp_path, lp):
    from bigpaint.cluster import connect
    from bigpaint.config import LocalClusterConfig

    kw = {"grid": 32, "box_size": 100.0, "seed": 11, "power": lp, "tile": 16}
    local = gaussian_field(str(tmp_path / "l.zarr"), chunks=(9, 32, 5), **kw)
    with connect(LocalClusterConfig(n_workers=2, memory_limit="2GiB")):
        dist = gaussian_field(str(tmp_path / "d.zarr"), chunks=(16, 11, 32), **kw)
        got = _read(dist.url)
    np.testing.assert_array_equal(got, _read(local.url))


def _expected_bin_power(ps, n, box, power, z):
    """Mean of P(|k|) over the grid modes of each bin (the estimator's expectation)."""
    kx = 2 * np.pi * np.fft.fftfreq(n, d=box / n)
    k = np.sqrt(kx[:, None, None] ** 2 + kx[None, :, None] ** 2 + kx[None, None, :] ** 2).ravel()
    pk = power(k, z)
    lo, hi = ps["k_lo"].values, ps["k_hi"].values
    return np.array([pk[(k >= a) & (k < b)].mean() for a, b in zip(lo, hi, strict=True)])


@pytest.mark.parametrize("redshift", [0.0, 3.0])
def test_measured_power_matches_input_within_cosmic_variance(tmp_path, lp, redshift):
    n, box = 64, 500.0
    w = gaussian_field(
        str(tmp_path / "g.zarr"), grid=n, box_size=box, seed=2024, power=lp, tile=32,
        redshift=redshift, chunks=(24, 40, 64),
    )  # fmt: skip
    ps = power_spectrum(w.url, mas=None)
    kny = np.pi * n / box
    sel = ps["k_hi"].values <= kny
    ps = ps.isel(bin=np.flatnonzero(sel))
    want = _expected_bin_power(ps, n, box, lp, redshift)
    ratio = ps["P0"].values / want
    nm = ps["n_modes"].values
    chi2 = float(np.sum(nm * (ratio - 1) ** 2))  # each mode's |delta_k|^2 has variance P^2
    dof = len(nm)
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)
    mean = float(np.sum(nm * ratio) / nm.sum())
    assert abs(mean - 1) < 4 / np.sqrt(nm.sum())


def test_fixed_amplitude_has_exactly_the_input_power(tmp_path, lp):
    n, box = 32, 200.0
    w = gaussian_field(
        str(tmp_path / "f.zarr"), grid=n, box_size=box, seed=3, power=lp, tile=16,
        fixed_amplitude=True, precision="double", dtype="float64", chunks=(10, 32, 32),
    )  # fmt: skip
    d = _read(w.url)
    np.testing.assert_allclose(
        d, reference_field(n, box, 3, 16, lp, fixed=True), atol=1e-12 * d.std()
    )
    dk = np.fft.rfftn(d)
    kx = 2 * np.pi * np.fft.fftfreq(n, d=box / n)
    kz = 2 * np.pi * np.fft.rfftfreq(n, d=box / n)
    k = np.sqrt(kx[:, None, None] ** 2 + kx[None, :, None] ** 2 + kz[None, None, :] ** 2)
    p = np.abs(dk) ** 2 * box**3 / n**6
    nz = k > 0
    # every mode carries P(k) exactly, except the Nyquist modes irfftn keeps real
    inner = (
        nz
        & (np.abs(kx)[:, None, None] < np.pi * n / box)
        & (np.abs(kx)[None, :, None] < np.pi * n / box)
        & (kz[None, None, :] < np.pi * n / box)
    )
    np.testing.assert_allclose(p[inner], lp(k[inner]), rtol=1e-9)


def test_paired_field_is_the_negative(tmp_path, lp):
    kw = {"grid": 32, "box_size": 100.0, "seed": 8, "power": lp, "tile": 16, "chunks": 16}
    a = _read(gaussian_field(str(tmp_path / "a.zarr"), **kw).url)
    b = _read(gaussian_field(str(tmp_path / "b.zarr"), paired=True, **kw).url)
    np.testing.assert_array_equal(b, -a)
    c = _read(gaussian_field(str(tmp_path / "c.zarr"), paired=True, fixed_amplitude=True, **kw).url)
    d = _read(gaussian_field(str(tmp_path / "d.zarr"), fixed_amplitude=True, **kw).url)
    np.testing.assert_array_equal(c, -d)


def test_lazy_modes_equal_numpy(lp):
    fk = linear_modes(32, 100.0, seed=4, power=lp, tile=16, precision="double").compute()
    want = np.fft.rfftn(reference_field(32, 100.0, 4, 16, lp))
    np.testing.assert_allclose(fk, want, atol=1e-10 * np.abs(want).max())


def test_resume_rewrites_only_missing_blocks(tmp_path, lp):
    kw = {"grid": 32, "box_size": 100.0, "seed": 1, "power": lp, "tile": 16, "chunks": 16}
    url = str(tmp_path / "r.zarr")
    gaussian_field(url, **kw)
    full = _read(url)
    g = zarr.open_group(url, mode="r+")  # simulate a run killed before block (1, 0, 1)
    g["delta"][16:32, 0:16, 16:32] = 0.0
    g["_bigpaint/done"][1, 0, 1] = 0
    g.attrs["bigpaint_complete"] = False
    gaussian_field(url, **kw)
    np.testing.assert_array_equal(_read(url), full)


def test_bad_inputs_are_refused(tmp_path, lp):
    url = str(tmp_path / "x.zarr")
    with pytest.raises(ConfigError, match="not divisible by the noise tile 32"):
        gaussian_field(url, grid=48, box_size=100.0, seed=0, power=lp, tile=32)
    with pytest.raises(ConfigError, match="seed"):
        gaussian_field(url, grid=32, box_size=100.0, seed=-1, power=lp)
    with pytest.raises(ConfigError, match="box_size"):
        gaussian_field(url, grid=32, box_size=-1.0, seed=0, power=lp)
    with pytest.raises(ConfigError, match="precision"):
        gaussian_field(url, grid=32, box_size=100.0, seed=0, power=lp, precision="half")
    assert not (tmp_path / "x.zarr").exists()
    gaussian_field(url, grid=32, box_size=100.0, seed=0, power=lp, chunks=32)
    with pytest.raises(FieldExistsError):
        gaussian_field(url, grid=32, box_size=100.0, seed=1, power=lp, chunks=32)


def test_a_registered_fft_backend_makes_the_same_modes(lp, monkeypatch):
    """A backend registered by name (not slab or pencil) gets input chunks too: the noise
    used to be planned as that backend's decomposition and refused by the FFT planner."""
    from bigpaint.mesh import fft

    monkeypatch.setitem(fft._BACKENDS, "registered-slab", fft._BACKENDS["slab"])
    kw = {"seed": 4, "power": lp, "tile": 8, "precision": "double"}
    got = linear_modes(16, 100.0, backend="registered-slab", **kw).compute()
    np.testing.assert_array_equal(got, linear_modes(16, 100.0, **kw).compute())
