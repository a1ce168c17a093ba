"""The plan of a distributed real FFT: the chunk layout of every stage (pure, no data touched).

A 3-D real FFT of a grid chunked on all three axes is done by transposes
(:mod:`bigpaint.mesh.fft`): each stage rechunks the array so that the axes it transforms
are whole in every block, then transforms them block by block. :func:`plan_fft` decides
those layouts from the grid shape and a block budget alone:

* **slab**: x-slabs ``(cx, ny, nz)`` for the 2-D real FFT over (y, z), then y-slabs
  ``(nx, cy, nz/2+1)`` for the 1-D FFT over x (one transpose);
* **pencil**: z-pencils, y-pencils, x-pencils (two transposes, smaller blocks, for when
  one slab plane is too large for a worker).

Chunk sizes along a split axis differ by at most one, and every stage is split into at
least ``min_blocks`` blocks where the axes allow, for parallelism. The plan is
property-tested on its own and read by the memory budget of a deployment
(``deploy/budget.py``) without building any graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bigpaint.errors import ConfigError, ShapeError
from bigpaint.mesh.kgrid import rfft_shape

__all__ = ["DEFAULT_MIN_BLOCKS", "Chunks", "FFTPlan", "FFTStage", "plan_fft"]

Chunks = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

#: Minimum number of blocks a stage is split into (parallelism), unless the axis is shorter.
DEFAULT_MIN_BLOCKS = 8


@dataclass(frozen=True)
class FFTStage:
    """One stage of a transform: rechunk to ``chunks``, then transform along ``axes``.

    ``chunks`` hold every axis in ``axes`` whole; ``shape`` is the array's shape entering the
    stage (the half-space shape for complex stages).
    """

    shape: tuple[int, int, int]
    chunks: Chunks
    axes: tuple[int, ...]

    @property
    def n_blocks(self) -> int:
        return math.prod(len(c) for c in self.chunks)


@dataclass(frozen=True)
class FFTPlan:
    """Chunk layouts of a forward real FFT of a real grid and of its inverse.

    Attributes
    ----------
    shape : tuple of 3 int
        Shape of the real grid (voxels).
    decomposition : {"slab", "pencil"}
    forward : tuple of FFTStage
        Stages of ``rfftn``; the first holds axis 2 whole on the real array.
    inverse : tuple of FFTStage
        Stages of ``irfftn``; the last produces the real array.
    """

    shape: tuple[int, int, int]
    decomposition: str
    forward: tuple[FFTStage, ...]
    inverse: tuple[FFTStage, ...]

    @property
    def output_chunks(self) -> Chunks:
        """Chunks of the complex array ``rfftn`` returns."""
        return self.forward[-1].chunks


def _split(n: int, size: int) -> tuple[int, ...]:
    """``n`` as ``ceil(n/size)`` chunk sizes differing by at most one (largest first)."""
    size = max(1, min(int(size), n))
    k = -(-n // size)
    base, extra = divmod(n, k)
    return tuple(base + 1 if i < extra else base for i in range(k))


def _slab_size(n: int, plane_bytes: int, block_bytes: int, min_blocks: int) -> int:
    by_bytes = max(1, block_bytes // max(1, plane_bytes))
    by_count = max(1, -(-n // max(1, min_blocks)))
    return min(by_bytes, by_count, n)


def _pencil_size(
    n1: int, n2: int, line_bytes: int, block_bytes: int, min_blocks: int
) -> tuple[int, int]:
    side = max(1, math.isqrt(max(1, block_bytes // max(1, line_bytes))))
    per_axis = max(1, math.ceil(math.sqrt(max(1, min_blocks))))
    s1 = min(side, max(1, -(-n1 // per_axis)), n1)
    s2 = min(side, max(1, -(-n2 // per_axis)), n2)
    return s1, s2


def _default_block_bytes() -> int:
    import dask

    return int(dask.utils.parse_bytes(dask.config.get("array.chunk-size")))


def plan_fft(
    shape: Sequence[int],
    *,
    decomposition: Literal["slab", "pencil"] = "slab",
    itemsize: int = 8,
    block_bytes: int | None = None,
    min_blocks: int = DEFAULT_MIN_BLOCKS,
) -> FFTPlan:
    """Plan the transposes of a distributed real FFT (pure: no data touched).

    Parameters
    ----------
    shape : sequence of 3 int
        Real grid shape in voxels.
    decomposition : {"slab", "pencil"}
        Slabs need one transpose and hold whole planes; pencils need two and hold lines.
    itemsize : int
        Bytes per complex element (8 for complex64, 16 for complex128); sizes the blocks.
    block_bytes : int, optional
        Largest complex block wanted; default dask's ``array.chunk-size`` (128 MiB). A slab
        is at least one plane and a pencil at least one line, whatever this says.
    min_blocks : int
        Split every stage into at least this many blocks where the axes allow (parallelism).

    Returns
    -------
    FFTPlan
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or any(n < 1 for n in shape):
        raise ShapeError(f"the distributed FFT needs a 3-D grid of positive sizes, got {shape}")
    block_bytes = int(block_bytes or _default_block_bytes())
    nx, ny, nz = shape
    nzh = rfft_shape(shape)[2]
    half = (nx, ny, nzh)
    if decomposition == "slab":
        cx = _split(nx, _slab_size(nx, ny * nzh * itemsize, block_bytes, min_blocks))
        cy = _split(ny, _slab_size(ny, nx * nzh * itemsize, block_bytes, min_blocks))
        x_slabs: Chunks = (cx, (ny,), (nz,))
        y_slabs: Chunks = ((nx,), cy, (nzh,))
        forward: tuple[FFTStage, ...] = (
            FFTStage(shape, x_slabs, (1, 2)),
            FFTStage(half, y_slabs, (0,)),
        )
        inverse: tuple[FFTStage, ...] = (
            FFTStage(half, y_slabs, (0,)),
            FFTStage(half, (cx, (ny,), (nzh,)), (1, 2)),
        )
    elif decomposition == "pencil":
        px, py = _pencil_size(nx, ny, nzh * itemsize, block_bytes, min_blocks)
        qx, qz = _pencil_size(nx, nzh, ny * itemsize, block_bytes, min_blocks)
        ry, rz = _pencil_size(ny, nzh, nx * itemsize, block_bytes, min_blocks)
        z_pencils: Chunks = (_split(nx, px), _split(ny, py), (nz,))
        y_pencils: Chunks = (_split(nx, qx), (ny,), _split(nzh, qz))
        x_pencils: Chunks = ((nx,), _split(ny, ry), _split(nzh, rz))
        forward = (
            FFTStage(shape, z_pencils, (2,)),
            FFTStage(half, y_pencils, (1,)),
            FFTStage(half, x_pencils, (0,)),
        )
        inverse = (
            FFTStage(half, x_pencils, (0,)),
            FFTStage(half, y_pencils, (1,)),
            FFTStage(half, (z_pencils[0], z_pencils[1], (nzh,)), (2,)),
        )
    else:
        raise ConfigError(f"FFT decomposition must be 'slab' or 'pencil', got {decomposition!r}")
    return FFTPlan(shape, decomposition, forward, inverse)
