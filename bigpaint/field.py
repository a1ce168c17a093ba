"""Fields: 3-D cosmological grids on Zarr v3, read through xarray, written block by block.

A Field is a Zarr v3 group (a local path or any fsspec URL) holding one data variable of
dims ``(x, y, z)`` or ``(channel, x, y, z)``, cell-centre coordinates in Mpc/h (and a
``channel`` coordinate, with the mass-bin edges when recorded), and the physics in the group
attributes (box size, redshift, cosmology, kind, units, provenance). Users read it with
:func:`open_field`, which returns a lazy ``xarray.Dataset`` of dask arrays. The store is a
plain dataset for other tools too: its metadata is consolidated (``xarray.open_zarr`` opens
it directly), the data variable carries CF-style ``units`` and ``long_name``, and the
attributes are netCDF-safe (``to_netcdf`` works); :mod:`bigpaint.field_meta` holds the
metadata models and that stored form, and :func:`open_field` hands the records back nested.

Writers go through :class:`FieldWriter`. Each block of the write grid (a Zarr chunk, or a
shard when sharding is on) is written whole by exactly one task, and a per-block marker in
the ``_bigpaint/done`` array records that it is in. The group attribute
``bigpaint_complete`` turns true only after every marker is set, so a Field whose writer
died stays "unfinished": :func:`open_field` refuses it as an input, and running the same job
again resumes it (the job is identified by ``bigpaint_job``, a token of the operation,
parameters and inputs).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
import zarr

from bigpaint.axes import int3, spatial_index
from bigpaint.chunked.grid import BlockGrid, ChunkSpec
from bigpaint.chunked.read import DAMAGED_FIX, FieldArray, read_region
from bigpaint.errors import (
    STORAGE_ERRNOS,
    BigpaintError,
    ChunkingError,
    DamagedStoreError,
    FieldExistsError,
    FieldIncompleteError,
    FieldNotFoundError,
    NotAFieldError,
    ShapeError,
    storage_error,
)
from bigpaint.field_layout import (
    DONE_PATH,
    FORMAT_VERSION,
    SPATIAL_DIMS,
    consolidate,
    make_store,
    regular_blocks,
)
from bigpaint.field_meta import (
    Cosmology,
    FieldMeta,
    MassAssignment,
    decode_attrs,
    encode_attrs,
    format_info,
    job_token,
    netcdf_ready,
    validate_meta,
)
from bigpaint.outputs import output_lock
from bigpaint.store import (
    AccessMode,
    open_group,
    remove_field,
    remove_stale_partials,
    store_exists,
    store_fs,
    stored_array,
)

__all__ = [
    "FORMAT_VERSION",
    "Cosmology",
    "FieldMeta",
    "FieldWriter",
    "MassAssignment",
    "create_field",
    "data_var",
    "field_info",
    "field_meta",
    "format_info",
    "job_token",
    "netcdf_ready",
    "open_field",
    "remove_field",
    "update_attrs",
    "write_array",
    "zarr_array",
]


# ---------------------------------------------------------------- reading the group


def _read_group(url: str, storage_options: Mapping[str, Any] | None) -> zarr.Group:
    if not store_exists(url, storage_options):
        raise FieldNotFoundError(f"no Field at {url}: the path does not exist; check the path")
    try:
        group = open_group(url, storage_options, mode="r")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedStoreError(
            f"{url} is damaged: its group metadata ({url}/zarr.json) cannot be read "
            f"({type(exc).__name__}); {DAMAGED_FIX}"
        ) from None
    except Exception as exc:  # zarr raises several types for "not a v3 group"
        raise NotAFieldError(
            f"{url} is not a Field: no Zarr v3 group there ({type(exc).__name__}); "
            "give a store written by bigpaint"
        ) from None
    if "bigpaint_format" not in group.attrs:
        raise NotAFieldError(
            f"{url} is a Zarr group but not a bigpaint Field (no 'bigpaint_format' attribute); "
            "create it with bigpaint.create_field or a bigpaint command"
        )
    fmt = group.attrs["bigpaint_format"]
    if fmt != FORMAT_VERSION:
        raise NotAFieldError(
            f"{url} has Field format {fmt}, this bigpaint reads format {FORMAT_VERSION}; "
            "upgrade bigpaint or rewrite the Field"
        )
    return group


def _data_name(group: zarr.Group, url: str) -> str:
    name = group.attrs.get("bigpaint_variable")
    if not isinstance(name, str) or not name:
        raise NotAFieldError(f"{url}: Field metadata names no data variable; the store is damaged")
    stored_array(group, name, url)
    return name


# ---------------------------------------------------------------- writer


@dataclass(frozen=True)
class FieldWriter:
    """Handle on a Field being written block by block (picklable; send it to workers).

    The write grid is regular with a possibly smaller last block per axis (Zarr's grid).
    Exactly one task may write each block; :meth:`write_block` writes the data and then
    sets the block's completion marker; :meth:`finalize` marks the Field complete once
    every marker is set.
    """

    url: str
    name: str
    shape: tuple[int, ...]
    chunks: tuple[int, int, int]
    dtype: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return int3(self.shape[-3:])

    @property
    def lead_shape(self) -> tuple[int, ...]:
        return self.shape[:-3]

    @functools.cached_property
    def block_grid(self) -> BlockGrid:
        """The write grid: blocks of ``chunks`` voxels over the spatial axes."""
        return BlockGrid(self.spatial_shape, self.chunks)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Number of blocks along each spatial axis."""
        return int3(self.block_grid.grid)

    @property
    def block_chunks(self) -> tuple[tuple[int, ...], ...]:
        """The write grid as dask-style chunk tuples per spatial axis."""
        return self.block_grid.chunks

    def blocks(self) -> Iterator[tuple[int, int, int]]:
        return (int3(b, "a block index") for b in self.block_grid.blocks())

    def block_slices(self, index: Sequence[int]) -> tuple[slice, slice, slice]:
        x, y, z = self.block_grid.core(index)
        return x, y, z

    def _group(self, mode: AccessMode = "r+") -> zarr.Group:
        return open_group(self.url, self.storage_options, mode=mode)

    def _array(self) -> zarr.Array:
        return stored_array(self._group(), self.name, self.url)

    def done_mask(self) -> np.ndarray:
        """Boolean array over the block grid: True where the block is written."""
        done = stored_array(self._group(mode="r"), DONE_PATH, self.url)
        return np.asarray(done[...]).astype(bool)

    def pending(self) -> list[tuple[int, int, int]]:
        """Blocks not yet written, in C order."""
        mask = self.done_mask()
        ix, iy, iz = np.nonzero(~mask)
        return [(int(i), int(j), int(k)) for i, j, k in zip(ix, iy, iz, strict=True)]

    def check_block(self, index: Sequence[int]) -> tuple[int, int, int]:
        """``index`` as a block of the write grid, or a one-line ChunkingError.

        Negative indices are refused, not wrapped: numpy would read ``-1`` as the last block
        and mark the wrong block done.
        """
        try:
            idx = tuple(int(i) for i in index)
            ok = len(idx) == 3 and all(
                i == j
                for i, j in zip(idx, index, strict=True)  # no silent float truncation
            )
        except (TypeError, ValueError):
            ok = False
        if not ok or not all(0 <= i < g for i, g in zip(idx, self.grid, strict=True)):
            raise ChunkingError(
                f"block index {tuple(index) if ok else index!r} is not a block of {self.url}: "
                f"give three integers from (0, 0, 0) to {tuple(g - 1 for g in self.grid)}"
            )
        return int3(idx, "a block index")

    def write_block(self, index: Sequence[int], data: np.ndarray) -> None:
        """Write one whole block, then mark it done."""
        index = self.check_block(index)
        sl = self.block_slices(index)
        want = self.lead_shape + tuple(s.stop - s.start for s in sl)
        if tuple(data.shape) != want:
            raise ShapeError(
                f"block {tuple(index)} of {self.url} needs shape {want}, got {data.shape}"
            )
        group = self._group()
        stored_array(group, self.name, self.url)[spatial_index(sl)] = np.asarray(
            data, dtype=self.dtype
        )
        stored_array(group, DONE_PATH, self.url)[index] = 1

    def finalize(self) -> None:
        """Mark the Field complete (idempotent); refuses while any block is missing.

        Temporary files that a writer killed mid-write left behind (zarr's local store writes
        ``<chunk>.<uuid>.partial`` then renames it) are removed first: every block is done,
        so no live writer owns them. Attributes a writer added as nested dicts are put in the
        netCDF-safe stored form (:mod:`bigpaint.field_meta`) with the completion flag.
        """
        if self._group(mode="r").attrs.get("bigpaint_complete", False):
            return
        missing = int((~self.done_mask()).sum())
        if missing:
            raise FieldIncompleteError(
                f"{self.url}: {missing} blocks are still unwritten; run the job again to finish"
            )
        remove_stale_partials(self.url, self.storage_options)
        group = self._group()
        attrs = decode_attrs(group.attrs)  # records a writer added as nested dicts: flattened
        attrs["bigpaint_complete"] = True
        attrs["bigpaint_finished"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        group.attrs.put(encode_attrs(attrs))
        consolidate(group)

    def open(self) -> xr.Dataset:
        """Open the finished Field for reading."""
        return open_field(self.url, storage_options=self.storage_options)


def create_field(
    url: str,
    *,
    shape: Sequence[int],
    chunks: ChunkSpec,
    meta: FieldMeta | Mapping[str, Any],
    dtype: str | np.dtype = "float32",
    name: str | None = None,
    shards: bool = False,
    inner_chunks: int | Sequence[int] | None = None,
    job: str | None = None,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> FieldWriter:
    """Create (or resume) a Field to be written block by block.

    Parameters
    ----------
    url : str
        Local path or fsspec URL of the Zarr v3 store.
    shape : sequence of int
        ``(nx, ny, nz)`` or ``(nchannel, nx, ny, nz)`` in voxels.
    chunks : int or sequence of 3 int
        Spatial size of a write block in voxels (the last block per axis may be smaller);
        a layout of uneven blocks is refused with a ChunkingError.
    meta : FieldMeta or mapping
        Box size [Mpc/h], kind, units, redshift, cosmology, provenance.
    dtype : dtype
        Stored data type.
    name : str, optional
        Data variable name; defaults to ``meta.kind``.
    shards : bool
        Store each write block as one Zarr v3 shard holding ``inner_chunks`` chunks. One task
        writes each block, so one writer per shard holds by construction.
    inner_chunks : int or sequence of 3 int, optional
        Chunk size inside a shard; must divide ``chunks``. Only with ``shards=True``.
    job : str, optional
        Token of the job writing this Field (see :func:`job_token`). If the store exists,
        is unfinished and carries the same token, it is resumed instead of refused.
    overwrite : bool
        Delete an existing store first.
    storage_options : mapping, optional
        Passed to fsspec for remote URLs.

    Returns
    -------
    FieldWriter
    """
    url = str(url)
    meta = validate_meta(meta)
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (3, 4) or any(n <= 0 for n in shape):
        raise ShapeError(
            f"a Field has shape (nx, ny, nz) or (nchannel, nx, ny, nz) with positive sizes, got {shape}"
        )
    grid_chunks = regular_blocks(shape, chunks, "a Field's write blocks")
    name = name or meta.kind
    dtype = np.dtype(dtype).str
    opts = dict(storage_options or {})
    writer = FieldWriter(url, name, shape, grid_chunks, dtype, opts)

    with output_lock(url):  # re-entrant: a job holding it (bigpaint.outputs.writing) goes on
        if store_exists(url, opts):
            if overwrite:
                remove_field(url, opts)
            else:
                _check_resumable(url, opts, writer, job)
                return writer
        try:
            make_store(url, opts, writer, meta, job, shards, inner_chunks)
        except OSError as exc:  # a full or read-only disk names no path: name the store
            if exc.errno not in STORAGE_ERRNOS or isinstance(exc, BigpaintError):
                raise
            with contextlib.suppress(OSError):  # the half-made store is ours: leave none
                remove_field(url, opts)
            raise storage_error(exc, url) from None
    return writer


def _check_resumable(url: str, opts: dict[str, Any], writer: FieldWriter, job: str | None) -> None:
    try:
        group = _read_group(url, opts)
    except (NotAFieldError, FieldNotFoundError):
        raise FieldExistsError(
            f"output {url} exists and is not a bigpaint Field; choose another path or pass --overwrite"
        ) from None
    same_job = job is not None and group.attrs.get("bigpaint_job") == job
    if not same_job:
        raise FieldExistsError(
            f"output {url} already exists (written by a different job); "
            "choose another path or pass --overwrite"
        )
    arr = stored_array(group, _data_name(group, url), url)
    if tuple(arr.shape) != writer.shape or np.dtype(arr.dtype).str != writer.dtype:
        raise FieldExistsError(
            f"output {url} exists with shape {arr.shape} {arr.dtype}; pass --overwrite to replace it"
        )
    done = stored_array(group, DONE_PATH, url)
    if tuple(done.shape) != writer.grid:
        raise FieldExistsError(
            f"output {url} exists with another chunking; pass --overwrite to replace it"
        )


def update_attrs(
    url: str,
    *,
    provenance: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **attrs: Any,
) -> None:
    """Add to a Field's metadata after it was created, keeping the stored form netCDF-safe.

    ``provenance`` entries are merged into the Field's provenance; other keywords
    (``cosmology``, ``redshift``, ...) replace the attribute. The result must still be valid
    :class:`FieldMeta`. Writers that know something only after the Field exists (the LPT
    parameters of a deposit, the clipping of a sampled baseline) record it with this rather
    than by writing nested dicts into the group.
    """
    url = str(url)
    group = _read_group(url, storage_options)
    current = decode_attrs(group.attrs)
    merged = {**current, **attrs}
    merged["provenance"] = {**(current.get("provenance") or {}), **dict(provenance or {})}
    meta = validate_meta({k: merged[k] for k in FieldMeta.model_fields if k in merged})
    merged.update(json.loads(meta.model_dump_json()))
    stored = encode_attrs(merged)
    group = open_group(url, storage_options, mode="r+")
    group.attrs.put(stored)  # drops nested dicts
    consolidate(group)


def write_array(
    url: str,
    data: np.ndarray,
    *,
    chunks: int | Sequence[int],
    meta: FieldMeta | Mapping[str, Any],
    overwrite: bool = False,
    **kwargs: Any,
) -> FieldWriter:
    """Write an in-memory array as a complete Field (tests, small boxes, imports)."""
    data = np.asarray(data)
    writer = create_field(
        url,
        shape=data.shape,
        chunks=chunks,
        meta=meta,
        dtype=kwargs.pop("dtype", data.dtype),
        overwrite=overwrite,
        **kwargs,
    )
    for index in writer.pending():
        writer.write_block(index, data[(Ellipsis, *writer.block_slices(index))])
    writer.finalize()
    return writer


# ---------------------------------------------------------------- reader


def open_field(
    url: str,
    *,
    require_complete: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Open a Field lazily, like ``xarray.open_zarr``.

    Parameters
    ----------
    url : str
        Local path or fsspec URL of the Field's Zarr v3 store.
    require_complete : bool
        Refuse a Field still being written (the default, for inputs). ``False`` is for
        inspection (``bigpaint info``).
    storage_options : mapping, optional
        Passed to fsspec.

    Returns
    -------
    xarray.Dataset
        One data variable (dask-backed, chunked like the store) and coordinates x, y, z in
        Mpc/h. ``ds.attrs`` holds the metadata; ``ds.encoding["bigpaint_url"]`` the store URL.

    Raises
    ------
    FieldNotFoundError, NotAFieldError, FieldIncompleteError, ShapeError
    """
    url = str(url)
    opts = dict(storage_options or {})
    group = _read_group(url, opts)
    name = _data_name(group, url)
    arr = stored_array(group, name, url)
    if arr.ndim not in (3, 4):
        raise ShapeError(
            f"{url}: data variable {name!r} has {arr.ndim} dimensions; a Field is 3-D "
            "(x, y, z) or 4-D (channel, x, y, z)"
        )
    done = stored_array(group, DONE_PATH, url)
    for dim in SPATIAL_DIMS:
        stored_array(group, dim, url)
    if require_complete and not group.attrs.get("bigpaint_complete", False):
        marks = read_region(done, ..., url=url, name=DONE_PATH)
        raise FieldIncompleteError(
            f"{url} is unfinished ({int(marks.sum())}/{marks.size} blocks written) and cannot be "
            "an input; re-run the command that writes it to resume, or delete it"
        )
    kwargs: dict[str, Any] = {"consolidated": False, "zarr_format": 3, "chunks": {}}
    if opts and "://" in url:
        kwargs["storage_options"] = opts
    try:
        ds = xr.open_zarr(url, **kwargs)
    except OSError as exc:
        raise storage_error(exc, url, doing="read") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedStoreError(
            f"{url} is damaged: xarray cannot open it ({type(exc).__name__}); {DAMAGED_FIX}"
        ) from None
    ds.attrs = decode_attrs(ds.attrs)
    validate_meta({k: ds.attrs[k] for k in FieldMeta.model_fields if k in ds.attrs})
    ds[name] = ds[name].copy(data=_guarded_data(ds[name].data, url, name, arr, opts, group))
    ds.encoding["bigpaint_url"] = url
    ds.encoding["bigpaint_storage_options"] = opts
    ds.encoding["bigpaint_variable"] = name
    return ds


def _guarded_data(
    lazy: Any, url: str, name: str, arr: zarr.Array, opts: dict[str, Any], group: zarr.Group
) -> Any:
    """The variable as a dask array chunked like ``lazy`` whose reads name a damaged chunk
    (:mod:`bigpaint.chunked.read`) instead of failing with a bare codec error."""
    import uuid

    import dask.array as da
    from dask.base import tokenize

    source = FieldArray(url, name, tuple(arr.shape), np.dtype(arr.dtype), opts)
    # a finished Field never changes: its token is stable; an unfinished one may change
    stamp = group.attrs.get("bigpaint_finished") or uuid.uuid4().hex
    return da.from_array(
        source,
        chunks=lazy.chunks,
        name=f"open_field-{name}-{tokenize(url, name, stamp, arr.shape, str(arr.dtype))}",
        asarray=False,
        fancy=False,
        lock=False,
        meta=np.empty((0,) * arr.ndim, dtype=arr.dtype),
        inline_array=True,
    )


def field_meta(ds: xr.Dataset) -> FieldMeta:
    """The validated :class:`FieldMeta` of an opened Field."""
    return validate_meta({k: ds.attrs[k] for k in FieldMeta.model_fields if k in ds.attrs})


def data_var(ds: xr.Dataset) -> xr.DataArray:
    """The data variable of an opened Field."""
    return ds[ds.encoding.get("bigpaint_variable") or ds.attrs["bigpaint_variable"]]


def zarr_array(ds: xr.Dataset) -> zarr.Array:
    """The Zarr array behind an opened Field's data variable (for direct region reads)."""
    url = ds.encoding["bigpaint_url"]
    group = open_group(url, ds.encoding.get("bigpaint_storage_options") or None, mode="r")
    return stored_array(group, ds.encoding["bigpaint_variable"], url)


def field_info(url: str, *, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Metadata, chunking, completion state and size of a Field (complete or not)."""
    url = str(url)
    group = _read_group(url, storage_options)
    name = _data_name(group, url)
    arr = stored_array(group, name, url)
    done = read_region(stored_array(group, DONE_PATH, url), ..., url=url, name=DONE_PATH)
    fs, root = store_fs(url, storage_options)
    try:
        stored = int(fs.du(root))
    except Exception:  # some filesystems cannot report usage
        stored = -1
    attrs = decode_attrs(group.attrs)
    shard_shape = getattr(arr, "shards", None)
    return {
        "url": url,
        "variable": name,
        "shape": tuple(arr.shape),
        "dtype": str(arr.dtype),
        "chunks": tuple(arr.chunks),
        "shards": tuple(shard_shape) if shard_shape else None,
        "blocks_done": int(done.sum()),
        "blocks_total": int(done.size),
        "complete": bool(attrs.get("bigpaint_complete", False)),
        "nbytes": int(np.prod(arr.shape)) * np.dtype(arr.dtype).itemsize,
        "stored_bytes": stored,
        "attrs": attrs,
    }
