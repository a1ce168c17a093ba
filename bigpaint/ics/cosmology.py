"""Cosmology for initial conditions: a validated parameter set and the growth of structure.

:class:`CosmologyConfig` holds the flat LCDM parameters that initial conditions need and
refuses unphysical ones with a one-line error. :func:`background` turns them into a
:class:`Background`: the expansion rate ``E(a) = H(a) / H0`` and the first- and second-order
growth factors ``D1``, ``D2`` with their logarithmic rates ``f1``, ``f2``, tabulated once on a
fine grid of ``ln a`` so that the object is a few small numpy arrays (picklable, sent to
workers, evaluated by interpolation).

Where the numbers come from
---------------------------
All four growth functions come from one integration of the growth equations in ``ln a``
(Bouchet et al. 1995)::

    D1'' + (2 + dln E/dln a) D1' - 3/2 Omega_m(a) D1 = 0
    D2'' + (2 + dln E/dln a) D2' - 3/2 Omega_m(a) D2 = -3/2 Omega_m(a) D1^2

started deep in matter domination on the growing modes ``D1 = a``, ``D2 = -3/7 a^2``, and
normalised with ``D1(a=1) = 1``; ``f = D'/D``. Why not colossus alone: colossus gives ``D1``
but not ``D2`` (no well-kept library does), its exact ``D1`` has no derivative (so no ``f1``)
and loses accuracy above z ~ 250, and its interpolated ``D1`` is good to only ~3e-5. The
integration here is checked against colossus in the tests (``D1`` to 3e-5 for z < 200, ``f1``
to 1e-3), and ``D2`` is exactly ``-3/7 D1^2`` in an Einstein-de Sitter universe and within a
percent of ``-3/7 D1^2 Omega_m(a)^(-1/143)`` in LCDM. colossus provides the power spectrum
(:mod:`bigpaint.ics.power`) and the halo mass functions the simulations are checked against.

The background is flat matter + Lambda (no radiation, no massive neutrinos), the model the
particle-mesh solver in :mod:`bigpaint.sim.pm` integrates, so growth and dynamics agree.

Units: ``h`` is H0 / (100 km/s/Mpc); wavenumbers are h/Mpc, lengths Mpc/h.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bigpaint.errors import ConfigError, MissingDependencyError
from bigpaint.field import Cosmology

__all__ = [
    "Background",
    "CosmologyConfig",
    "as_cosmology",
    "background",
    "colossus_cosmology",
]

#: Range of the growth tables in scale factor (z from 999 to 0 and a little beyond).
A_MIN = 1e-3
A_MAX = 1.25
#: Table points in ln a (linear interpolation between them is good to ~1e-7).
_N_TABLE = 8000


class CosmologyConfig(BaseModel):
    """Flat LCDM parameters for initial conditions (checked for physical sense).

    Attributes
    ----------
    Omega_m : float
        Matter density today (cold dark matter + baryons), ``0 < Omega_m <= 1``.
    Omega_b : float
        Baryon density today, ``0 <= Omega_b < Omega_m`` (shapes the Eisenstein-Hu P(k)).
    h : float
        H0 / (100 km/s/Mpc).
    n_s : float
        Scalar spectral index.
    sigma_8 : float
        rms linear density fluctuation today in spheres of 8 Mpc/h (> 0).
    T_cmb : float
        CMB temperature today in K (enters the transfer function only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    Omega_m: float = 0.3175
    Omega_b: float = 0.049
    h: float = 0.6711
    n_s: float = 0.9624
    sigma_8: float = 0.834
    T_cmb: float = Field(2.7255, gt=0)

    @field_validator("Omega_m")
    @classmethod
    def _omega_m(cls, v: float) -> float:
        if not (np.isfinite(v) and 0 < v <= 1):
            raise ValueError(f"Omega_m must be in (0, 1] (matter density today, e.g. 0.3), got {v}")
        return v

    @field_validator("sigma_8")
    @classmethod
    def _sigma_8(cls, v: float) -> float:
        if not (np.isfinite(v) and 0 < v < 3):
            raise ValueError(
                f"sigma_8 must be positive (rms fluctuation in 8 Mpc/h spheres, e.g. 0.8), got {v}"
            )
        return v

    @field_validator("h")
    @classmethod
    def _h(cls, v: float) -> float:
        if not (np.isfinite(v) and 0 < v < 2):
            raise ValueError(f"h must be in (0, 2) (H0 / 100 km/s/Mpc, e.g. 0.67), got {v}")
        return v

    @field_validator("n_s")
    @classmethod
    def _n_s(cls, v: float) -> float:
        if not (np.isfinite(v) and 0 < v < 2):
            raise ValueError(f"n_s must be in (0, 2) (spectral index, e.g. 0.965), got {v}")
        return v

    @model_validator(mode="after")
    def _baryons(self) -> CosmologyConfig:
        if not (np.isfinite(self.Omega_b) and 0 <= self.Omega_b < self.Omega_m):
            raise ValueError(
                f"Omega_b must be in [0, Omega_m = {self.Omega_m}) (baryons are part of the "
                f"matter), got {self.Omega_b}"
            )
        return self

    def to_field(self) -> Cosmology:
        """The parameters as the :class:`bigpaint.field.Cosmology` stored with Fields."""
        return Cosmology(
            Omega_m=self.Omega_m,
            Omega_b=self.Omega_b,
            h=self.h,
            n_s=self.n_s,
            sigma_8=self.sigma_8,
        )


def as_cosmology(cosmology: CosmologyConfig | Cosmology | dict[str, Any] | None) -> CosmologyConfig:
    """Validate anything cosmology-like into a :class:`CosmologyConfig` (one-line errors)."""
    from pydantic import ValidationError

    from bigpaint.config import parse_config

    if cosmology is None:
        return CosmologyConfig()
    if isinstance(cosmology, CosmologyConfig):
        return cosmology
    if isinstance(cosmology, Cosmology):
        cosmology = cosmology.model_dump()
    try:
        return parse_config(CosmologyConfig, dict(cosmology), "cosmology")
    except ValidationError as exc:  # pragma: no cover - parse_config converts these
        raise ConfigError(str(exc)) from None


def colossus_cosmology(cosmo: CosmologyConfig, *, interpolation: bool = False) -> Any:
    """A colossus ``Cosmology`` for these parameters (flat, matter + Lambda, no files written).

    ``interpolation=False`` (exact integrals) for tables; ``True`` where colossus needs its
    interpolation tables (derivatives of sigma, hence mass functions).

    Raises
    ------
    MissingDependencyError
        When colossus is not installed.
    """
    try:
        from colossus.cosmology import cosmology as ccosmo
    except ImportError:
        raise MissingDependencyError(
            "linear power and growth need colossus: pip install 'colossus>=1.3'"
        ) from None
    return ccosmo.Cosmology(
        name="bigpaint",
        flat=True,
        H0=100.0 * cosmo.h,
        Om0=cosmo.Omega_m,
        Ob0=cosmo.Omega_b,
        sigma8=cosmo.sigma_8,
        ns=cosmo.n_s,
        Tcmb0=cosmo.T_cmb,
        relspecies=False,
        interpolation=interpolation,
        persistence="",
        print_warnings=False,
    )


@dataclass(frozen=True)
class Background:
    """Expansion and growth of a flat matter + Lambda universe, tabulated in ``ln a``.

    Every method takes the scale factor ``a`` (scalar or array) and returns float64.
    ``D1`` is normalised to 1 at ``a = 1``; ``D2`` is the second-order growth factor in the
    same normalisation (``D2 ~ -3/7 D1^2``).

    Attributes
    ----------
    Omega_m : float
        Matter density today.
    ln_a : numpy.ndarray
        Table abscissa.
    table : numpy.ndarray
        Rows ``ln D1, f1, D2, f2`` on ``ln_a``.
    """

    Omega_m: float
    ln_a: np.ndarray
    table: np.ndarray

    def _at(self, row: int, a: Any) -> np.ndarray:
        la = np.log(np.asarray(a, dtype=np.float64))
        if np.any(la < self.ln_a[0] - 1e-12) or np.any(la > self.ln_a[-1] + 1e-12):
            raise ConfigError(
                f"scale factor outside the growth table [{A_MIN}, {A_MAX}] (z from "
                f"{1 / A_MIN - 1:.0f} to {1 / A_MAX - 1:.2f}); choose a redshift in that range"
            )
        return np.interp(la, self.ln_a, self.table[row])

    def E(self, a: Any) -> np.ndarray:
        """``H(a) / H0 = sqrt(Omega_m a^-3 + 1 - Omega_m)``."""
        a = np.asarray(a, dtype=np.float64)
        return np.sqrt(self.Omega_m * a**-3 + (1.0 - self.Omega_m))

    def Omega_m_at(self, a: Any) -> np.ndarray:
        """Matter density parameter at ``a``."""
        a = np.asarray(a, dtype=np.float64)
        return self.Omega_m * a**-3 / self.E(a) ** 2

    def D1(self, a: Any) -> np.ndarray:
        """Linear growth factor, 1 today (colossus)."""
        return np.exp(self._at(0, a))

    def f1(self, a: Any) -> np.ndarray:
        """Linear growth rate ``dln D1 / dln a``."""
        return self._at(1, a)

    def D2(self, a: Any) -> np.ndarray:
        """Second-order growth factor (negative, ``~ -3/7 D1^2``)."""
        return self._at(2, a)

    def f2(self, a: Any) -> np.ndarray:
        """Second-order growth rate ``dln D2 / dln a`` (``~ 2 Omega_m(a)^(6/11)``)."""
        return self._at(3, a)

    def gp(self, a: Any) -> np.ndarray:
        """``dD1/da = f1 D1 / a`` (FastPM's ``g_p``: the drift's growth derivative)."""
        a = np.asarray(a, dtype=np.float64)
        return self.f1(a) * self.D1(a) / a

    def Gf(self, a: Any) -> np.ndarray:
        """``a^3 E dD1/da = a^2 E f1 D1`` (FastPM's ``G_f``: linear momentum per unit psi1)."""
        a = np.asarray(a, dtype=np.float64)
        return a**2 * self.E(a) * self.f1(a) * self.D1(a)

    def gf(self, a: Any) -> np.ndarray:
        """``dG_f/da = 3/2 Omega_m D1 / (a^2 E)`` (the linear growth equation)."""
        a = np.asarray(a, dtype=np.float64)
        return 1.5 * self.Omega_m * self.D1(a) / (a**2 * self.E(a))

    def growth_factor(self, z: Any) -> np.ndarray:
        """``D1`` at redshift ``z``."""
        return self.D1(1.0 / (1.0 + np.asarray(z, dtype=np.float64)))

    def growth_rate(self, z: Any) -> np.ndarray:
        """``f1`` at redshift ``z``."""
        return self.f1(1.0 / (1.0 + np.asarray(z, dtype=np.float64)))


def _growth_ode(
    omega_m: float, ln_a: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integrate D1 and D2 in ``ln a`` from deep matter domination: ``D1, f1, D2, f2``, unnormalised."""
    from scipy.integrate import solve_ivp

    def rhs(la: float, y: np.ndarray) -> np.ndarray:
        a = np.exp(la)
        e2 = omega_m * a**-3 + 1.0 - omega_m
        om = omega_m * a**-3 / e2
        dlne = -1.5 * om  # dln E / dln a for matter + Lambda
        d1, d1p, d2, d2p = y
        return np.array(
            [
                d1p,
                -(2.0 + dlne) * d1p + 1.5 * om * d1,
                d2p,
                -(2.0 + dlne) * d2p + 1.5 * om * (d2 - d1 * d1),
            ]
        )

    a0 = np.exp(ln_a[0]) * 1e-2  # start 100x earlier, on the growing modes
    y0 = np.array([a0, a0, -3.0 / 7.0 * a0**2, -6.0 / 7.0 * a0**2])
    sol = solve_ivp(
        rhs,
        (np.log(a0), ln_a[-1]),
        y0,
        t_eval=ln_a,
        method="DOP853",
        rtol=1e-11,
        atol=1e-16,
    )
    d1, d1p, d2, d2p = sol.y
    return d1, d1p / d1, d2, d2p / d2


def background(cosmology: CosmologyConfig | Cosmology | dict[str, Any] | None = None) -> Background:
    """Tabulate expansion and growth for a cosmology (about a second, once per run).

    Parameters
    ----------
    cosmology : CosmologyConfig, Cosmology or mapping, optional
        Default: :class:`CosmologyConfig` defaults.

    Returns
    -------
    Background
    """
    cosmo = as_cosmology(cosmology)
    ln_a = np.linspace(np.log(A_MIN), np.log(A_MAX), _N_TABLE)
    d1, f1, d2, f2 = _growth_ode(cosmo.Omega_m, ln_a)
    norm = np.interp(0.0, ln_a, d1)
    table = np.stack([np.log(d1 / norm), f1, d2 / norm**2, f2])
    return Background(cosmo.Omega_m, ln_a, table)
