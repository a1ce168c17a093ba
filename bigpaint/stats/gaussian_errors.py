"""Gaussian error bars of binned spectra and of what is derived from them, by linear propagation.

Binned spectra. In a k bin of ``N`` independent modes, the estimated cross spectra of fields
``a, b, c, d`` (``P_ab = <Re(delta_a delta_b^*)>``) have, for Gaussian fields, the covariance

    Cov(P_ab, P_cd) = (P_ad P_bc + P_ac P_bd) / (2 N_eff),

which gives ``Var P_a = P_a^2 / N``, ``Var P_ab = (P_a P_b + P_ab^2) / (2N)``,
``Cov(P_a, P_b) = P_ab^2 / N``, ``Cov(P_a, P_ab) = P_a P_ab / N``. These are the familiar
``2 P^2 / N`` forms with ``N`` counted over the whole k sphere (each complex mode and its
conjugate): here ``N`` counts *independent complex modes*, as bigpaint's ``n_modes`` does
(:func:`bigpaint.mesh.kgrid.independent_modes`: one mode per conjugate pair, the half-complex
storage's ``k_z = 0`` and Nyquist planes de-duplicated). The few self-conjugate modes (every
component 0 or Nyquist) are real: their ``|delta|^2`` has twice the variance, so a bin holding
``N_r`` of them has ``N_eff = N^2 / (N + N_r)`` (:func:`effective_modes`); only bins reaching
``k_Nyq`` hold any.

Derived quantities. ``T``, ``r_c``, ``s``, their differences and mode-weighted averages are
smooth functions of the pair spectra of each bin; their variance is ``g^T C g`` with ``g``
the gradient with respect to the pair spectra and ``C`` the covariance above, evaluated at
the measured spectra, and bins are independent. :class:`PairSpectra` holds the spectra of one
set of fields and propagates any gradient given as ``{(a, b): per-bin array}``.

Bispectrum. For Gaussian fields, the FFT shell estimator averaged over ``N_tri`` closed,
ordered mode triplets (bigpaint's ``triangles``) has

    Cov(B_x, B_y) = s_123 V P_xy(k1) P_xy(k2) P_xy(k3) / N_tri

(``V`` the box volume; ``s_123`` = 1, 2 or 6 when none, two or all three shells coincide).
With ``N_tri ~ V_123 / k_F^6`` this is the usual ``s_123 V_f P1 P2 P3 / V_123`` up to the
Fourier convention; the leading, Gaussian term only, as in the halo-painting literature.

Why hand-written: the covariance of Gaussian spectra and its propagation are a few lines; no
library offers them for bigpaint's chunked estimators and mode counting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PairSpectra",
    "bispectrum_covariance",
    "combine",
    "cross_coefficient",
    "effective_modes",
    "real_modes_per_bin",
    "stochasticity",
    "transfer",
    "triangle_symmetry",
]

Pair = tuple[str, str]
Gradient = Mapping[Pair, np.ndarray]


def real_modes_per_bin(n: int, bin_of_k2: np.ndarray, nbins: int) -> np.ndarray:
    """Self-conjugate (real) modes per bin of a cubic grid of ``n`` cells.

    They are the modes whose every component is 0 or ``n/2`` (even ``n`` only), the DC mode
    excepted: 3 at ``k^2 = (n/2)^2``, 3 at ``2 (n/2)^2`` and 1 at ``3 (n/2)^2`` (units
    ``k_F^2``). ``bin_of_k2`` maps integer ``k^2`` to a bin (``nbins``: none), as
    :class:`bigpaint.stats.power.BinPlan` does.
    """
    out = np.zeros(nbins, dtype=np.int64)
    if n % 2:
        return out
    h2 = (n // 2) ** 2
    for mult, k2 in ((3, h2), (3, 2 * h2), (1, 3 * h2)):
        if k2 < len(bin_of_k2) and bin_of_k2[k2] < nbins:
            out[bin_of_k2[k2]] += mult
    return out


def effective_modes(n_modes: np.ndarray, n_real: np.ndarray) -> np.ndarray:
    """``N^2 / (N + N_r)``: the number of complex modes with the same variance of ``P``."""
    n = np.asarray(n_modes, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, n * n / (n + np.asarray(n_real, np.float64)), np.nan)


def _key(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class PairSpectra:
    """Binned auto and cross spectra of a set of fields, and their Gaussian covariance.

    Attributes
    ----------
    power : mapping
        ``{(a, b): P_ab per bin}`` for every pair of field names (either order); units
        (Mpc/h)^3.
    n_eff : numpy.ndarray
        Effective independent complex modes per bin (:func:`effective_modes`).
    """

    power: Mapping[Pair, np.ndarray]
    n_eff: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "power", {_key(*k): np.asarray(v) for k, v in self.power.items()})

    def P(self, a: str, b: str) -> np.ndarray:
        """``P_ab`` per bin."""
        return self.power[_key(a, b)]

    def cov(self, p: Pair, q: Pair) -> np.ndarray:
        """``Cov(P_p, P_q)`` per bin."""
        (a, b), (c, d) = p, q
        return (self.P(a, d) * self.P(b, c) + self.P(a, c) * self.P(b, d)) / (2.0 * self.n_eff)

    def covariance(self, g: Gradient, h: Gradient) -> np.ndarray:
        """Per-bin covariance of two derived quantities with gradients ``g`` and ``h``."""
        total = np.zeros_like(np.asarray(self.n_eff, np.float64))
        for p, gp in g.items():
            for q, hq in h.items():
                total = total + gp * hq * self.cov(_key(*p), _key(*q))
        return total

    def variance(self, g: Gradient) -> np.ndarray:
        """Per-bin variance of a derived quantity with gradient ``g``."""
        return self.covariance(g, g)


def combine(*terms: tuple[float | np.ndarray, Gradient]) -> dict[Pair, np.ndarray]:
    """``sum_i c_i g_i`` of gradients (pairs keyed in sorted order)."""
    out: dict[Pair, np.ndarray] = {}
    for c, g in terms:
        for p, v in g.items():
            k = _key(*p)
            out[k] = out.get(k, 0.0) + c * v
    return out


def transfer(
    s: PairSpectra, m: str, t: str, noise_m: float, noise_t: float
) -> tuple[np.ndarray, dict[Pair, np.ndarray]]:
    """``T = sqrt((P_m - N_m) / (P_t - N_t))`` and its gradient.

    ``N_m``, ``N_t`` are the shot-noise powers removed from each auto spectrum ((Mpc/h)^3;
    0 for a field without Poisson noise). NaN where either difference is not positive.
    """
    pm = s.P(m, m) - noise_m
    pt = s.P(t, t) - noise_t
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (pm > 0) & (pt > 0)
        T = np.where(ok, np.sqrt(np.abs(pm / pt)), np.nan)
        grad = {_key(m, m): T / (2 * pm), _key(t, t): -T / (2 * pt)}
    return T, grad


def _model_truth(
    s: PairSpectra, m: str, t: str, noise_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P_m - N_m`` (NaN where not positive), ``P_t`` and ``P_mt``."""
    pm = s.P(m, m) - noise_m
    return np.where(pm > 0, pm, np.nan), s.P(t, t), s.P(m, t)


