"""2-D painters (EMBER, the cosmic-web autoencoder) over projected slabs of a 3-D Field.

A slab is ``thickness`` consecutive voxels along ``axis``, summed (the projection the
training sampler uses, :mod:`bigpaint.train.sampler`). The projected Field has ``n /
thickness`` cells along the axis (same box, thicker cells) and is never written: a
:class:`ProjectedSource` reads a window of it by reading the corresponding window of the 3-D
input (through the cached Field reader) and summing, so the blockwise primitive tiles the
slabs in 2-D with periodic context in the plane and none across slabs, and each block
paints its slabs as one batch.

Noise-injecting painters (EMBER with ``noise=True``) draw their noise from
:func:`position_noise`: a counter-based hash of (seed, slab, level, global pixel), so every
block, sub-tile and whole-slab painting sees the same noise at the same place, and the
chunked result equals the whole-slab result.

Why hand-written: the projection is a reshape-and-sum; position-keyed noise needs a
counter-based generator addressable per pixel, which numpy's generators are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ProjectedSource", "position_noise", "project_slabs"]


def project_slabs(x: np.ndarray, axis: int, thickness: int) -> np.ndarray:
    """Sum ``thickness`` consecutive voxels along spatial ``axis`` of ``(..., nx, ny, nz)``.

    Parameters
    ----------
    x : numpy.ndarray
        Spatial axes last; ``thickness`` must divide the axis.
    axis : int
        Spatial axis 0, 1 or 2.
    thickness : int
        Slab thickness in voxels.

    Returns
    -------
    numpy.ndarray
        Same dtype, the axis shortened ``thickness`` times; sums in float64.
    """
    ax = x.ndim - 3 + axis
    n = x.shape[ax]
    shape = (*x.shape[:ax], n // thickness, thickness, *x.shape[ax + 1 :])
    return x.reshape(shape).sum(ax + 1, dtype=np.float64).astype(x.dtype)


@dataclass(frozen=True)
class ProjectedSource:
    """A Field's projected slabs as a windowed reader for the blockwise primitive.

    Attributes
    ----------
    base : bigpaint.chunked.read.FieldSource
        The 3-D input.
    axis, thickness : int
        Projection axis and slab thickness in voxels.
    """

    base: Any
    axis: int
    thickness: int

    @property
    def shape(self) -> tuple[int, ...]:
        s = list(self.base.shape)
        s[len(s) - 3 + self.axis] //= self.thickness
        return tuple(s)

    @property
    def dtype(self) -> str:
        return self.base.dtype

    def read(self, window: Sequence[tuple[int, int]]) -> np.ndarray:
        """Projected voxels ``window`` (global, periodic on every axis)."""
        win = list(window)
        lo, hi = win[self.axis]
        win[self.axis] = (lo * self.thickness, hi * self.thickness)
        return project_slabs(self.base.read(win), self.axis, self.thickness)


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def position_noise(
    seed: int,
    slab: int,
    level: int,
    start: Sequence[int],
    shape: Sequence[int],
    period: Sequence[int],
) -> np.ndarray:
    """Standard normal noise keyed by position: equal wherever the same pixel is asked for.

    Parameters
    ----------
    seed : int
    slab : int
        Global index of the slab (batch entry).
    level : int
        Resolution level of the noise map (pixels of ``2**level`` voxels).
    start : sequence of int
        Global pixel of the first map entry per axis (at this level; may be negative).
    shape : sequence of int
        Map shape in pixels.
    period : sequence of int
        Box size in pixels at this level per axis (positions wrap).

    Returns
    -------
    numpy.ndarray
        float32 of ``shape``, N(0, 1) by Box-Muller from two hashed uniforms.
    """
    with np.errstate(over="ignore"):
        key = _mix(np.full((), (int(seed) & int(_M64)), dtype=np.uint64))
        key = _mix(key ^ np.uint64(int(slab) & int(_M64)))
        key = _mix(key ^ np.uint64(int(level)))
        idx = np.ix_(
            *(
                np.mod(np.arange(s, s + n), p).astype(np.uint64)
                for s, n, p in zip(start, shape, period, strict=True)
            )
        )
        h = np.broadcast_to(key, tuple(shape)).copy()
        for ax in idx:
            h = _mix(h ^ ax)
        u1 = ((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
        h2 = _mix(h ^ np.uint64(0xD1B54A32D192ED03))
        u2 = (h2 >> np.uint64(11)).astype(np.float64) / 2.0**53
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


@dataclass(frozen=True)
class NoiseMaps:
    """Noise maps of every decoder level of a noise-injecting U-Net, by position.

    ``self(slab, window)`` gives, coarse to fine, the maps for a window whose origin is a
    multiple of ``2**levels`` (``levels`` decoder levels; level ``l`` pixels span ``2**l``
    voxels), shaped ``(1, 1, *window / 2**l)``.
    """

    seed: int
    levels: int
    box: tuple[int, ...]

    def __call__(self, slab: int, window: Sequence[tuple[int, int]]) -> list[Any]:
        import torch

        maps = []
        for level in reversed(range(self.levels)):
            f = 2**level
            start = [lo // f for lo, _ in window]
            shape = [(hi - lo) // f for lo, hi in window]
            period = [n // f for n in self.box]
            m = position_noise(self.seed, slab, level, start, shape, period)
            maps.append(torch.from_numpy(m)[None, None])
        return maps
