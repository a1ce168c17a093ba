"""Block geometry of a grid: the one chunk normaliser and the one chunk policy.

Every chunked stage cuts its grid into blocks the same way, through :class:`BlockGrid`. A
chunk layout is given per axis, as dask writes it:

- one int: the same block size on every axis (the last block of an axis may be smaller,
  Zarr's regular grid);
- one entry per axis, each an int (a regular block size) or a sequence of block sizes that
  sum to the axis (uneven blocks allowed).

What is refused, with one line naming the fix (:class:`~bigpaint.errors.ChunkingError`):
a block larger than the grid (it is never clamped: a layout that cannot be honoured is the
caller's to change, and a caller with a default size picks one that fits), sizes below 1,
sizes that are not whole numbers, explicit sizes that do not tile their axis, and another
number of axes than the grid has.

A :class:`BlockGrid` is frozen and picklable; blocks are numbered in C order
(:meth:`BlockGrid.block_id`).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bigpaint.errors import ChunkingError, ShapeError

__all__ = ["DEFAULT_BLOCK", "BlockGrid", "ChunkSpec", "default_chunks"]

#: What :class:`BlockGrid` accepts as a chunk layout (see the module docstring).
ChunkSpec = int | Sequence[int | Sequence[int]]

#: Block side in voxels of a job given no chunks.
DEFAULT_BLOCK = 128


def default_chunks(chunks: ChunkSpec | None, shape: Sequence[int]) -> ChunkSpec:
    """``chunks``, or when None the default: :data:`DEFAULT_BLOCK` voxels per axis, or the
    whole axis where it is shorter (a default is bigpaint's choice, so it is made to fit;
    a layout the user gives is never changed)."""
    if chunks is not None:
        return chunks
    if all(int(n) >= DEFAULT_BLOCK for n in shape):
        return DEFAULT_BLOCK
    return tuple(min(DEFAULT_BLOCK, int(n)) for n in shape)


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _axis_sizes(spec: Any, n: int, axis: int, given: Any) -> tuple[int, ...]:
    """Block sizes along one axis of ``n`` voxels."""
    if _whole(spec):
        c = int(spec)
        if c < 1:
            raise ChunkingError(f"chunks must be positive, got {given!r}; give sizes >= 1")
        if c > n:
            raise ChunkingError(
                f"chunk {c} along axis {axis} is larger than the grid of {n} voxels; "
                f"give chunks <= {n}"
            )
        return (c,) * (n // c) + ((n % c,) if n % c else ())
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence | np.ndarray):
        raise ChunkingError(
            f"chunks must be whole numbers of voxels, got {given!r}; give an int, one per "
            "axis, or block sizes per axis"
        )
    sizes = tuple(spec)
    if not sizes or not all(_whole(v) for v in sizes):
        raise ChunkingError(
            f"chunks along axis {axis} must be whole numbers of voxels, got {given!r}"
        )
    sizes = tuple(int(v) for v in sizes)
    if min(sizes) < 1:
        raise ChunkingError(f"chunks must be positive, got {given!r}; give sizes >= 1")
    if sum(sizes) != n:
        raise ChunkingError(
            f"chunks {sizes} along axis {axis} sum to {sum(sizes)} voxels, the grid has {n}; "
            f"give sizes that sum to {n}"
        )
    return sizes


@dataclass(frozen=True, init=False)
class BlockGrid:
    """The blocks of a grid of ``shape`` voxels cut by ``chunks``.

    Parameters
    ----------
    shape : sequence of int
        Voxels per axis (positive).
    chunks : int or sequence
        The layout (see the module docstring): one int, or per axis an int or block sizes.

    Attributes
    ----------
    shape : tuple of int
        Voxels per axis.
    chunks : tuple of tuple of int
        Block sizes per axis (dask's normalised form).

    Raises
    ------
    ShapeError
        A shape that is not positive whole numbers.
    ChunkingError
        A layout that does not fit the grid, in one line naming the fix.
    """

    shape: tuple[int, ...]
    chunks: tuple[tuple[int, ...], ...]
    _starts: tuple[tuple[int, ...], ...] = field(repr=False, compare=False)

    def __init__(self, shape: Sequence[int], chunks: ChunkSpec) -> None:
        dims = tuple(shape)
        if not dims or not all(_whole(n) and n >= 1 for n in dims):
            raise ShapeError(f"a grid has positive whole sizes per axis, got {tuple(shape)}")
        dims = tuple(int(n) for n in dims)
        per_axis = (chunks,) * len(dims) if _whole(chunks) else chunks
        if isinstance(per_axis, (str, bytes)) or not isinstance(per_axis, Sequence | np.ndarray):
            raise ChunkingError(
                f"chunks must be whole numbers of voxels, got {chunks!r}; give an int, one "
                "per axis, or block sizes per axis"
            )
        if len(per_axis) != len(dims):
            raise ChunkingError(
                f"chunks {chunks!r} give {len(per_axis)} axes, the grid {dims} has "
                f"{len(dims)}; give one size, or one entry per axis"
            )
        sizes = tuple(
            _axis_sizes(spec, n, axis, chunks)
            for axis, (spec, n) in enumerate(zip(per_axis, dims, strict=True))
        )
        starts = tuple(tuple(itertools.accumulate(s[:-1], operator.add, initial=0)) for s in sizes)
        object.__setattr__(self, "shape", dims)
        object.__setattr__(self, "chunks", sizes)
        object.__setattr__(self, "_starts", starts)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def grid(self) -> tuple[int, ...]:
        """Number of blocks along each axis."""
        return tuple(len(c) for c in self.chunks)

    @property
    def n_blocks(self) -> int:
        return int(np.prod(self.grid))

    @property
    def regular(self) -> bool:
        """Whether every axis has equal blocks but for a smaller last one (Zarr's grid)."""
        return all(all(s == c[0] for s in c[:-1]) and c[-1] <= c[0] for c in self.chunks)

    def blocks(self) -> Iterator[tuple[int, ...]]:
        """Every block index, in C order."""
        return itertools.product(*(range(g) for g in self.grid))

    def check_index(self, index: Sequence[int]) -> tuple[int, ...]:
        """``index`` as a tuple of ints, or IndexError when it is not a block of this grid
        (negative indices are not blocks)."""
        idx = tuple(int(i) for i in index)
        if len(idx) != self.ndim or not all(
            0 <= i < g for i, g in zip(idx, self.grid, strict=True)
        ):
            raise IndexError(f"{tuple(index)} is not a block of a grid of {self.grid} blocks")
        return idx

    def origin(self, index: Sequence[int]) -> tuple[int, ...]:
        """First voxel of block ``index`` along each axis."""
        idx = self.check_index(index)
        return tuple(s[i] for s, i in zip(self._starts, idx, strict=True))

    def block_shape(self, index: Sequence[int]) -> tuple[int, ...]:
        """Voxels of block ``index`` along each axis."""
        idx = self.check_index(index)
        return tuple(c[i] for c, i in zip(self.chunks, idx, strict=True))

    def core(self, index: Sequence[int]) -> tuple[slice, ...]:
        """The region of block ``index`` in the grid, as slices."""
        return tuple(
            slice(o, o + s)
            for o, s in zip(self.origin(index), self.block_shape(index), strict=True)
        )

    def block_id(self, index: Sequence[int]) -> int:
        """The number of block ``index`` in C order (0 .. ``n_blocks - 1``)."""
        return int(np.ravel_multi_index(self.check_index(index), self.grid))

    def block_index(self, block_id: int) -> tuple[int, ...]:
        """The block whose number (C order) is ``block_id``."""
        if not 0 <= int(block_id) < self.n_blocks:
            raise IndexError(f"block {block_id} is not in a grid of {self.n_blocks} blocks")
        return tuple(int(v) for v in np.unravel_index(int(block_id), self.grid))

    def block_of(self, axis: int) -> np.ndarray:
        """Block index along ``axis`` of every voxel of that axis (int64)."""
        sizes = np.asarray(self.chunks[axis], dtype=np.int64)
        return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
