"""Reading a Field's stored chunks: periodic windows, the per-worker chunk cache, damage named.

Every read of a Field's data goes through here.

- :func:`periodic_read` reads a window of the last three axes of any array (numpy, Zarr) that
  may run past the box edge any number of times: the window is assembled from at most a few
  slice reads per axis, with the periodic (modular) index.
- :class:`FieldSource` is a finished Field as a picklable window reader that assembles each
  window from whole decoded chunks held in :func:`chunk_cache`, the process-wide LRU cache
  (neighbouring blocks read the same neighbour chunks for their context, and decoding a
  chunk costs far more than copying from it).
- :func:`read_region` is the one region read of a stored array: a chunk file that was
  truncated or overwritten fails deep inside Zarr's codec pipeline with a message such as
  ``Zstd decompression error: invalid input data`` that names neither the store nor the
  chunk; here it becomes one :class:`~bigpaint.errors.DamagedStoreError` line naming the
  store, the variable, the chunk's index and its key in the store, and the fix.
  :class:`FieldArray` (the lazy ``xarray`` variable of :func:`bigpaint.field.open_field`)
  and both readers above go through it.

Locating a damaged chunk costs nothing on the good path: only when a region read fails are
its chunks (shards, for a sharded array: the unit a file holds) read one by one to find the
first that cannot be decoded; when each of them decodes, the original error is raised
unchanged (it is not the store's fault). A file system that refuses the read (``OSError``)
is reported as a :class:`~bigpaint.errors.StorageError` naming the store instead.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from bigpaint.axes import spatial_index
from bigpaint.errors import DamagedStoreError, storage_error
from bigpaint.store import DAMAGED_FIX, open_group, stored_array

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "DAMAGED_FIX",
    "ChunkCache",
    "FieldArray",
    "FieldSource",
    "chunk_cache",
    "periodic_read",
    "read_region",
]


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
            self._array = stored_array(group, self.name, self.url)
        return read_region(self._array, region, url=self.url, name=self.name)


# ---------------------------------------------------------------- periodic windows


def _axis_segments(start: int, stop: int, n: int) -> list[tuple[int, int, int]]:
    """Cover global [start, stop) on a periodic axis of length n by (src0, src1, dst0) runs."""
    segs = []
    pos = start
    while pos < stop:
        s = pos % n
        length = min(n - s, stop - pos)
        segs.append((s, s + length, pos - start))
        pos += length
    return segs


def periodic_read(
    array: Any, window: Sequence[tuple[int, int]], *, dtype: Any = None
) -> np.ndarray:
    """Read a window of the last three axes of ``array`` with periodic wrap.

    Parameters
    ----------
    array : array-like
        Anything with ``shape`` and basic slicing (numpy, Zarr). Leading axes are read whole.
    window : sequence of 3 (start, stop)
        Global voxel ranges, which may extend below 0 or beyond the box any number of times.

    Returns
    -------
    numpy.ndarray
        ``lead + (stop - start per axis)``. A window that does not cross the box edge is one
        slice read; one that wraps is assembled from at most a few reads per axis.
    """
    shape = tuple(array.shape)
    spatial, lead = shape[-3:], shape[:-3]
    segs = [_axis_segments(a, b, n) for (a, b), n in zip(window, spatial, strict=True)]
    out_shape = lead + tuple(b - a for a, b in window)
    out = np.empty(out_shape, dtype=dtype or array.dtype)
    read = _zarr_reader(array) if isinstance(array, zarr.Array) else None
    for combo in itertools.product(*segs):
        src = spatial_index(slice(s0, s1) for s0, s1, _ in combo)
        dst = spatial_index(slice(d0, d0 + s1 - s0) for s0, s1, d0 in combo)
        out[dst] = read(src) if read else np.asarray(array[src])
    return out


def _zarr_reader(array: zarr.Array) -> Callable[[Any], np.ndarray]:
    """Region reads of a bare Zarr array whose errors name its store and chunk."""
    url = str(getattr(array.store, "root", None) or array.store).removeprefix("file://")
    name = array.path or "(root array)"
    return lambda region: read_region(array, region, url=url, name=name)


# ---------------------------------------------------------------- cached Zarr source


class ChunkCache:
    """Process-wide LRU cache of decoded source chunks, bounded in bytes.

    Neighbouring blocks read the same neighbour chunks for their context (a window with
    context smaller than a chunk touches 27 chunks, 18 of them shared with the next block
    along an axis), and decoding a chunk costs far more than copying from it. Only finished
    Fields are cached (they never change), keyed by URL, variable and finish time.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: collections.OrderedDict[Any, np.ndarray] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Drop every cached chunk (benchmarks call this between repeats)."""
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def get(self, key: Any, load: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
        value = load()
        with self._lock:
            self.misses += 1
            if value.nbytes <= self.max_bytes and key not in self._data:
                self._data[key] = value
                self._bytes += value.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._data.popitem(last=False)
                    self._bytes -= old.nbytes
        return value


def chunk_cache() -> ChunkCache:
    """This process's chunk cache; size from dask config ``bigpaint.chunk-cache`` (bytes)."""
    global _CACHE
    import dask

    size = int(dask.utils.parse_bytes(dask.config.get("bigpaint.chunk-cache", "256MiB")))
    if _CACHE is None or _CACHE.max_bytes != size:
        _CACHE = ChunkCache(size)
    return _CACHE


