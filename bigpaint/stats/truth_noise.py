"""The true halos' large-scale noise, measured against the simulation's matter.

Halos are not Poisson tracers. Exclusion (two halos cannot overlap) and nonlinear clustering
make their noise on large scales differ from ``1/n``; for the halos a painter targets it is
below it (Hamaus et al., "Minimizing the stochasticity of halos in large-scale structure
surveys", arXiv:1004.5377; Baldauf et al., "Halo stochasticity from exclusion and nonlinear
clustering", arXiv:1305.2917). Subtracting ``1/n`` from the truth's power then understates its
clustering, and a painting calibrated against it is too weakly biased; the bispectrum's
Poisson terms are over-subtracted the same way.

Given the matter density of the truth's simulation, :func:`truth_noise` measures the noise
instead of assuming it: the part of the truth's power that the matter does not predict,

    N_t(k) = P_tt(k) - P_tm(k)^2 / P_mm(k),

averaged over the modes of the verdict's k bins (``k <= kmax``; weights the mode counts,
the spectra's inverse variances). On those scales it is constant to within its errors, the
assumption behind every shot-noise subtraction, and it equals ``1/n`` for a Poisson sample of
any field that the matter predicts. It also contains whatever part of the true clustering is
not proportional to the matter mode by mode (from nonlinear and non-local bias): small on
large scales, but counted as noise. Its Gaussian error comes from the same propagation as every other
spectrum statistic (:mod:`bigpaint.stats.gaussian_errors`). The matter's window (CIC, say)
multiplies ``P_tm^2`` and ``P_mm`` alike and cancels.

Cost: this pass transforms the truth's channels again, besides the matter, although the
evaluation's joint spectra (:mod:`bigpaint.stats.comparison`) transform them too. On large
grids, fusing the matter into that one pass would save those transforms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import dask.array as da
import numpy as np

from bigpaint.mesh.fft import rfftn
from bigpaint.stats.comparison import TRUTH, Level
from bigpaint.stats.gaussian_errors import (
    PairSpectra,
    effective_modes,
    real_modes_per_bin,
    stochasticity,
)
from bigpaint.stats.power import binned_sums, plan_bins

__all__ = ["truth_noise"]

_MATTER = "matter"


def truth_noise(
    truth: da.Array,
    matter: da.Array,
    levels: Sequence[Level],
    means: Mapping[str, np.ndarray],
    box: float,
    edges: np.ndarray,
    kmax: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The truth's noise power per level, measured against the matter, and its error.

    Parameters
    ----------
    truth : dask.array.Array
        True counts ``(channel, x, y, z)``.
    matter : dask.array.Array
        Matter density or contrast ``(x, y, z)`` on the same grid.
    levels : sequence of Level
    means : mapping
        ``means[TRUTH]``: the truth's mean count per cell of each level.
    box : float
        Box side in Mpc/h.
    edges : numpy.ndarray
        k bin edges in h/Mpc; bins with ``k_hi <= kmax`` enter the average.
    kmax : float
        h/Mpc.

    Returns
    -------
    noise, sigma : numpy.ndarray
        Per level, ``N_t`` and its Gaussian error in (Mpc/h)^3.
    """
    n = int(matter.shape[-1])
    plan = plan_bins(edges, box)
    fks = [rfftn(matter)]
    for lev in levels:
        parts = [rfftn(truth[c]) for c in lev.channels]
        fks.append(parts[0] if len(parts) == 1 else sum(parts[1:], parts[0]))
    pairs = ((0, 0), *(p for i in range(1, len(fks)) for p in ((0, i), (i, i))))
    ones = (np.ones(n), np.ones(n), np.ones(n // 2 + 1))
    sums = binned_sums(fks, (n, n, n), plan, pairs, (ones,) * len(fks), 2, (0,))
    counts = sums[0]
    n_eff = effective_modes(counts, real_modes_per_bin(n, plan.bin_of_k2, plan.nbins))
    use = (edges[1:] <= kmax * (1 + 1e-9)) & (counts > 0)
    w = np.where(use, counts, 0.0) / counts[use].sum()
    norm = box**3 / float(n) ** 6
    with np.errstate(invalid="ignore", divide="ignore"):
        per_bin = np.where(counts > 0, sums[2:] / counts, np.nan) * norm
    p_mm = per_bin[0]
    noise, sigma = np.empty(len(levels)), np.empty(len(levels))
    for li in range(len(levels)):
        mean_t = float(means[TRUTH][li])
        # the matter's normalization cancels: its contrast is only needed up to a factor
        ps = PairSpectra(
            {
                (_MATTER, _MATTER): p_mm,
                (_MATTER, TRUTH): per_bin[1 + 2 * li] / mean_t,
                (TRUTH, TRUTH): per_bin[2 + 2 * li] / mean_t**2,
            },
            n_eff,
        )
        s, grad = stochasticity(ps, _MATTER, TRUTH)
        noise[li] = float(np.sum(np.where(use, s, 0.0) * w))
        var = ps.variance({p: np.where(use, g, 0.0) * w for p, g in grad.items()})
        sigma[li] = math.sqrt(float(np.sum(np.where(use, var, 0.0))))
    return noise, sigma
