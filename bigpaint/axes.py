"""The three spatial axes as typed tuples, and the index of a region on them.

Grids, boxes, cell sizes and block indices are three-axis tuples, but much of what builds
them is generic: a :class:`~bigpaint.chunked.grid.BlockGrid` has any number of axes, stored
attributes come back as lists, and ``tuple(int(n) for n in shape)`` has no length the type
checker can see. :func:`int3` and :func:`float3` are the one narrowing from such a sequence:
they convert each value as ``int`` or ``float`` would and refuse another number of values in
one :class:`~bigpaint.errors.ShapeError` line, instead of letting a two- or four-tuple travel
on as a "3-tuple".

:func:`spatial_index` is the index of a region of the last three axes with every leading
(channel) axis whole, ``(..., *slices)``, typed so that numpy and Zarr accept it.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import EllipsisType
from typing import SupportsFloat, SupportsInt, TypeVar

from bigpaint.errors import ShapeError

__all__ = ["Index", "float3", "int3", "spatial_index"]

#: An index of basic slicing: leading axes whole (``...``), then slices or integers.
Index = tuple[EllipsisType | slice | int, ...]


_T = TypeVar("_T")


def _three(values: tuple[_T, ...], what: str) -> tuple[_T, _T, _T]:
    if len(values) != 3:
        raise ShapeError(f"{what} needs one value per axis (x, y, z), got {len(values)}: {values}")
    return values[0], values[1], values[2]


def int3(values: Iterable[SupportsInt], what: str = "a grid shape") -> tuple[int, int, int]:
    """``values`` as three ints (each converted by ``int``).

    Parameters
    ----------
    values : iterable of int-like
        One value per spatial axis.
    what : str
        What the values are, for the message.

    Raises
    ------
    ShapeError
        Not exactly three values.
    """
    return _three(tuple(int(v) for v in values), what)


def float3(values: Iterable[SupportsFloat], what: str = "a box size") -> tuple[float, float, float]:
    """``values`` as three floats (each converted by ``float``), in the units they carry.

    Raises
    ------
    ShapeError
        Not exactly three values.
    """
    return _three(tuple(float(v) for v in values), what)


def spatial_index(slices: Iterable[slice | int]) -> Index:
    """``(..., *slices)``: ``slices`` on the trailing axes, every leading axis whole."""
    return (Ellipsis, *slices)
