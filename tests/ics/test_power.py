"""Linear P(k): sources, sigma_8 normalisation check, tables and their errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bigpaint.errors import ConfigError, MissingDependencyError
from bigpaint.ics.cosmology import CosmologyConfig, colossus_cosmology
from bigpaint.ics.power import linear_power, read_power_table, sigma_r


def test_eisenstein_hu_is_normalised_to_sigma8(lp):
    assert lp.sigma_8 == pytest.approx(lp.cosmology.sigma_8, rel=1e-4)
    col = colossus_cosmology(lp.cosmology)
    radii = np.array([2.0, 8.0, 20.0, 50.0])
    np.testing.assert_allclose(lp.sigma(radii), col.sigma(radii, 0.0), rtol=2e-3)
    k = np.geomspace(1e-3, 10, 50)
    np.testing.assert_allclose(lp(k), col.matterPowerSpectrum(k, 0.0), rtol=1e-4)


def test_power_scales_with_growth(lp):
    k = np.geomspace(0.01, 1, 10)
    d = lp.background.growth_factor(2.0)
    np.testing.assert_allclose(lp(k, 2.0), d**2 * lp(k), rtol=1e-12)
    assert lp(np.array([0.0]))[0] == 0.0
    assert lp.sigma(8.0, 2.0) == pytest.approx(d * lp.sigma_8, rel=1e-12)


def test_sigma_r_matches_adaptive_quadrature():
    # a steep power law, integrated independently with scipy.quad
    from scipy.integrate import quad

    k = np.geomspace(1e-6, 1e4, 20000)
    p = 1e3 * k**-1.5

    def integrand(lnk, r):
        kk = np.exp(lnk)
        x = kk * r
        w = 3 * (np.sin(x) - x * np.cos(x)) / x**3
        return kk**3 * 1e3 * kk**-1.5 * w**2 / (2 * np.pi**2)

    want = np.sqrt(quad(integrand, np.log(1e-6), np.log(1e4), args=(8.0,), limit=500)[0])
    assert sigma_r(k, p, 8.0) == pytest.approx(want, rel=1e-4)


def test_table_source_equals_the_tabulated_spectrum(tmp_path, lp):
    k = np.geomspace(1e-4, 50, 800)
    path = tmp_path / "pk.txt"
    np.savetxt(path, np.c_[k, lp(k)], header="k [h/Mpc]  P [(Mpc/h)^3]")
    t = linear_power(lp.cosmology, {"source": "table", "table": str(path)})
    kk = np.geomspace(1e-3, 10, 40)
    np.testing.assert_allclose(t(kk), lp(kk), rtol=2e-3)
    # a table at z = 1 is scaled back to z = 0
    np.savetxt(path, np.c_[k, lp(k, 1.0)])
    t1 = linear_power(lp.cosmology, {"source": "table", "table": str(path), "table_redshift": 1.0})
    np.testing.assert_allclose(t1(kk), lp(kk), rtol=2e-3)
    # outside its range a user table is refused, not extrapolated
    with pytest.raises(ConfigError, match="extend the table"):
        t(np.array([100.0]))


def test_table_normalisation_is_checked(tmp_path, lp):
    k = np.geomspace(1e-4, 50, 800)
    path = tmp_path / "pk.txt"
    np.savetxt(path, np.c_[k, 2.0 * lp(k)])
    with pytest.raises(ConfigError, match=r"sigma_8 = 1\.17.*normalize"):
        linear_power(lp.cosmology, {"source": "table", "table": str(path)})
    t = linear_power(lp.cosmology, {"source": "table", "table": str(path), "normalize": True})
    assert t.sigma_8 == pytest.approx(lp.cosmology.sigma_8, rel=1e-6)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0.1 1\n0.2 2\n0.2 3\n0.4 1\n", "not strictly increasing.*row 3"),
        ("0.1 1\n0.3 2\n0.2 3\n0.4 1\n", "not strictly increasing"),
        ("0.1 1 3\n0.2 2 3\n0.3 3 3\n0.4 1 3\n", "2 columns"),
        ("0.1 1\n0.2 -2\n0.3 3\n0.4 1\n", "must be positive"),
        ("0.1 1\n0.2 nan\n0.3 3\n0.4 1\n", "NaN"),
        ("0.1 1\n0.2 2\n", "at least 4 rows"),
        ("k P\n0.1 1\n", "not a numeric"),
    ],
)
def test_bad_tables_are_refused(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_power_table(path)


def test_config_errors():
    with pytest.raises(ConfigError, match=r"needs power\.table"):
        linear_power(None, {"source": "table"})
    with pytest.raises(ConfigError, match="does not exist"):
        linear_power(None, {"source": "table", "table": "/nonexistent/pk.txt"})
    with pytest.raises(ConfigError, match="source"):
        linear_power(None, {"source": "bbks"})


def test_camb_missing_gives_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "camb", None)
    with pytest.raises(MissingDependencyError, match="pip install"):
        linear_power(None, {"source": "camb"})


def test_camb_spectrum_is_normalised_and_close_to_eisenstein_hu(lp):
    pytest.importorskip("camb")
    c = linear_power(CosmologyConfig(), {"source": "camb"})
    assert c.sigma_8 == pytest.approx(lp.cosmology.sigma_8, rel=1e-6)
    k = np.geomspace(0.005, 1.0, 30)
    # Eisenstein-Hu is a fit to the Boltzmann transfer function: a few per cent apart
    np.testing.assert_allclose(c(k), lp(k), rtol=0.08)