def cross_coefficient(
    s: PairSpectra, m: str, t: str, noise_m: float = 0.0
) -> tuple[np.ndarray, dict[Pair, np.ndarray]]:
    """``r = P_mt / sqrt((P_m - N_m) P_t)`` (sign kept) and its gradient."""
    pm, pt, px = _model_truth(s, m, t, noise_m)
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(np.abs(pm * pt))
        r = px / root
        grad = {_key(m, t): 1.0 / root, _key(m, m): -r / (2 * pm), _key(t, t): -r / (2 * pt)}
    return r, grad


def stochasticity(
    s: PairSpectra, m: str, t: str, noise_m: float = 0.0
) -> tuple[np.ndarray, dict[Pair, np.ndarray]]:
    """``s = P_t (1 - r^2) = P_t - P_mt^2 / (P_m - N_m)`` ((Mpc/h)^3) and its gradient."""
    pm, pt, px = _model_truth(s, m, t, noise_m)
    with np.errstate(invalid="ignore", divide="ignore"):
        val = pt - px * px / pm
        grad = {
            _key(t, t): np.ones_like(pt),
            _key(m, t): -2 * px / pm,
            _key(m, m): px * px / (pm * pm),
        }
    return val, grad


def triangle_symmetry(k: tuple[float, float, float], width: float) -> float:
    """``s_123``: 6 when all three shells coincide, 2 when two do, else 1.

    Shells coincide when their centres are closer than half a shell width.
    """
    k1, k2, k3 = k
    same = [abs(a - b) < width / 2 for a, b in ((k1, k2), (k2, k3), (k1, k3))]
    if all(same):
        return 6.0
    return 2.0 if any(same) else 1.0


def bispectrum_covariance(
    p_xy: tuple[np.ndarray, np.ndarray, np.ndarray],
    volume: float,
    triangles: np.ndarray,
    symmetry: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Gaussian ``Cov(B_x, B_y) = s_123 V P_xy(k1) P_xy(k2) P_xy(k3) / N_tri`` ((Mpc/h)^12).

    Parameters
    ----------
    p_xy : three arrays
        Cross (or auto, for a variance) power of the two fields at ``k1``, ``k2``, ``k3``,
        in (Mpc/h)^3, including any shot noise the fields carry.
    volume : float
        Box volume in (Mpc/h)^3.
    triangles : array
        Closed ordered mode triplets of each configuration.
    symmetry : array or float
        ``s_123`` (:func:`triangle_symmetry`).
    """
    tri = np.asarray(triangles, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tri > 0, symmetry * volume * p_xy[0] * p_xy[1] * p_xy[2] / tri, np.nan)
