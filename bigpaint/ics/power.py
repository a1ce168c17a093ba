"""Linear matter power spectrum P(k, z): Eisenstein-Hu (colossus), CAMB, or a user table.

:func:`linear_power` evaluates the chosen source once on a logarithmic grid of ``k`` at
``z = 0`` and returns a :class:`LinearPower`: two small arrays and the :class:`Background`
(growth), picklable and cheap to send to every worker, evaluated by linear interpolation in
``(ln k, ln P)``. ``P(k, z) = D1(z)^2 P(k, 0)``.

Sources
-------
``eisenstein_hu``
    colossus's Eisenstein & Hu (1998) transfer function with baryon wiggles (the prescription
    of the halo-painting paper's simulations); ``eisenstein_hu_nowiggle`` the zero-baryon
    (smooth) variant. colossus normalises it to ``sigma_8``.
``camb``
    The linear CDM+baryon spectrum from CAMB (optional: ``pip install camb``; imported only
    when chosen), computed with massless neutrinos and rescaled to ``sigma_8``.
``table``
    A text file with two columns, ``k`` [h/Mpc] strictly increasing and ``P`` [(Mpc/h)^3] > 0,
    at redshift ``table_redshift``. With ``normalize: true`` it is rescaled to ``sigma_8``;
    otherwise its own ``sigma_8`` must agree with the cosmology's within 1%.

The normalisation is always checked: :func:`sigma_r` integrates the top-hat variance
``sigma^2(R) = int dln k k^3 P(k) W^2(kR) / (2 pi^2)`` on the table (Simpson's rule in
``ln k``), and a spectrum whose ``sigma_8`` misses the cosmology's by more than 1% is
refused. ``sigma_r`` is a few lines of numpy, written here so that the same integral checks
every source, whatever library produced it.

Units: ``k`` in h/Mpc, ``P`` in (Mpc/h)^3, ``R`` in Mpc/h.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bigpaint.errors import ConfigError, MissingDependencyError
from bigpaint.ics.cosmology import (
    Background,
    CosmologyConfig,
    as_cosmology,
    background,
    colossus_cosmology,
)

__all__ = [
    "LinearPower",
    "PowerConfig",
    "linear_power",
    "read_power_table",
    "sigma_r",
]

PowerSource = Literal["eisenstein_hu", "eisenstein_hu_nowiggle", "camb", "table"]

#: Relative tolerance of the sigma_8 check.
SIGMA8_RTOL = 0.01

_K_MIN, _K_MAX, _NK = 1e-5, 1e3, 4000


class PowerConfig(BaseModel):
    """Which linear power spectrum to use.

    Attributes
    ----------
    source : {"eisenstein_hu", "eisenstein_hu_nowiggle", "camb", "table"}
    table : str, optional
        Path of the ``k P`` table (``source: table``): k in h/Mpc, P in (Mpc/h)^3.
    table_redshift : float
        Redshift the table describes (it is scaled to z = 0 with ``D1``).
    normalize : bool
        Rescale a table to the cosmology's ``sigma_8`` (CAMB is always rescaled, colossus
        normalises Eisenstein-Hu itself). Without it, a table whose ``sigma_8`` differs by more
        than 1% is refused.
    camb_kmax : float
        Largest k [h/Mpc] CAMB computes; beyond it P is extrapolated as a power law.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: PowerSource = "eisenstein_hu"
    table: str | None = None
    table_redshift: float = Field(0.0, ge=0)
    normalize: bool = False
    camb_kmax: float = Field(50.0, gt=0)

    @model_validator(mode="after")
    def _table_given(self) -> PowerConfig:
        if self.source == "table":
            self.table_path()
        if self.source != "table" and self.table:
            raise ValueError(
                f"power.table is only read with source 'table', not {self.source!r}; remove it"
            )
        return self

    def table_path(self) -> str:
        """The path of the ``k P`` table (``source: table``), or a one-line ConfigError."""
        if not self.table:
            raise ConfigError("power.source 'table' needs power.table: the path of a k, P file")
        return self.table


