"""Where a ``map_blocks`` block lies, read from the ``block_info`` dask passes.

``dask.array.map_blocks`` calls a function that takes a ``block_info`` keyword with a dict:
key ``i`` describes the block of the ``i``-th input array, key ``None`` the output block,
each with its ``array-location`` (global ``(start, stop)`` per axis) and ``chunk-location``
(the block's index). Block functions declare ``block_info=None`` because dask inspects the
signature, so the argument is optional to the type checker; these helpers are the one
place that reads it, typed, and they refuse a call made without it (a block function called
outside ``map_blocks``) in one line instead of failing on ``None[0]``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["array_location", "chunk_location"]


def _entry(block_info: dict[Any, Any] | None, arg: int | None) -> dict[str, Any]:
    if block_info is None:
        raise TypeError(
            "a block function was called without dask's block_info; run it through "
            "dask.array.map_blocks (or pass block_info)"
        )
    entry: dict[str, Any] = block_info[arg]
    return entry


def array_location(block_info: dict[Any, Any] | None, arg: int | None = 0) -> list[tuple[int, int]]:
    """Global ``(start, stop)`` per axis of the block of input ``arg`` (None: the output)."""
    return [(int(a), int(b)) for a, b in _entry(block_info, arg)["array-location"]]


def chunk_location(block_info: dict[Any, Any] | None, arg: int | None = 0) -> tuple[int, ...]:
    """Index of the block of input ``arg`` (None: the output) in its array's block grid."""
    return tuple(int(i) for i in _entry(block_info, arg)["chunk-location"])
