"""Poisson draws that depend on the seed and the voxel alone, never on chunking or workers.

Uniforms come from fixed cubic tiles of the box (``tile`` voxels a side, the last per axis cut
by the box edge), each drawn whole from numpy's PCG64 seeded with ``(seed, stream, channel,
tile index)`` and cropped, as the white noise of :mod:`bigpaint.ics.noise` is; the stream
constant keeps these draws apart from that noise of the same seed. A voxel's count is then the
Poisson quantile of its uniform (inverse-CDF sampling), so it depends on that uniform and
its mean only, whichever block computes it.

Why hand-written: ``numpy.random.Generator.poisson`` consumes a varying number of random
numbers per draw, so a block could not reproduce the draws of a tile it shares; and
``scipy.stats.poisson.ppf`` costs ~2 us per value. The compiled upward search here is exact
for the small means of halo counts per cell and hands means above 30 to scipy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from bigpaint.errors import ConfigError

__all__ = ["TILE", "poisson_quantile", "sample_uniform"]

#: Noise tile edge in voxels.
TILE = 32
#: Keeps these uniforms apart from :mod:`bigpaint.ics.noise` draws of the same seed.
_STREAM = 0x62696173


def sample_uniform(
    shape: Sequence[int], window: Sequence[slice], *, seed: int, channel: int, tile: int = TILE
) -> np.ndarray:
    """Uniforms in [0, 1) on ``window`` of the box, depending on (seed, channel, voxel) alone.

    The box is cut into fixed ``tile``-voxel cubes (the last per axis may be cut by the box
    edge); each is drawn whole from PCG64 seeded with ``(seed, stream, channel, tile index)``
    and cropped, so any window gives the same values at the same voxels.
    """
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    out = np.empty(tuple(s.stop - s.start for s in window), np.float64)
    ranges = [range(s.start // tile, -(-s.stop // tile)) for s in window]
    for t in itertools.product(*ranges):
        seq = np.random.SeedSequence([int(seed), _STREAM, int(channel), *t])
        block = np.random.Generator(np.random.PCG64(seq)).random((tile,) * 3)
        src, dst = [], []
        for ti, s in zip(t, window, strict=True):
            a, b = max(s.start, ti * tile), min(s.stop, (ti + 1) * tile)
            src.append(slice(a - ti * tile, b - ti * tile))
            dst.append(slice(a - s.start, b - s.start))
        out[tuple(dst)] = block[tuple(src)]
    return out


_LARGE = 30.0


@njit(cache=True, nogil=True)
def _poisson_search(u: np.ndarray, lam: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    for i in range(u.size):
        mu = lam[i]
        if not mu > 0.0:
            out[i] = 0.0
            continue
        if mu > _LARGE:
            out[i] = -1.0  # left to scipy
            continue
        p = math.exp(-mu)
        cdf = p
        k = 0
        kmax = int(mu + 40.0 * math.sqrt(mu) + 40.0)
        while u[i] > cdf and k < kmax:
            k += 1
            p *= mu / k
            cdf += p
        out[i] = k


def poisson_quantile(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The smallest ``k`` with ``P(N <= k) >= u`` for ``N ~ Poisson(lam)`` (inverse CDF).

    ``lam <= 0`` (or NaN) gives 0. Means up to 30 are searched upward from 0 (compiled);
    larger ones go to ``scipy.stats.poisson.ppf``.
    """
    from scipy.stats import poisson

    uu = np.ascontiguousarray(u, np.float64).ravel()
    mu = np.ascontiguousarray(lam, np.float64).ravel()
    out = np.empty(uu.size, np.float64)
    _poisson_search(uu, mu, out)
    big = out < 0
    if big.any():
        out[big] = np.maximum(poisson.ppf(uu[big], mu[big]), 0.0)
    return out.reshape(np.shape(u))
