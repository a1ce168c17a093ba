"""The chunk primitive: apply ``f`` to every block with periodic context, write the core.

Why not ``dask.array.map_overlap``: it defaults to no boundary, fails or merges chunks when
the depth exceeds a chunk (dask #6688, #11580, #11934), can use ~10x the memory of
``map_blocks`` (dask #3671), and gives each output chunk ~27 dependencies, which strains
the scheduler at 10^4+ chunks (distributed #3898). Here each output block is ONE task that
reads ``block + 2*context`` straight from the source (Zarr, or an in-memory array) with
periodic (modular) index reads, calls ``f``, and writes the core into its own region of the
destination. The graph is one task per block plus nothing else; memory per task is the
window, whatever the box size; the context may exceed a block (or even the box).

Planning is apart from execution: :class:`BlockPlan` is a pure description of the blocks
and their windows; :func:`run_tasks` executes a list of calls on the current Dask client
(distributed) or the local threaded scheduler, reporting progress through
:mod:`bigpaint.progress`.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import xarray as xr
import zarr

from bigpaint.chunk_read import read_region
from bigpaint.chunked.client import current_client
from bigpaint.chunked.grid import BlockGrid, ChunkSpec
from bigpaint.context import as_context
from bigpaint.errors import (
    STORAGE_ERRNOS,
    BigpaintError,
    ChunkingError,
    NonFiniteError,
    ShapeError,
    storage_error,
)
from bigpaint.field import FieldWriter, zarr_array
from bigpaint.progress import Progress
from bigpaint.store import open_group

logger = logging.getLogger(__name__)

__all__ = [
    "BlockInfo",
    "BlockPlan",
    "FieldSource",
    "apply_blockwise",
    "build_tasks",
    "chunk_cache",
    "periodic_read",
    "run_tasks",
]


# ---------------------------------------------------------------- planning


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
        src = (Ellipsis, *(slice(s0, s1) for s0, s1, _ in combo))
        dst = tuple(slice(d0, d0 + s1 - s0) for s0, s1, d0 in combo)
        out[(Ellipsis, *dst)] = read(src) if read else np.asarray(array[src])
    return out


def _zarr_reader(array: zarr.Array) -> Callable[[Any], np.ndarray]:
    """Region reads of a bare Zarr array whose errors name its store and chunk."""
    url = str(getattr(array.store, "root", None) or array.store).removeprefix("file://")
    name = array.path or "(root array)"
    return lambda region: read_region(array, region, url=url, name=name)


# ---------------------------------------------------------------- cached Zarr source


class _ChunkCache:
    """Process-wide LRU cache of decoded source chunks, bounded in bytes.

    Neighbouring blocks read the same neighbour chunks for their context (a window with
    context smaller than a chunk touches 27 chunks, 18 of them shared with the next block
    along an axis), and decoding a chunk costs far more than copying from it. Only finished
    Fields are cached (they never change), keyed by URL, variable and finish time.
    """

    def __init__(self, max_bytes: int) -> None:
        import collections
        import threading

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


def chunk_cache() -> _ChunkCache:
    """This process's chunk cache; size from dask config ``bigpaint.chunk-cache`` (bytes)."""
    global _CACHE
    size = int(dask.utils.parse_bytes(dask.config.get("bigpaint.chunk-cache", "256MiB")))
    if _CACHE is None or _CACHE.max_bytes != size:
        _CACHE = _ChunkCache(size)
    return _CACHE


_CACHE: _ChunkCache | None = None


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
        arr = zarr_array(ds)
        unit = getattr(arr, "shards", None) or arr.chunks
        return cls(
            ds.encoding["bigpaint_url"],
            ds.encoding["bigpaint_variable"],
            tuple(arr.shape),
            np.dtype(arr.dtype).str,
            tuple(unit),
            str(ds.attrs.get("bigpaint_finished")),
            tuple(sorted((ds.encoding.get("bigpaint_storage_options") or {}).items())),
        )

    def _array(self) -> zarr.Array:
        return open_group(self.url, dict(self.storage_options) or None, mode="r")[self.name]  # type: ignore[return-value]

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
                return read_region(array, (Ellipsis, *sl), url=self.url, name=self.name)

            chunk = cache.get((self.url, self.name, self.stamp, cidx), load)
            out[(Ellipsis, *(p[2] for p in combo))] = chunk[(Ellipsis, *(p[1] for p in combo))]
        return out


# ---------------------------------------------------------------- execution