_CACHE: ChunkCache | None = None


@dataclass(frozen=True)
class FieldSource:
    """A finished Field's data as a picklable, chunk-cached periodic reader."""

    url: str
    name: str
    shape: tuple[int, ...]
    dtype: str
    read_chunks: tuple[int, ...]
    stamp: str
    storage_options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_field(cls, ds: xr.Dataset) -> FieldSource:
        """The reader of an opened Field (from :func:`bigpaint.field.open_field`)."""
        url, name = ds.encoding["bigpaint_url"], ds.encoding["bigpaint_variable"]
        options = ds.encoding.get("bigpaint_storage_options") or {}
        arr = stored_array(open_group(url, options or None, mode="r"), name, url)
        unit = getattr(arr, "shards", None) or arr.chunks
        return cls(
            url,
            name,
            tuple(arr.shape),
            np.dtype(arr.dtype).str,
            tuple(unit),
            str(ds.attrs.get("bigpaint_finished")),
            tuple(sorted(options.items())),
        )

    def _array(self) -> zarr.Array:
        group = open_group(self.url, dict(self.storage_options) or None, mode="r")
        return stored_array(group, self.name, self.url)

    def read(self, window: Sequence[tuple[int, int]]) -> np.ndarray:
        """Periodic window read assembled from whole cached chunks."""
        cache = chunk_cache()
        spatial, lead = self.shape[-3:], self.shape[:-3]
        rc = self.read_chunks[-3:]
        out = np.empty(lead + tuple(b - a for a, b in window), dtype=self.dtype)
        pieces = []
        for (a, b), n, c in zip(window, spatial, rc, strict=True):
            axis = []
            for s0, s1, d0 in _axis_segments(a, b, n):
                pos = s0
                while pos < s1:
                    ci = pos // c
                    end = min(s1, (ci + 1) * c)
                    axis.append(
                        (ci, slice(pos - ci * c, end - ci * c), slice(d0 + pos - s0, d0 + end - s0))
                    )
                    pos = end
            pieces.append(axis)
        array = None
        for combo in itertools.product(*pieces):
            cidx = tuple(p[0] for p in combo)

            def load(cidx: tuple[int, ...] = cidx) -> np.ndarray:
                nonlocal array
                array = array if array is not None else self._array()
                sl = tuple(
                    slice(i * c, min((i + 1) * c, n))
                    for i, c, n in zip(cidx, rc, spatial, strict=True)
                )
                return read_region(array, spatial_index(sl), url=self.url, name=self.name)

            chunk = cache.get((self.url, self.name, self.stamp, cidx), load)
            out[spatial_index(p[2] for p in combo)] = chunk[spatial_index(p[1] for p in combo)]
        return out
