"""Uniform random numbers keyed by what they are for, never by how the work was cut.

A painted catalogue must be the same however the box is split into blocks, so every random
number is a pure function of its key ``(seed, channel, voxel, halo, purpose)``: the global
voxel index ``(i * ny + j) * nz + k``, the halo's rank ``j`` within its voxel and channel,
and a small integer naming what the number is for (the count, x, y, z, the mass, the
sub-voxel cell). The function is a counter-based hash: the key is folded in 64-bit words
through the SplitMix64 finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014; the constants of Stafford's variant 13), and the top 53 bits of the
result scaled into ``[0, 1)``. It is vectorised over numpy ``uint64`` arrays (whose
arithmetic wraps modulo 2^64, as the finaliser wants), so a block draws all its numbers in a
few array operations, in any order, on any worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bigpaint.errors import ConfigError

__all__ = ["COUNT", "MASS", "POSITION", "SUBCELL", "seed_key", "uniforms", "voxel_index"]

#: Purposes: the voxel's count, the three position offsets, the mass, the sub-voxel cell.
COUNT, POSITION, MASS, SUBCELL = 0, 1, 4, 5

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
#: Tells these draws apart from every other use of the same seed in bigpaint.
_DOMAIN = 0x73616D706C652D31  # "sample-1"


def _mix(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser of ``z + golden`` (a bijection of 64-bit words)."""
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def seed_key(seed: int, channel: int) -> np.uint64:
    """The 64-bit key of one channel's draws under ``seed`` (a non-negative integer)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if int(seed) >= 2**63:
        raise ConfigError(f"seed must be below 2**63, got {seed}")
    with np.errstate(over="ignore"):
        k = _mix(np.array([_DOMAIN], np.uint64))
        k = _mix(k ^ np.array([int(seed)], np.uint64))
        k = _mix(k ^ np.array([int(channel)], np.uint64))
    return np.uint64(k[0])


def voxel_index(shape: Sequence[int], window: Sequence[slice]) -> np.ndarray:
    """Global C-order index (``uint64``) of every voxel of ``window`` in a grid ``shape``."""
    ny, nz = (int(n) for n in shape[1:])
    i, j, k = (np.arange(s.start, s.stop, dtype=np.uint64) for s in window)
    return (i[:, None, None] * np.uint64(ny) + j[None, :, None]) * np.uint64(nz) + k[None, None, :]


def uniforms(key: np.uint64, voxel: np.ndarray, halo: np.ndarray | int, purpose: int) -> np.ndarray:
    """Uniforms in ``[0, 1)`` for each ``(voxel, halo)`` pair (broadcast) of one purpose.

    Parameters
    ----------
    key : numpy.uint64
        :func:`seed_key` of the seed and channel.
    voxel : array of uint64
        Global voxel indices (:func:`voxel_index`).
    halo : array of int or int
        Rank of the halo within its voxel (0 for the voxel's own count).
    purpose : int
        :data:`COUNT`, :data:`POSITION` + axis, :data:`MASS` or :data:`SUBCELL`.
    """
    v = np.asarray(voxel, np.uint64)
    h = np.asarray(halo, np.uint64)
    with np.errstate(over="ignore"):
        z = _mix(v ^ key)
        z = _mix(z ^ ((h << np.uint64(8)) | np.uint64(purpose)))
    return (z >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0)
