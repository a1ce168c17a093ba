"""Reading stored chunks so that a damaged one is named, not reported as a codec's riddle.

A chunk file that was truncated or overwritten fails deep inside Zarr's codec pipeline with a
message such as ``Zstd decompression error: invalid input data`` that names neither the store
nor the chunk. Every read of a Field's data goes through :func:`read_region` (the periodic
block reader of :mod:`bigpaint.blockwise`, and through :class:`FieldArray` the lazy
``xarray`` variable :func:`bigpaint.field.open_field` returns), which turns such a failure
into one :class:`~bigpaint.errors.DamagedStoreError` line naming the store, the variable, the
chunk's index and its key in the store, and the fix.

Locating the chunk costs nothing on the good path: only when a region read fails are its
chunks (shards, for a sharded array: the unit a file holds) read one by one to find the first
that cannot be decoded; when each of them decodes, the original error is raised unchanged (it
is not the store's fault). A file system that refuses the read (``OSError``) is reported as a
:class:`~bigpaint.errors.StorageError` naming the store instead.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from bigpaint.errors import DamagedStoreError, storage_error
from bigpaint.store import open_group

__all__ = ["DAMAGED_FIX", "FieldArray", "read_region"]

#: What to do about a damaged store (the end of every DamagedStoreError of a Field).
DAMAGED_FIX = (
    "it must be rewritten: delete it and re-run the command that wrote it (or re-run that "
    "command with --overwrite)"
)


def _region_ranges(shape: tuple[int, ...], region: Any) -> list[range]:
    """Index ranges per axis of a basic-slicing ``region`` (slices, ints, one Ellipsis)."""
    items = list(region) if isinstance(region, tuple) else [region]
    if any(it is Ellipsis for it in items):
        at = next(i for i, it in enumerate(items) if it is Ellipsis)
        items[at : at + 1] = [slice(None)] * (len(shape) - len(items) + 1)
    items += [slice(None)] * (len(shape) - len(items))
    out = []
    for it, n in zip(items, shape, strict=True):
        if isinstance(it, slice):
            out.append(range(*it.indices(n)))
        else:
            i = int(it) % n if n else 0
            out.append(range(i, i + 1))
    return out


def _storage_unit(array: zarr.Array) -> tuple[int, ...]:
    return tuple(getattr(array, "shards", None) or array.chunks)


def _damaged_chunk(array: zarr.Array, region: Any, url: str, name: str) -> DamagedStoreError | None:
    """The error naming the first chunk of ``region`` that cannot be read (None: each reads)."""
    unit = _storage_unit(array)
    shape = tuple(array.shape)
    ranges = _region_ranges(shape, region)
    per_axis = [
        range(r.start // u, (r[-1] // u) + 1) if len(r) else range(0)
        for r, u in zip(ranges, unit, strict=True)
    ]
    for coords in itertools.product(*per_axis):
        sl = tuple(
            slice(c * u, min((c + 1) * u, n)) for c, u, n in zip(coords, unit, shape, strict=True)
        )
        try:
            np.asarray(array[sl])
        except Exception as one:  # any failure marks this chunk
            key = array.metadata.encode_chunk_key(coords)
            return DamagedStoreError(
                f"{url} is damaged: chunk {coords} of variable {name!r} ({url}/{name}/{key}) "
                f"cannot be decoded ({_reason(one)}); {DAMAGED_FIX}"
            )
    return None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_region(array: zarr.Array, region: Any, *, url: str, name: str) -> np.ndarray:
    """``array[region]`` as a numpy array, with one-line errors for a damaged store.

    Parameters
    ----------
    array : zarr.Array
        A Field's data variable.
    region : tuple
        Basic slicing (slices, integers, one Ellipsis).
    url, name : str
        The store and the variable, for the message.

    Raises
    ------
    DamagedStoreError
        A chunk of the region cannot be decoded; the message names the first such chunk.
    StorageError
        The file system refused the read.
    """
    try:
        return np.asarray(array[region])
    except MemoryError:
        raise
    except OSError as exc:
        raise storage_error(exc, f"{url}/{name}", doing="read") from None
    except Exception:  # codecs raise RuntimeError, ValueError, TypeError, ...
        damaged = _damaged_chunk(array, region, url, name)
        if damaged is None:  # every chunk decodes: not the store's fault
            raise
        raise damaged from None


@dataclass
class FieldArray:
    """A Field's data variable as an array-like for ``dask.array.from_array``.

    Picklable (it sends the store's URL to workers, each opens the array once); every read
    goes through :func:`read_region`.
    """

    url: str
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    storage_options: dict[str, Any] = field(default_factory=dict)
    _array: Any = field(default=None, repr=False, compare=False)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}

    def __getitem__(self, region: Any) -> np.ndarray:
        if self._array is None:
            group = open_group(self.url, self.storage_options or None, mode="r")
            self._array = group[self.name]
        return read_region(self._array, region, url=self.url, name=self.name)