def build_tasks(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    *,
    shared: dict[str, Any] | None = None,
    name: str = "bigpaint",
) -> tuple[dict[str, Any], list[str]]:
    """A raw Dask graph with one task per call of ``fn(*call, **shared)``.

    ``shared`` values enter the graph once each, as data nodes the tasks refer to. The graph
    holds ``len(calls)`` tasks plus one node per shared value, nothing else (no overlap,
    concatenate or getitem tasks). It is built with dask's task spec directly, because
    ``dask.delayed`` costs ~1 ms per call (32k blocks: 16 s of graph building) against
    ~5 us here.

    Returns
    -------
    dsk : dict
        The graph.
    keys : list of str
        The task keys, in the order of ``calls``.
    """
    from dask._task_spec import DataNode, Task, TaskRef

    token = dask.base.tokenize(name, time.time_ns(), len(calls))
    dsk: dict[str, Any] = {}
    refs = {}
    for k, v in (shared or {}).items():
        key = f"{name}-{k}-{token}"
        dsk[key] = DataNode(key, v)
        refs[k] = TaskRef(key)
    keys = []
    for i, call in enumerate(calls):
        key = f"{name}-{token}-{i}"
        dsk[key] = Task(key, fn, *call, **refs)
        keys.append(key)
    return dsk, keys