@dataclass(frozen=True)
class LinearPower:
    """A tabulated linear power spectrum at z = 0 with its cosmology's growth.

    Attributes
    ----------
    k : numpy.ndarray
        Wavenumbers in h/Mpc (strictly increasing).
    p : numpy.ndarray
        ``P(k, z=0)`` in (Mpc/h)^3.
    background : Background
        Growth factors of the cosmology.
    cosmology : CosmologyConfig
    source : str
        Where the table came from.
    extrapolate : bool
        Whether ``k`` outside the table is extrapolated as a power law (built-in sources) or
        refused (user tables).
    """

    k: np.ndarray
    p: np.ndarray
    background: Background
    cosmology: CosmologyConfig
    source: str
    extrapolate: bool = True

    def __call__(self, k: Any, z: float = 0.0) -> np.ndarray:
        """``P(k, z)`` in (Mpc/h)^3 for ``k`` in h/Mpc (0 at ``k = 0``)."""
        k = np.asarray(k, dtype=np.float64)
        out = np.zeros(k.shape, np.float64)
        pos = k > 0
        kk = k[pos]
        if kk.size and not self.extrapolate and (kk.min() < self.k[0] or kk.max() > self.k[-1]):
            raise ConfigError(
                f"the power table covers k in [{self.k[0]:.4g}, {self.k[-1]:.4g}] h/Mpc, but "
                f"k in [{kk.min():.4g}, {kk.max():.4g}] h/Mpc is needed; extend the table"
            )
        lk, lp = np.log(self.k), np.log(self.p)
        x = np.log(kk)
        y = np.interp(x, lk, lp)
        lo, hi = x < lk[0], x > lk[-1]
        if lo.any():
            s = (lp[1] - lp[0]) / (lk[1] - lk[0])
            y[lo] = lp[0] + s * (x[lo] - lk[0])
        if hi.any():
            s = (lp[-1] - lp[-2]) / (lk[-1] - lk[-2])
            y[hi] = lp[-1] + s * (x[hi] - lk[-1])
        out[pos] = np.exp(y)
        if z:
            out *= float(self.background.growth_factor(z)) ** 2
        return out

    def sigma(self, R: float | Sequence[float], z: float = 0.0) -> np.ndarray:
        """rms linear fluctuation in top-hat spheres of radius ``R`` Mpc/h at ``z``."""
        s = sigma_r(self.k, self.p, R)
        return s * float(self.background.growth_factor(z)) if z else s

    @property
    def sigma_8(self) -> float:
        """``sigma(8 Mpc/h)`` at z = 0 of this table."""
        return float(self.sigma(8.0))


def sigma_r(k: np.ndarray, p: np.ndarray, R: float | Sequence[float]) -> np.ndarray:
    """Top-hat rms ``sigma(R)`` of a tabulated spectrum (Simpson's rule in ``ln k``).

    Parameters
    ----------
    k : array
        Wavenumbers in h/Mpc, increasing (log-spaced tables integrate best).
    p : array
        P(k) in (Mpc/h)^3.
    R : float or array
        Radii in Mpc/h.
    """
    from scipy.integrate import simpson

    k = np.asarray(k, np.float64)
    p = np.asarray(p, np.float64)
    r = np.atleast_1d(np.asarray(R, np.float64))
    x = k[None, :] * r[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(x > 1e-4, 3.0 * (np.sin(x) - x * np.cos(x)) / x**3, 1.0 - x**2 / 10.0)
    integrand = k**3 * p * w**2 / (2.0 * np.pi**2)
    out = np.sqrt(simpson(integrand, x=np.log(k), axis=-1))
    return out if np.ndim(R) else out[0]


def read_power_table(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a two-column ``k P`` text table (k in h/Mpc, P in (Mpc/h)^3), checked.

    Lines starting with ``#`` are comments; extra columns are refused.

    Raises
    ------
    ConfigError
        Missing file, not two numeric columns, fewer than 4 rows, non-finite values, ``k`` not
        strictly increasing or not positive, ``P`` not positive.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"power table {path} does not exist; give the path of a k, P text file")
    try:
        data = np.loadtxt(path, dtype=np.float64, comments="#", ndmin=2)
    except ValueError as exc:
        raise ConfigError(f"power table {path} is not a numeric text table ({exc})") from None
    if data.shape[1] != 2 or data.shape[0] < 4:
        raise ConfigError(
            f"power table {path} must have 2 columns (k [h/Mpc], P [(Mpc/h)^3]) and at least 4 "
            f"rows, got shape {data.shape}"
        )
    k, p = data[:, 0], data[:, 1]
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(p))):
        raise ConfigError(f"power table {path} holds NaN or inf values; clean it")
    if np.any(k <= 0) or np.any(p <= 0):
        raise ConfigError(f"power table {path}: k and P must be positive")
    bad = np.flatnonzero(np.diff(k) <= 0)
    if bad.size:
        i = int(bad[0])
        raise ConfigError(
            f"power table {path}: k is not strictly increasing (row {i + 2}: k = {k[i + 1]:g} "
            f"after {k[i]:g}); sort the table by k and drop duplicates"
        )
    return k, p


