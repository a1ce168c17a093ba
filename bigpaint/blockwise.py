"""The plan of a blockwise job: the blocks of a periodic 3-D box and the windows they read.

:class:`BlockPlan` is a :class:`~bigpaint.chunked.grid.BlockGrid` (the one chunk policy)
with a periodic context: block ``i`` reads the window ``core(i)`` widened by ``context``
voxels on each side, which may run past the box edge (it is read with periodic wrap by
:mod:`bigpaint.chunked.read`) and may exceed a block or the box. Planning is apart from
execution: the plan is pure and picklable; :func:`bigpaint.chunked.apply.apply_blockwise`
runs a block function over it, and the stages that need more than one pass (segmentation,
peaks) build their own task graphs on it (:mod:`bigpaint.chunked.graph`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bigpaint.chunked.grid import BlockGrid, ChunkSpec
from bigpaint.context import as_context
from bigpaint.errors import ShapeError

__all__ = ["BlockInfo", "BlockPlan"]


@dataclass(frozen=True)
class BlockInfo:
    """What a block function may want to know about its block.

    Attributes
    ----------
    index : tuple of int
        Block index along each spatial axis.
    core : tuple of slice
        The block's region of the output, in global voxel coordinates.
    context : tuple of int
        Voxels of periodic neighbourhood on each side of the core in the window.
    shape : tuple of int
        Spatial shape of the whole box.
    """

    index: tuple[int, ...]
    core: tuple[slice, ...]
    context: tuple[int, ...]
    shape: tuple[int, ...]


@dataclass(frozen=True, init=False)
class BlockPlan(BlockGrid):
    """Blocks of a periodic 3-D box (a :class:`~bigpaint.chunked.grid.BlockGrid`) and the
    windows their tasks read.

    Parameters
    ----------
    shape : tuple of 3 int
        Spatial shape of the box in voxels.
    chunks : int, 3 ints or 3 tuples of int
        Block layout (see :class:`~bigpaint.chunked.grid.BlockGrid`; uneven sizes allowed).
    context : int or tuple of 3 int
        Periodic neighbourhood on each side, in voxels (may exceed a block or the box).
    """

    context: tuple[int, int, int]

    def __init__(
        self,
        shape: Sequence[int],
        chunks: ChunkSpec,
        context: int | Sequence[int],
    ) -> None:
        if len(tuple(shape)) != 3:
            raise ShapeError(f"blockwise works on 3 spatial axes, got shape {tuple(shape)}")
        super().__init__(shape, chunks)
        object.__setattr__(self, "context", as_context(context))

    @classmethod
    def build(
        cls,
        shape: Sequence[int],
        chunks: ChunkSpec,
        context: int | Sequence[int],
    ) -> BlockPlan:
        """The plan of ``shape`` cut by ``chunks`` with ``context`` (the constructor)."""
        return cls(shape, chunks, context)

    def window(self, index: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Global start/stop of the window along each axis (may run past 0 or the box)."""
        return tuple(
            (s.start - c, s.stop + c) for s, c in zip(self.core(index), self.context, strict=True)
        )

    def info(self, index: Sequence[int]) -> BlockInfo:
        return BlockInfo(tuple(index), self.core(index), self.context, self.shape)
