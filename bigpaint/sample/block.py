"""One block of a painted catalogue: Poisson counts, then each halo's position, mass, velocity.

Everything here is a function of the block's window of the input Fields and of the keyed
uniforms of :mod:`bigpaint.sample.streams`; the block's position in a chunk layout never
enters, so any layout draws the same halos. Rows come out with their sort key (global voxel
index, channel, rank in the voxel), which orders the merged catalogue independently of the
layout too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bigpaint.errors import NonFiniteError
from bigpaint.sample.masses import BinMasses
from bigpaint.sample.streams import COUNT, MASS, POSITION, SUBCELL, uniforms, voxel_index
from bigpaint.stats.poisson_draws import poisson_quantile

__all__ = ["BlockInputs", "sample_block"]


@dataclass(frozen=True)
class BlockInputs:
    """What one block needs besides the painted expectation.

    Attributes
    ----------
    shape : tuple of 3 int
        Spatial grid of the painted Field (voxels).
    box_size : tuple of 3 float
        Box side lengths in Mpc/h.
    keys : tuple of numpy.uint64
        :func:`bigpaint.sample.streams.seed_key` of each channel.
    masses : BinMasses
        The in-bin mass sampler.
    """

    shape: tuple[int, int, int]
    box_size: tuple[float, float, float]
    keys: tuple[np.uint64, ...]
    masses: BinMasses


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., n_i - 1 for each entry of ``counts``, concatenated."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def _subcell(
    density: np.ndarray, ratio: int, local: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The sub-cell (one index per axis, in ``0..ratio-1``) each halo falls in: drawn with
    probability proportional to the non-negative part of ``density`` over the ``ratio^3``
    sub-cells of its voxel (uniform where they are all zero)."""
    bx, by, bz = (s // ratio for s in density.shape)
    sub = density.reshape(bx, ratio, by, ratio, bz, ratio).transpose(0, 2, 4, 1, 3, 5)
    weights = np.clip(sub.reshape(bx * by * bz, ratio**3)[local], 0.0, None).astype(np.float64)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / ratio**3)
    cdf = np.cumsum(weights, axis=1)
    pick = np.minimum((cdf < u[:, None]).sum(axis=1), ratio**3 - 1)
    return np.unravel_index(pick, (ratio,) * 3)


def sample_block(
    expected: np.ndarray,
    window: tuple[slice, slice, slice],
    inputs: BlockInputs,
    *,
    density: np.ndarray | None = None,
    velocity: np.ndarray | None = None,
    velocity_origin: tuple[int, int, int] = (0, 0, 0),
    velocity_shape: tuple[int, int, int] | None = None,
) -> dict[str, np.ndarray]:
    """The halos of one block.

    Parameters
    ----------
    expected : array (n_channels, bx, by, bz)
        Painted expected counts per cell on ``window``; negative values count as zero.
    window : 3 slices
        The block's voxels in the painted grid.
    inputs : BlockInputs
    density : array (r bx, r by, r bz), optional
        Sub-voxel density on the same window, ``r`` times finer.
    velocity : array (3, ...), optional
        Velocity Field values in km/s on the region of its own grid ``velocity_shape`` that
        starts at ``velocity_origin`` and covers the block; a halo takes the value of the
        cell it lies in.

    Returns
    -------
    dict of str to array
        ``voxel``, ``bin``, ``rank`` (the sort key), ``mass`` [Msun/h], ``x``, ``y``, ``z``
        [Mpc/h, in ``[0, L)``], and ``vx``, ``vy``, ``vz`` [km/s] with a velocity Field.
    """
    if not np.all(np.isfinite(expected)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(expected))[0])
        where = (bad[0], *(w.start + i for w, i in zip(window, bad[1:], strict=True)))
        raise NonFiniteError(
            f"non-finite expected count at (channel, x, y, z) = "
            f"{where}; repaint it or mask the damaged cells before sampling"
        )
    block_shape = expected.shape[1:]
    vox = voxel_index(inputs.shape, window).ravel()
    cell = np.asarray(inputs.box_size, np.float64) / np.asarray(inputs.shape, np.float64)
    start = np.array([w.start for w in window], np.int64)
    ratio = 1 if density is None else density.shape[0] // block_shape[0]
    parts: dict[str, list[np.ndarray]] = {}
    for c, key in enumerate(inputs.keys):
        lam = np.clip(expected[c].astype(np.float64).ravel(), 0.0, None)
        n = poisson_quantile(uniforms(key, vox, 0, COUNT), lam).astype(np.int64)
        occupied = np.flatnonzero(n)
        counts = n[occupied]
        local = np.repeat(occupied, counts)
        rank = _ranks(counts)
        hv = vox[local]
        ijk = np.stack(np.unravel_index(local, block_shape)) + start[:, None]
        if density is not None:
            sub = _subcell(density, ratio, local, uniforms(key, hv, rank, SUBCELL))
        pos = np.empty((3, local.size), np.float64)
        for a in range(3):
            u = uniforms(key, hv, rank, POSITION + a)
            frac = u if density is None else (sub[a] + u) / ratio
            pos[a] = (ijk[a] + frac) * cell[a]
            pos[a][pos[a] >= inputs.box_size[a]] = 0.0  # rounding at the far edge: wrap
        row = {
            "voxel": hv.astype(np.int64),
            "bin": np.full(local.size, c, np.int32),
            "rank": rank,
            "mass": inputs.masses.draw(c, uniforms(key, hv, rank, MASS)),
            "x": pos[0],
            "y": pos[1],
            "z": pos[2],
        }
        if velocity is not None and velocity_shape is not None:
            nv = np.asarray(velocity_shape, np.int64)
            cell_v = np.asarray(inputs.box_size, np.float64) / nv
            idx = [  # clipped: a float rounding up to the next cell, or the far-edge wrap
                np.clip(
                    np.floor(pos[a] / cell_v[a]).astype(np.int64) - velocity_origin[a],
                    0,
                    velocity.shape[a + 1] - 1,
                )
                for a in range(3)
            ]
            for a, name in enumerate(("vx", "vy", "vz")):
                row[name] = velocity[a][idx[0], idx[1], idx[2]].astype(np.float64)
        for name, values in row.items():
            parts.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in parts.items()}
