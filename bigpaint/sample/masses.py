"""Masses inside a mass bin: the inverse CDF of the bin's mass function.

A channel of a painted count Field says how many halos with ``M_lo <= M < M_hi`` a cell
holds, not which masses. Each sampled halo gets a mass drawn from ``dn/dlnM`` restricted to
its bin, by inverting the cumulative distribution at the halo's own uniform (so a mass is a
pure function of that uniform). Two shapes are offered:

- ``model`` (the default): the halo mass function of the painted Field's cosmology and
  redshift from colossus (:func:`bigpaint.sim.fof.model_mass_function`; Watson et al. 2013
  "The halo mass function through the cosmic ages", arXiv:1212.0095, FoF, the definition of
  the halos ``bigpaint simulate`` counts). The CDF is tabulated on 257 points per bin,
  uniform in ``ln M``, integrated with the trapezoid rule and inverted by linear
  interpolation in ``ln M``.
- a power law ``dn/dlnM ∝ M^-slope`` (``slope`` a number), inverted exactly. ``slope = 0``
  is uniform in ``ln M``.

Either way every mass lies in ``[M_lo, M_hi)``. Within a bin the painted Field carries no
information about the shape, so the choice is a modelling assumption: a bin narrower than
the scale over which ``dn/dlnM`` bends makes it matter little.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from bigpaint.errors import ConfigError, MetadataError

__all__ = ["BinMasses", "bin_masses"]

_TABLE = 257


class BinMasses:
    """Inverse CDFs of the mass function inside each bin of ``edges`` (Msun/h)."""

    def __init__(self, edges: np.ndarray, ln_m: np.ndarray, cdf: np.ndarray, shape: str) -> None:
        self.edges = edges
        self.ln_m = ln_m  # (n_bins, _TABLE) abscissae, or empty for a power law
        self.cdf = cdf
        self.shape = shape

    def draw(self, channel: int, u: np.ndarray) -> np.ndarray:
        """Masses in Msun/h of bin ``channel`` at uniforms ``u`` in ``[0, 1)``."""
        lo, hi = float(self.edges[channel]), float(self.edges[channel + 1])
        if self.ln_m.size:
            ln_m = np.interp(u, self.cdf[channel], self.ln_m[channel])
        else:
            s = float(self.shape.partition(" ")[2])
            if s == 0.0:
                ln_m = np.log(lo) + u * np.log(hi / lo)
            else:  # F(M) = (lo^-s - M^-s) / (lo^-s - hi^-s)
                a, b = lo**-s, hi**-s
                ln_m = -np.log(a - u * (a - b)) / s
        return np.clip(np.exp(ln_m), lo, np.nextafter(hi, lo))


def bin_masses(
    edges: np.ndarray,
    mass_function: str | float,
    *,
    cosmology: Any = None,
    redshift: float | None = None,
    where: str = "the painted Field",
) -> BinMasses:
    """The mass sampler of bins ``edges`` (Msun/h).

    Parameters
    ----------
    edges : array of float
        At least two increasing positive masses in Msun/h.
    mass_function : "model" or float
        ``"model"``: the Watson et al. (2013) FoF mass function of ``cosmology`` at
        ``redshift``; a number: the power-law slope ``s`` of ``dn/dlnM ∝ M^-s``.
    cosmology, redshift
        Of the painted Field; needed for ``"model"``.
    """
    edges = np.asarray(edges, np.float64)
    if isinstance(mass_function, str) and mass_function != "model":
        try:
            mass_function = float(mass_function)
        except ValueError:
            raise ConfigError(
                f"mass function {mass_function!r} is neither 'model' nor a power-law slope; "
                "give 'model' or a number such as 1.9"
            ) from None
    if not isinstance(mass_function, str):
        slope = float(mass_function)
        if not np.isfinite(slope):
            raise ConfigError(f"the power-law slope must be finite, got {slope}")
        return BinMasses(edges, np.empty(0), np.empty(0), f"power_law {slope!r}")
    if cosmology is None or redshift is None:
        missing = "cosmology" if cosmology is None else "redshift"
        raise MetadataError(
            f"{where} records no {missing}, which the model mass function needs; give a "
            "power-law slope instead (--mass-function 1.9) or record it on the Field"
        )
    from bigpaint.sim.fof import model_mass_function

    ln_m = np.stack(
        [np.linspace(np.log(lo), np.log(hi), _TABLE) for lo, hi in itertools.pairwise(edges)]
    )
    dn = model_mass_function(cosmology, np.exp(ln_m).ravel(), float(redshift)).reshape(ln_m.shape)
    if not np.all(np.isfinite(dn)) or np.any(dn < 0):
        raise MetadataError(
            f"the model mass function is not finite and positive across the bins {edges.tolist()} "
            "Msun/h; give a power-law slope instead (--mass-function 1.9)"
        )
    steps = 0.5 * (dn[:, 1:] + dn[:, :-1]) * np.diff(ln_m, axis=1)
    cdf = np.concatenate([np.zeros((len(dn), 1)), np.cumsum(steps, axis=1)], axis=1)
    total = cdf[:, -1:]
    if np.any(total <= 0):
        bad = int(np.flatnonzero(total[:, 0] <= 0)[0])
        raise MetadataError(
            f"the model mass function vanishes in bin {bad} ({edges[bad]:.3g} to "
            f"{edges[bad + 1]:.3g} Msun/h); give a power-law slope instead (--mass-function 1.9)"
        )
    return BinMasses(edges, ln_m, cdf / total, "model watson13 fof")
