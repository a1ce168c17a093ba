"""Labelling and flooding primitives that more than one phase of the segmentation uses.

Pieces of the foreground in a block are named ``1 +`` their smallest global voxel index
(:func:`label_core`), so a name means the same in every block; regions are named ``1 +``
their marker's global voxel index (:func:`marker_image`, :func:`coords`). Flooding is
scikit-image's watershed on an unrolled box and bigpaint's periodic flood along the axes a
component wraps (:func:`watershed`). The labels output is written in two steps:
provisional labels by the block pass (:func:`write_partial`), completed by the flood pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.ndimage as ndi
import zarr

from bigpaint.field import FieldWriter
from bigpaint.segment.watershed import flood, flood_ranks
from bigpaint.store import AccessMode, open_group, stored_array

__all__ = [
    "coords",
    "flood_in_block",
    "label_core",
    "marker_image",
    "member",
    "read_partial",
    "watershed",
    "write_partial",
]


def _piece_names(lab: np.ndarray, n: int, origin: Sequence[int], box: Sequence[int]) -> np.ndarray:
    """``1 +`` the smallest global voxel index of each label ``1..n`` of an unwrapped core."""
    flat = lab.ravel()
    pos = np.flatnonzero(flat)
    vals = flat[pos]
    # scipy numbers labels in order of first appearance in C order: a label's first voxel is
    # where the running maximum grows (checked; np.unique is the slow general fallback)
    new = np.empty(vals.size, dtype=bool)
    if vals.size:
        new[0] = True
        np.greater(vals[1:], np.maximum.accumulate(vals)[:-1], out=new[1:])
    labels, first = vals[new], pos[new]
    if labels.size != n or (n and (labels[0] != 1 or np.any(np.diff(labels) != 1))):
        labels, first = np.unique(flat, return_index=True)
        labels, first = labels[labels > 0], first[labels > 0]
    lut = np.zeros(n + 1, dtype=np.int64)
    coords = np.stack(np.unravel_index(first, lab.shape), axis=1) + np.asarray(origin)
    ny, nz = int(box[1]), int(box[2])
    lut[labels] = coords[:, 0] * (ny * nz) + coords[:, 1] * nz + coords[:, 2] + 1
    return lut


def label_core(
    d_core: np.ndarray,
    threshold: float,
    connectivity: int,
    origin: Sequence[int],
    box: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(foreground mask, local labels, their number, local label to piece name) of an
    unwrapped core at ``origin`` in a box of shape ``box``."""
    mask = d_core > threshold
    lab, n = ndi.label(mask, structure=ndi.generate_binary_structure(3, connectivity))
    lut = _piece_names(lab, n, origin, box)
    return mask, lab, n, lut


def marker_image(
    shape: Sequence[int], markers: np.ndarray, origin: Sequence[int], box: Sequence[int]
) -> np.ndarray:
    """int64 array of a block's shape with ``1 + index`` at the given markers' voxels."""
    out = np.zeros(tuple(shape), dtype=np.int64)
    if markers.size:
        ny, nz = int(box[1]), int(box[2])
        m = markers
        mc = np.stack([m // (ny * nz), (m // nz) % ny, m % nz], axis=1) - np.asarray(origin)
        out[mc[:, 0], mc[:, 1], mc[:, 2]] = m + 1
    return out


def watershed(
    ranks: np.ndarray,
    markers: np.ndarray,
    mask: np.ndarray,
    connectivity: int,
    periodic: Sequence[bool],
) -> np.ndarray:
    """Flood ``markers`` over ``mask`` in the order of ``ranks``: bigpaint's periodic flood
    along the ``periodic`` axes, scikit-image's watershed on an unrolled box."""
    if any(periodic):
        return flood(ranks, markers, mask, connectivity=connectivity, periodic=periodic)
    from skimage.segmentation import watershed as skimage_watershed

    return skimage_watershed(ranks, markers, mask=mask, connectivity=connectivity)


def flood_in_block(
    d: np.ndarray,
    mask: np.ndarray,
    markers: np.ndarray,
    origin: Sequence[int],
    box: Sequence[int],
    connectivity: int,
) -> np.ndarray:
    """int64 labels of a block's ``markers`` (global linear voxel indices) flooded over
    ``mask`` of its unwrapped core ``d`` at ``origin`` (scikit-image's watershed)."""
    return watershed(
        flood_ranks(d, mask),
        marker_image(d.shape, markers, origin, box),
        mask,
        connectivity,
        (False,) * 3,
    ).astype(np.int64, copy=False)


def member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``numpy.isin`` for a small sorted set: a binary search per value, no sort of values."""
    idx = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[idx] == values


def coords(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Voxel coordinates ``(n, 3)`` of the markers that name regions (``1 +`` linear index)."""
    m = np.asarray(labels, np.int64) - 1
    ny, nz = int(shape[1]), int(shape[2])
    return np.stack([m // (ny * nz), (m // nz) % ny, m % nz], axis=1)


def write_partial(dest: Any, core: tuple[slice, ...], data: np.ndarray) -> None:
    """Write a block's provisional labels without marking it done (pass 4 completes it)."""
    if isinstance(dest, FieldWriter):
        _stored(dest, "r+")[core] = data
    else:
        dest[core] = data


def read_partial(dest: Any, core: tuple[slice, ...]) -> np.ndarray:
    """A block's labels as written so far (provisional or complete)."""
    if isinstance(dest, FieldWriter):
        return np.asarray(_stored(dest, "r")[core])
    return np.asarray(dest[core])


def _stored(dest: FieldWriter, mode: AccessMode) -> zarr.Array:
    """The data array of the labels Field being written."""
    return stored_array(open_group(dest.url, dest.storage_options, mode=mode), dest.name, dest.url)
