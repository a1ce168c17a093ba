"""Cosmology parameters are checked; growth factors agree with colossus and with theory."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from bigpaint.config import parse_config
from bigpaint.errors import ConfigError
from bigpaint.ics.cosmology import CosmologyConfig, as_cosmology, background, colossus_cosmology


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"Omega_m": 0.0}, "Omega_m must be in"),
        ({"Omega_m": -0.3}, "Omega_m must be in"),
        ({"sigma_8": 0.0}, "sigma_8 must be positive"),
        ({"sigma_8": -0.8}, "sigma_8 must be positive"),
        ({"h": 0.0}, "h must be in"),
        ({"n_s": -1.0}, "n_s must be in"),
        ({"Omega_b": 0.4, "Omega_m": 0.3}, "Omega_b must be in"),
        ({"Omega_m": float("nan")}, "Omega_m"),
        ({"sigma8": 0.8}, "unknown key 'sigma8'.*did you mean 'sigma_8'"),
    ],
)
def test_unphysical_cosmology_is_refused_in_one_line(params, match):
    with pytest.raises(ConfigError, match=match) as info:
        as_cosmology(params)
    assert "\n" not in str(info.value)
    with pytest.raises((ValidationError, ConfigError)):
        CosmologyConfig(**params)


def test_config_roundtrip_to_field_cosmology():
    cfg = parse_config(CosmologyConfig, {"Omega_m": 0.3, "sigma_8": 0.8}, "x")
    fc = cfg.to_field()
    assert (fc.Omega_m, fc.sigma_8, fc.h) == (0.3, 0.8, cfg.h)
    assert as_cosmology(fc) == cfg


def test_linear_growth_agrees_with_colossus():
    cosmo = CosmologyConfig(Omega_m=0.3, Omega_b=0.045, h=0.7, sigma_8=0.8)
    bg = background(cosmo)
    col = colossus_cosmology(cosmo)
    a = np.linspace(0.005, 1.0, 200)
    np.testing.assert_allclose(bg.D1(a), col.growthFactor(1 / a - 1), rtol=5e-5)
    # colossus's growth-rate derivative exists only on its interpolation table
    from colossus.cosmology import cosmology as ccosmo

    coli = ccosmo.Cosmology(
        name="t", flat=True, H0=70.0, Om0=0.3, Ob0=0.045, sigma8=0.8, ns=0.9624,
        relspecies=False, persistence="",
    )  # fmt: skip
    a = np.linspace(0.02, 1.0, 100)
    z = 1 / a - 1
    f = -(1 + z) * coli.growthFactor(z, derivative=1) / coli.growthFactor(z)
    np.testing.assert_allclose(bg.f1(a), f, rtol=1e-3)
    assert bg.growth_factor(0.0) == pytest.approx(1.0, abs=1e-7)
    assert bg.growth_rate(0.0) == pytest.approx(0.3**0.55, rel=0.01)


def test_einstein_de_sitter_growth_is_exact():
    bg = background({"Omega_m": 1.0, "Omega_b": 0.05})
    a = np.geomspace(0.002, 1.2, 50)
    np.testing.assert_allclose(bg.D1(a), a, rtol=1e-6)
    np.testing.assert_allclose(bg.f1(a), 1.0, rtol=1e-6)
    np.testing.assert_allclose(bg.D2(a), -3.0 / 7.0 * a**2, rtol=2e-6)
    np.testing.assert_allclose(bg.f2(a), 2.0, rtol=1e-6)


def test_second_order_growth_follows_bouchet_in_lcdm():
    bg = background(CosmologyConfig(Omega_m=0.25, Omega_b=0.04))
    a = np.geomspace(0.01, 1.0, 40)
    approx = -3.0 / 7.0 * bg.D1(a) ** 2 * bg.Omega_m_at(a) ** (-1.0 / 143.0)
    np.testing.assert_allclose(bg.D2(a), approx, rtol=0.01)
    np.testing.assert_allclose(bg.f2(a), 2 * bg.Omega_m_at(a) ** (6.0 / 11.0), rtol=0.01)
    assert np.all(bg.D2(a) / bg.D1(a) ** 2 < -0.42)  # D2 ~ -3/7 D1^2, slightly more negative


def test_fastpm_growth_factors_are_consistent():
    bg = background()
    a = np.linspace(0.05, 1.0, 30)
    h = 2e-3  # central differences across many table steps
    # gf = dGf/da and gp = dD1/da (the linear-growth ODE FastPM's kick and drift rely on)
    np.testing.assert_allclose((bg.Gf(a + h) - bg.Gf(a - h)) / (2 * h), bg.gf(a), rtol=1e-4)
    np.testing.assert_allclose((bg.D1(a + h) - bg.D1(a - h)) / (2 * h), bg.gp(a), rtol=1e-4)


def test_redshift_outside_tables_is_refused():
    bg = background()
    with pytest.raises(ConfigError, match="outside the growth table"):
        bg.growth_factor(2000.0)
