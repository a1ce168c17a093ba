"""Whole-array painting: the reference that chunked painting is compared against.

:func:`paint_array` paints a periodic array held in memory tile by tile, each tile from its
input plus ``context`` voxels of periodic neighbourhood on each side, rounded up to the
painter's alignment (``"same"`` painters get their windows padded up to a multiple of it),
and crops the output back to the tile. It uses none of the engine's machinery (no Dask, no
Zarr, no memory budget): a plain loop whose result the chunked engine (:mod:`bigpaint.paint`)
must equal, and a quick way to paint a small box in Python.
"""

from __future__ import annotations

import itertools

import numpy as np

from bigpaint.errors import ShapeError
from bigpaint.painters.base import Painter

__all__ = ["paint_array"]


def _tiles(n: int, tile: int) -> list[tuple[int, int]]:
    return [(a, min(a + tile, n)) for a in range(0, n, tile)]


def paint_array(
    painter: Painter,
    x: np.ndarray,
    *,
    tile: int | None = None,
    context: int | None = None,
) -> np.ndarray:
    """Paint a whole periodic array in memory, tile by tile: the reference for chunked painting.

    Every output tile is painted from the input tile plus ``context`` voxels of periodic
    neighbourhood on each side (rounded up to the painter's alignment), then cropped to the
    tile. For ``mode="valid"`` painters and for ``"same"`` painters with the full
    architectural context this equals painting the infinite periodic repetition of ``x``;
    a smaller ``context`` gives seams (``docs/paint.md`` gives their measured size).

    Parameters
    ----------
    painter : Painter
    x : numpy.ndarray
        ``(C_in, *S)`` or ``S`` for one channel, raw (physical) units, periodic.
    tile : int, optional
        Output tile size per axis in voxels (default: the whole array); must be a multiple of
        the alignment. For ``mode="tile"`` painters the array is cut into the painter's tiles.
    context : int, optional
        Context per side in voxels (default: ``painter.context``).

    Returns
    -------
    numpy.ndarray
        ``(C_out, *S)`` float32.
    """
    x = np.asarray(x)
    if x.ndim == painter.ndim:
        x = x[None]
    spatial = x.shape[1:]
    if painter.mode == "tile":
        t = painter.tile
        assert t is not None
        if any(n % t for n in spatial):
            raise ShapeError(
                f"{painter.family} paints {t}^{painter.ndim} tiles; {spatial} is not a multiple"
            )
        tile, ctx = t, 0
    else:
        ctx = painter.context if context is None else int(context)
        a = painter.alignment
        ctx = -(-ctx // a) * a
        tile = max(spatial) if tile is None else int(tile)
        if tile % a:
            raise ShapeError(f"tile {tile} must be a multiple of the alignment {a}")
    out = np.empty((painter.out_channels, *spatial), dtype=np.float32)
    for box in itertools.product(*(_tiles(n, tile) for n in spatial)):
        idx = [np.arange(lo - ctx, hi + ctx) % n for (lo, hi), n in zip(box, spatial, strict=True)]
        window = x[np.ix_(range(x.shape[0]), *idx)]
        if painter.mode == "same":
            # pad the window up to a multiple of the alignment (extra voxels beyond the context)
            extra = [(-w) % painter.alignment for w in window.shape[1:]]
            if any(extra):
                idx = [
                    np.arange(lo - ctx, hi + ctx + e) % n
                    for (lo, hi), n, e in zip(box, spatial, extra, strict=True)
                ]
                window = x[np.ix_(range(x.shape[0]), *idx)]
        y = painter.paint(window)
        if painter.mode == "same":
            core = tuple(slice(ctx, ctx + hi - lo) for lo, hi in box)
            y = y[(slice(None), *core)]
        out[(slice(None), *(slice(lo, hi) for lo, hi in box))] = y
    return out