def _colossus_table(cosmo: CosmologyConfig, model: str) -> tuple[np.ndarray, np.ndarray]:
    col = colossus_cosmology(cosmo)
    k = np.logspace(np.log10(_K_MIN), np.log10(_K_MAX), _NK)
    return k, np.asarray(col.matterPowerSpectrum(k, 0.0, model=model), np.float64)


def _camb_table(cosmo: CosmologyConfig, kmax: float) -> tuple[np.ndarray, np.ndarray]:
    try:
        import camb
    except ImportError:
        raise MissingDependencyError(
            "power.source 'camb' needs CAMB: pip install 'camb>=1.5' (or use eisenstein_hu)"
        ) from None
    h = cosmo.h
    pars = camb.set_params(
        H0=100.0 * h,
        ombh2=cosmo.Omega_b * h**2,
        omch2=(cosmo.Omega_m - cosmo.Omega_b) * h**2,
        omk=0.0,
        mnu=0.0,
        num_massive_neutrinos=0,
        ns=cosmo.n_s,
        As=2.1e-9,
        TCMB=cosmo.T_cmb,
        WantTransfer=True,
    )
    pars.set_matter_power(redshifts=[0.0], kmax=kmax * h * 1.2, nonlinear=False)
    results = camb.get_results(pars)
    kh, _, pk = results.get_matter_power_spectrum(minkh=1e-4, maxkh=kmax, npoints=1000)
    return np.asarray(kh, np.float64), np.asarray(pk[0], np.float64)


def linear_power(
    cosmology: CosmologyConfig | dict[str, Any] | None = None,
    config: PowerConfig | dict[str, Any] | None = None,
    *,
    growth: Background | None = None,
) -> LinearPower:
    """The linear matter power spectrum of a cosmology, normalised and checked.

    Parameters
    ----------
    cosmology : CosmologyConfig or mapping, optional
        Default: :class:`CosmologyConfig` defaults.
    config : PowerConfig or mapping, optional
        Which source; default Eisenstein-Hu with wiggles.
    growth : Background, optional
        Reuse a tabulated background (else computed).

    Returns
    -------
    LinearPower

    Raises
    ------
    ConfigError
        Bad table, or a spectrum whose sigma_8 misses the cosmology's by more than 1%.
    MissingDependencyError
        colossus (or CAMB for ``source: camb``) not installed.
    """
    from bigpaint.config import parse_config

    cosmo = as_cosmology(cosmology)
    cfg = (
        config
        if isinstance(config, PowerConfig)
        else parse_config(PowerConfig, dict(config or {}), "power")
    )
    bg = growth if growth is not None else background(cosmo)
    extrapolate = True
    if cfg.source == "eisenstein_hu":
        k, p = _colossus_table(cosmo, "eisenstein98")
    elif cfg.source == "eisenstein_hu_nowiggle":
        k, p = _colossus_table(cosmo, "eisenstein98_zb")
    elif cfg.source == "camb":
        k, p = _camb_table(cosmo, cfg.camb_kmax)
        p = p * (cosmo.sigma_8 / float(sigma_r(k, p, 8.0))) ** 2
    else:
        k, p = read_power_table(cfg.table_path())
        extrapolate = False
        if cfg.table_redshift:
            p = p / float(bg.growth_factor(cfg.table_redshift)) ** 2
        if cfg.normalize:
            p = p * (cosmo.sigma_8 / float(sigma_r(k, p, 8.0))) ** 2
    got = float(sigma_r(k, p, 8.0))
    if abs(got / cosmo.sigma_8 - 1.0) > SIGMA8_RTOL:
        raise ConfigError(
            f"the {cfg.source} power spectrum has sigma_8 = {got:.4f}, the cosmology says "
            f"{cosmo.sigma_8}; set power.normalize: true to rescale it, or fix sigma_8"
        )
    return LinearPower(k, p, bg, cosmo, cfg.source, extrapolate)
