"""The distance map a segmentation reads: accepted inputs, window reads, and the checks that
refuse a map that is not one (NaN/inf, negative values).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
import zarr

from bigpaint.chunked.read import FieldSource, periodic_read
from bigpaint.errors import NonFiniteError, ShapeError
from bigpaint.field import field_meta
from bigpaint.segment.errors import NotADistanceMapError

__all__ = ["as_source", "check_block", "read_window"]


def as_source(distance: Any) -> tuple[Any, tuple[int, int, int], Any]:
    """(reader, shape, default chunks) of a Field Dataset, Zarr array or numpy array."""
    if isinstance(distance, xr.Dataset):
        kind = distance.attrs.get("kind")
        if kind != "distance":
            raise NotADistanceMapError(
                f"{distance.encoding.get('bigpaint_url', 'the input')} is a Field of kind "
                f"{kind!r}, not a distance map; segment a Field of kind 'distance'"
            )
        field_meta(distance)
        src = FieldSource.from_field(distance)
        shape = tuple(int(n) for n in src.shape)
        if len(shape) != 3:
            raise ShapeError(f"a distance map is a 3-D Field, got shape {shape}")
        return src, shape, tuple(int(c) for c in src.read_chunks)
    if isinstance(distance, (np.ndarray, zarr.Array)):
        shape = tuple(int(n) for n in distance.shape)
        if len(shape) != 3:
            raise ShapeError(f"a distance map is 3-D, got shape {distance.shape}")
        if np.dtype(distance.dtype).kind not in "fiu":
            raise NotADistanceMapError(f"a distance map holds numbers, got dtype {distance.dtype}")
        chunks = distance.chunks if isinstance(distance, zarr.Array) else shape
        return distance, shape, chunks
    raise TypeError(
        f"distance must be an opened Field, a Zarr array or a numpy array, got {type(distance).__name__}"
    )


def read_window(source: Any, window: Sequence[tuple[int, int]]) -> np.ndarray:
    """The map over a global voxel window (periodic; may run past the box)."""
    if isinstance(source, FieldSource):
        return source.read(window)
    return periodic_read(source, window)


def check_block(d: np.ndarray, origin: Sequence[int]) -> None:
    """Refuse NaN/inf and negative distances, naming the first bad voxel."""
    bad = ~np.isfinite(d)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0] + np.asarray(origin))
        raise NonFiniteError(
            f"distance map holds {int(bad.sum())} NaN/inf values in this block (first at voxel "
            f"{first}); clean the input field first"
        )
    neg = d < 0
    if neg.any():
        local = tuple(int(i) for i in np.argwhere(neg)[0])
        first = tuple(i + int(o) for i, o in zip(local, origin, strict=True))
        raise NotADistanceMapError(
            f"the input is not a distance map: {int(neg.sum())} negative values in this block "
            f"(first {float(d[local]):.4g} at voxel {first}); segment a distance map (>= 0), "
            "not a density or overdensity field"
        )
