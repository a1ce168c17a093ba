"""The on-disk layout of a Field: the empty store a writer fills, and its consolidation.

A new Field's group holds the attributes (in the stored form of :mod:`bigpaint.field_meta`),
the data variable (chunked, or sharded with one write block per shard) with CF-style
``units`` and ``long_name``, the cell-centre coordinates ``x, y, z`` and, for a 4-D Field,
the ``channel`` coordinate (with the mass-bin edges when recorded), and the per-block
completion markers ``_bigpaint/done``. Once every array exists the metadata is consolidated
into the group's ``zarr.json``, so ``xarray.open_zarr`` opens the Field without a fallback
warning; group attributes written later (completion, provenance) stay current there, and
the Field is consolidated again when it is finished. bigpaint's own readers read each
array's own metadata, never that copy, so a store edited by hand is read as it is.
"""

from __future__ import annotations

import datetime as _dt
import json
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from bigpaint.axes import int3
from bigpaint.chunked.grid import BlockGrid
from bigpaint.errors import ChunkingError, MetadataError
from bigpaint.field_meta import (
    FieldMeta,
    channel_coords,
    coordinate_attrs,
    encode_attrs,
    variable_attrs,
)
from bigpaint.store import open_group
from bigpaint.version import __version__

if TYPE_CHECKING:
    from bigpaint.field import FieldWriter

__all__ = [
    "DONE_PATH",
    "FORMAT_VERSION",
    "SPATIAL_DIMS",
    "consolidate",
    "make_store",
    "regular_blocks",
]

FORMAT_VERSION = 1
SPATIAL_DIMS = ("x", "y", "z")
#: The per-block completion markers of a Field.
DONE_PATH = "_bigpaint/done"


def regular_blocks(shape: Sequence[int], chunks: Any, what: str) -> tuple[int, int, int]:
    """The block size per spatial axis of a regular grid (Zarr's), or a ChunkingError."""
    blocks = BlockGrid(shape[-3:], chunks)
    if not blocks.regular:
        raise ChunkingError(
            f"{what} must be regular (equal blocks, the last one per axis may be smaller), "
            f"got {chunks!r}; give one size, or one size per axis"
        )
    return int3(blocks.block_shape((0, 0, 0)))


def make_store(
    url: str,
    opts: dict[str, Any],
    writer: FieldWriter,
    meta: FieldMeta,
    job: str | None,
    shards: bool,
    inner_chunks: int | Sequence[int] | None,
) -> None:
    """Write the empty store of a new Field: attributes, arrays, coordinates, markers
    (``writer`` gives the URL's variable name, shape, block size, dtype and block grid)."""
    shape, grid_chunks, name, dtype = writer.shape, writer.chunks, writer.name, writer.dtype
    attrs = {
        "bigpaint_format": FORMAT_VERSION,
        "bigpaint_complete": False,
        "bigpaint_variable": name,
        "bigpaint_job": job,
        **json.loads(meta.model_dump_json()),
    }
    attrs["provenance"] = {
        "bigpaint_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **meta.provenance,
    }
    group = open_group(url, opts, mode="w")
    group.attrs.update(encode_attrs(attrs))
    dims = (("channel",) if len(shape) == 4 else ()) + SPATIAL_DIMS
    lead = shape[:-3]
    fill = np.nan if np.dtype(dtype).kind == "f" else 0
    layout: dict[str, Any] = {"chunks": lead + grid_chunks}
    if shards:
        inner = regular_blocks(
            shape, inner_chunks if inner_chunks is not None else grid_chunks, "inner_chunks"
        )
        if any(g % i for g, i in zip(grid_chunks, inner, strict=True)):
            raise ChunkingError(
                f"inner_chunks {inner} must divide the shard (block) size {grid_chunks}"
            )
        layout = {"shards": lead + grid_chunks, "chunks": lead + inner}
    elif inner_chunks is not None:
        raise ChunkingError("inner_chunks only applies with shards=True")
    data = group.create_array(
        name, shape=shape, dtype=dtype, fill_value=fill, dimension_names=dims, **layout
    )
    var_attrs: dict[str, Any] = variable_attrs(meta)
    for axis, (dim, n) in enumerate(zip(SPATIAL_DIMS, shape[-3:], strict=True)):
        dx = meta.box_size[axis] / n
        coord = group.create_array(dim, shape=(n,), chunks=(n,), dtype="f8", dimension_names=(dim,))
        coord[:] = (np.arange(n) + 0.5) * dx
        coord.attrs.update(coordinate_attrs(dim))
    if lead:
        try:
            coords = channel_coords(meta, lead[0])
        except MetadataError:  # a damaged mass-bin record: the statistics that need it refuse
            coords = channel_coords(meta.model_copy(update={"provenance": {}}), lead[0])
        for cname, (values, cattrs) in coords.items():
            arr = group.create_array(
                cname, shape=values.shape, dtype=values.dtype, dimension_names=("channel",)
            )
            arr[:] = values
            arr.attrs.update(cattrs)
        if len(coords) > 1:
            var_attrs["coordinates"] = " ".join(c for c in coords if c != "channel")
    data.attrs.update(var_attrs)
    group.create_array(DONE_PATH, shape=writer.grid, chunks=(1, 1, 1), dtype="u1", fill_value=0)
    consolidate(group)


def consolidate(group: zarr.Group) -> None:
    """Write the consolidated metadata of ``group`` (its arrays' metadata in its
    ``zarr.json``), read from the arrays themselves."""
    with warnings.catch_warnings():
        # zarr notes that consolidation is not in the v3 spec yet, and names any file in
        # the store that is not zarr's (a user's note): neither concerns the Field
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        warnings.filterwarnings(
            "ignore", message="Object at .* is not recognized", category=UserWarning
        )
        zarr.consolidate_metadata(group.store, path=group.path or None)