def run_tasks(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    *,
    shared: dict[str, Any] | None = None,
    name: str = "bigpaint",
    progress: bool = False,
    scheduler: str | None = None,
    num_workers: int | None = None,
    resources: dict[str, float] | None = None,
) -> list[Any]:
    """Run ``fn(*call, **shared)`` for every call, one Dask task each, and return the results.

    Runs on the current distributed client if there is one (``scheduler=None``), else on
    the local threaded scheduler. ``shared`` values enter the graph once (not once per
    task). The first failing task's exception is raised with its original type; tasks not
    yet started are cancelled.

    Parameters
    ----------
    fn : callable
        Module-level function (picklable for distributed workers).
    calls : sequence of tuple
        Positional arguments of each call.
    shared : dict, optional
        Keyword arguments common to every call.
    name : str
        Prefix of the task keys and the progress label.
    progress : bool
        Report block progress on the ``bigpaint.progress`` logger (INFO): a bar when
        stderr is a terminal, else a line every few seconds (:mod:`bigpaint.progress`).
    scheduler : {None, "threads", "sync"}
        Force a local scheduler even if a client exists (for in-memory destinations).
    num_workers : int, optional
        Threads of the local threaded scheduler (default: one per core).
    resources : dict, optional
        Worker resources each task needs (e.g. ``{"GPU": 1}``) on a distributed cluster;
        given to the scheduler as restrictions with the graph, so no graph optimisation can
        drop them (dask #7036).
    """
    if not calls:
        return []
    dsk, keys = build_tasks(fn, calls, shared=shared, name=name)
    wanted = set(keys)
    client = None if scheduler else current_client()
    logger.debug(
        "%s: %d tasks on %s", name, len(keys), "the cluster" if client else "local threads"
    )
    prog = Progress(name, len(keys), unit="blocks", enabled=progress)
    ok = False
    try:
        if client is not None:
            from distributed import as_completed

            futures = client.get(dsk, keys, sync=False, resources=resources)
            index = {f.key: i for i, f in enumerate(futures)}
            results: list[Any] = [None] * len(futures)
            try:
                for fut in as_completed(futures):
                    results[index[fut.key]] = fut.result()
                    prog.update()
            except BaseException:
                client.cancel(futures)
                _drain(client, wanted)
                raise
            ok = True
            return results
        from dask.callbacks import Callback

        class _Count(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                if key in wanted:
                    prog.update()

        with _Count():
            if scheduler == "sync":
                out = list(dask.local.get_sync(dsk, keys))
            else:
                out = list(dask.threaded.get(dsk, keys, num_workers=num_workers))
        ok = True
        return out
    finally:
        prog.close(ok=ok)


def _running_on_workers(keys: set[str], dask_worker: Any = None) -> int:
    states = ("executing", "long-running", "cancelled", "resumed")
    return sum(1 for k, ts in dask_worker.state.tasks.items() if k in keys and ts.state in states)


def _drain(client: Any, keys: set[str], timeout: float = 120.0) -> None:
    """Wait until no worker still runs one of ``keys`` (cancelling cannot stop a running
    thread), so that a caller cleaning up after an error does so after the last write."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = client.run(_running_on_workers, keys)
        except Exception:  # workers gone: nothing can still write
            return
        if not any(running.values()):
            return
        time.sleep(0.05)


def _source_array(source: Any) -> Any:
    if isinstance(source, xr.Dataset):
        return FieldSource.from_field(source)
    if isinstance(source, xr.DataArray):
        raise TypeError("pass the Field Dataset (from open_field), not a DataArray")
    if isinstance(source, (np.ndarray, zarr.Array)):
        return source
    if callable(getattr(source, "read", None)) and hasattr(source, "shape"):
        return source  # a window reader like FieldSource (e.g. projected slabs)
    raise TypeError(
        f"source must be a Field, Zarr array or numpy array, got {type(source).__name__}"
    )


def _takes_block_info(func: Callable[..., Any]) -> bool:
    try:
        return "block_info" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def _run_block(
    index: tuple[int, ...],
    *,
    func: Callable[..., np.ndarray],
    source: Any,
    dest: Any,
    plan: BlockPlan,
    check_finite: bool,
    pass_info: bool,
) -> float:
    t0 = time.perf_counter()
    if not isinstance(source, (np.ndarray, zarr.Array)):
        window = source.read(plan.window(index))
    else:
        window = periodic_read(source, plan.window(index))
    core_sl = plan.core(index)
    core_shape = tuple(s.stop - s.start for s in core_sl)
    inner = tuple(slice(c, c + n) for c, n in zip(plan.context, core_shape, strict=True))
    if check_finite and window.dtype.kind in "fc":
        own = window[(Ellipsis, *inner)]
        bad = ~np.isfinite(own)
        if bad.any():
            first = np.argwhere(bad)[0][-3:] + [s.start for s in core_sl]
            raise NonFiniteError(
                f"input holds {int(bad.sum())} NaN/inf values in block {tuple(index)} "
                f"(first at voxel {tuple(int(i) for i in first)}); clean the input field first"
            )
    out = func(window, block_info=plan.info(index)) if pass_info else func(window)
    out = np.asarray(out)
    if out.shape[-3:] == window.shape[-3:] and any(plan.context):
        out = out[(Ellipsis, *inner)]
    if out.shape[-3:] != core_shape:
        raise ShapeError(
            f"block function returned spatial shape {out.shape[-3:]} for block {tuple(index)}; "
            f"it must return the window {window.shape[-3:]} or the core {core_shape}"
        )
    if isinstance(dest, FieldWriter):
        try:
            dest.write_block(index, out)
        except OSError as exc:  # a full, read-only or forbidden output: name it and the block
            if exc.errno not in STORAGE_ERRNOS or isinstance(exc, BigpaintError):
                raise
            raise storage_error(exc, dest.url) from None
    else:
        dest[(Ellipsis, *core_sl)] = out
    return time.perf_counter() - t0


def apply_blockwise(
    func: Callable[..., np.ndarray],
    source: Any,
    dest: FieldWriter | np.ndarray,
    context: int | Sequence[int],
    *,
    chunks: Any = None,
    check_finite: bool = True,
    progress: bool = False,
    name: str = "blockwise",
    resources: dict[str, float] | None = None,
) -> int:
    """Apply ``func`` to every block with ``context`` voxels of periodic neighbourhood.

    Parameters
    ----------
    func : callable
        ``func(window) -> array`` or ``func(window, block_info=BlockInfo) -> array``, where
        ``window`` is the block plus ``context`` voxels on each side along the last three
        axes. It returns either the whole window (the core is cut out) or just the core;
        leading (channel) axes may change size. Must be picklable for distributed runs.
    source : Field Dataset, zarr.Array or numpy.ndarray
        Input; the last three axes are spatial and periodic.
    dest : FieldWriter or numpy.ndarray
        Output. A FieldWriter is written block by block (one task per write block) and
        resumed: blocks already marked done are skipped; it is finalized at the end. A numpy
        destination forces the local threaded scheduler.
    context : int or sequence of 3 int
        Voxels of periodic neighbourhood per side (from :mod:`bigpaint.context`).
    chunks : optional
        Block layout (dask convention, uneven allowed) for numpy destinations; a FieldWriter
        dictates its own write grid and other chunks are refused.
    check_finite : bool
        Refuse NaN/inf in the input, checked on each block as it is read.
    progress : bool
        Report block progress (see :func:`run_tasks`).
    resources : dict, optional
        Worker resources per task on a distributed cluster (e.g. ``{"GPU": 1}``).

    Returns
    -------
    int
        Number of blocks computed in this call (0 when everything was already done).
    """
    src = _source_array(source)
    spatial = tuple(src.shape[-3:])
    if len(src.shape) not in (3, 4):
        raise ShapeError(f"source must be 3-D or 4-D (channel first), got shape {src.shape}")
    if tuple(dest.shape[-3:]) != spatial:
        raise ShapeError(
            f"destination spatial shape {dest.shape[-3:]} differs from source {spatial}"
        )
    if isinstance(dest, FieldWriter):
        grid_chunks = dest.block_chunks
        if chunks is not None and BlockGrid(spatial, chunks).chunks != grid_chunks:
            raise ChunkingError(
                f"chunks {chunks} differ from the output Field's write blocks {dest.chunks}; "
                "create the output with the chunking you want instead"
            )
        plan = BlockPlan.build(spatial, grid_chunks, context)
        todo = dest.pending()
        scheduler = None
    else:
        plan = BlockPlan.build(spatial, chunks if chunks is not None else spatial, context)
        todo = list(plan.blocks())
        scheduler = "threads"
    calls = [(idx,) for idx in todo]
    run_tasks(
        _run_block,
        calls,
        shared={
            "func": func,
            "source": src,
            "dest": dest,
            "plan": plan,
            "check_finite": check_finite,
            "pass_info": _takes_block_info(func),
        },
        name=name,
        progress=progress,
        scheduler=scheduler,
        resources=resources,
    )
    if isinstance(dest, FieldWriter):
        dest.finalize()
    return len(todo)


def iter_blocks(plan: BlockPlan) -> Iterable[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Yield ``(index, core slices)`` for every block of a plan (for reductions)."""
    for idx in plan.blocks():
        yield idx, plan.core(idx)
