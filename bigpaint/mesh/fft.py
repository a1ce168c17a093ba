"""Distributed 3-D real FFT of arrays chunked on all three axes (slab or pencil transposes).

``dask.array.fft`` transforms only along axes held in one chunk, and a 2048^3 float32 box is
32 GiB, so it cannot be gathered anywhere. The transform here is the textbook transpose
algorithm written with dask primitives:

* **slab** (default): rechunk to x-slabs ``(cx, ny, nz)`` and do the 2-D real FFT over
  (y, z) in each slab; rechunk (the one all-to-all transpose) to y-slabs
  ``(nx, cy, nz/2+1)`` and do the 1-D FFT over x.
* **pencil**: z-pencils -> FFT z; y-pencils -> FFT y; x-pencils -> FFT x (two transposes,
  more and smaller blocks: use it when one slab plane is too large for a worker).

The transposes are ``dask.array.rechunk``. On a distributed cluster they use the P2P
(peer-to-peer shuffle) method, which streams shards between workers and spills them to each
worker's local disk, so a box larger than the cluster's memory completes instead of failing;
keep the set of workers fixed during a transform (no adaptive scale-down). Without a
distributed client the task-based rechunk of the threaded scheduler is used. Nothing is ever
gathered on one worker or the client: every block is at most ``block_bytes``.

Conventions are numpy's: ``rfftn`` is unnormalised, ``irfftn`` divides by the number of
voxels, the output layout equals ``numpy.fft.rfftn`` (shape ``(nx, ny, nz//2+1)``). float32
input is transformed in single precision (complex64), float64 in double; other real dtypes
are promoted to float64. Per-block transforms use ``scipy.fft`` (pocketfft).

A grid already in memory needs no transpose: :func:`rfftn_memory` transforms it whole with
``scipy.fft`` on several threads (what the statistics use for numpy input). The backend was
chosen by measurement on the 2-core development machine (float32, two threads, min of 3):
``scipy.fft`` 0.09 s at 256^3 and 0.73 s at 512^3, ``ducc0`` the same within noise, pyFFTW
with ``FFTW_ESTIMATE`` plans 0.12 s and 1.2 s (``FFTW_MEASURE`` is faster, 0.06 s at
256^3, but plans for 8.5 s per shape), numpy's pocketfft single-threaded and in float64
0.77 s at 256^3; so ``scipy.fft`` is used and no other dependency is needed. dask, zarr and
scipy are imported when a transform is built, not with this module.

Planning is apart from execution: :func:`bigpaint.mesh.fft_plan.plan_fft` is a pure
function returning the chunk layout of every stage (property-tested);
:func:`rfftn`/:func:`irfftn` build the lazy graph.
Further backends (a single large-memory GPU, mpi4py-fft, jaxdecomp) plug in by name with
:func:`register_fft_backend`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bigpaint.errors import ConfigError, NonFiniteError, ShapeError
from bigpaint.mesh.fft_plan import DEFAULT_MIN_BLOCKS, Chunks, plan_fft
from bigpaint.mesh.kgrid import rfft_shape

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "RechunkMethod",
    "fft_backends",
    "irfftn",
    "refuse_non_finite",
    "register_fft_backend",
    "rfftn",
    "rfftn_memory",
]

RechunkMethod = Literal["auto", "p2p", "tasks"]


# ---------------------------------------------------------------- execution helpers


def _has_client() -> bool:
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return False
    return True


def _rechunk(x: da.Array, chunks: tuple[tuple[int, ...], ...], method: RechunkMethod) -> da.Array:
    if tuple(x.chunks) == tuple(chunks):
        return x
    if method == "auto":
        method = "p2p" if _has_client() else "tasks"
    if method not in ("p2p", "tasks"):
        raise ConfigError(f"rechunk method must be 'auto', 'p2p' or 'tasks', got {method!r}")
    return x.rechunk(chunks, method=method)


def _complex_dtype(real: np.dtype) -> np.dtype:
    return np.dtype(np.complex64) if real == np.float32 else np.dtype(np.complex128)


def _real_dtype(cplx: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if cplx == np.complex64 else np.dtype(np.float64)


def _check_real(shape: tuple[int, ...], dtype: Any) -> None:
    if len(shape) != 3:
        raise ShapeError(f"rfftn needs a 3-D real array, got {len(shape)} dimensions {shape}")
    if np.dtype(dtype).kind == "c":
        raise ShapeError(
            f"rfftn needs a real array, got {np.dtype(dtype)}; use the real part or numpy.fft.fftn"
        )


def _as_real(x: Any, first_chunks: Chunks | None = None) -> da.Array:
    """A real dask array.

    A Zarr array is read lazily in its own chunks and transposed like any dask array (never
    loaded whole); numpy input is cut straight into ``first_chunks`` (the first stage's
    slabs or pencils), which saves a rechunk.
    """
    import dask.array as da
    import zarr

    if isinstance(x, da.Array):
        arr = x
    elif isinstance(x, zarr.Array):
        _check_real(tuple(x.shape), x.dtype)
        arr = da.from_zarr(x)
    else:
        src = np.asarray(x)
        _check_real(src.shape, src.dtype)
        arr = da.from_array(src, chunks=first_chunks or -1)
    _check_real(tuple(arr.shape), arr.dtype)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


def refuse_non_finite(block: np.ndarray, block_info: dict | None) -> None:
    """Refuse a block holding NaN or inf, naming the first such voxel (global index when
    ``block_info`` locates the block)."""
    bad = ~np.isfinite(block)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        if block_info is not None:
            first = tuple(
                i + int(r[0]) for i, r in zip(first, block_info[0]["array-location"], strict=True)
            )
        raise NonFiniteError(
            f"input holds {int(bad.sum())} NaN/inf values in one block (first at voxel {first}); "
            "clean the field before taking its FFT"
        )


def _forward_block(
    block: np.ndarray,
    axes: tuple[int, ...],
    real_stage: bool,
    check_finite: bool,
    workers: int,
    block_info: dict | None = None,
) -> np.ndarray:
    import scipy.fft

    if real_stage:
        if check_finite:
            refuse_non_finite(block, block_info)
        return scipy.fft.rfftn(block, axes=axes, workers=workers)
    return scipy.fft.fftn(block, axes=axes, workers=workers, overwrite_x=False)


def _inverse_block(
    block: np.ndarray, axes: tuple[int, ...], real_sizes: tuple[int, ...] | None, workers: int
) -> np.ndarray:
    import scipy.fft

    if real_sizes is not None:
        return scipy.fft.irfftn(block, s=real_sizes, axes=axes, workers=workers)
    return scipy.fft.ifftn(block, axes=axes, workers=workers)


# ---------------------------------------------------------------- backends


ForwardFn = Callable[..., "da.Array"]
InverseFn = Callable[..., "da.Array"]
_BACKENDS: dict[str, tuple[ForwardFn, InverseFn]] = {}


def register_fft_backend(name: str, forward: ForwardFn, inverse: InverseFn) -> None:
    """Register a distributed FFT backend by name.

    ``forward(x, **options) -> complex dask array`` must equal ``numpy.fft.rfftn`` of the 3-D
    real dask array ``x``; ``inverse(fk, shape, **options) -> real dask array`` its inverse.
    Options a backend does not understand should raise :class:`~bigpaint.errors.ConfigError`.
    """
    _BACKENDS[str(name)] = (forward, inverse)


def fft_backends() -> list[str]:
    """Names of the registered FFT backends."""
    return sorted(_BACKENDS)


def _backend(name: str) -> tuple[ForwardFn, InverseFn]:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown FFT backend {name!r}; available: {', '.join(fft_backends())}"
        ) from None


def _dask_rfftn(
    x: da.Array,
    *,
    decomposition: Literal["slab", "pencil"],
    rechunk_method: RechunkMethod,
    block_bytes: int | None,
    min_blocks: int,
    check_finite: bool,
    workers: int,
) -> da.Array:
    import dask.array as da

    cdtype = _complex_dtype(x.dtype)
    plan = plan_fft(
        x.shape,
        decomposition=decomposition,
        itemsize=cdtype.itemsize,
        block_bytes=block_bytes,
        min_blocks=min_blocks,
    )
    a = x
    for i, stage in enumerate(plan.forward):
        a = _rechunk(a, stage.chunks, rechunk_method)
        real_stage = i == 0
        out_chunks = list(stage.chunks)
        if real_stage:
            out_chunks[2] = (rfft_shape(plan.shape)[2],)
        a = da.map_blocks(
            _forward_block,
            a,
            stage.axes,
            real_stage,
            check_finite,
            workers,
            chunks=tuple(out_chunks),
            dtype=cdtype,
            meta=np.array((), cdtype),
            token=f"rfftn-{plan.decomposition}-{i}",
        )
    return a


def _dask_irfftn(
    fk: da.Array,
    shape: tuple[int, int, int],
    *,
    decomposition: Literal["slab", "pencil"],
    rechunk_method: RechunkMethod,
    block_bytes: int | None,
    min_blocks: int,
    workers: int,
) -> da.Array:
    import dask.array as da

    rdtype = _real_dtype(fk.dtype)
    plan = plan_fft(
        shape,
        decomposition=decomposition,
        itemsize=fk.dtype.itemsize,
        block_bytes=block_bytes,
        min_blocks=min_blocks,
    )
    a = fk
    last = len(plan.inverse) - 1
    for i, stage in enumerate(plan.inverse):
        a = _rechunk(a, stage.chunks, rechunk_method)
        if i == last:
            sizes = tuple(shape[ax] for ax in stage.axes)
            out_chunks = list(stage.chunks)
            out_chunks[2] = (shape[2],)
            a = da.map_blocks(
                _inverse_block,
                a,
                stage.axes,
                sizes,
                workers,
                chunks=tuple(out_chunks),
                dtype=rdtype,
                meta=np.array((), rdtype),
                token=f"irfftn-{plan.decomposition}-{i}",
            )
        else:
            a = da.map_blocks(
                _inverse_block,
                a,
                stage.axes,
                None,
                workers,
                dtype=fk.dtype,
                meta=np.array((), fk.dtype),
                token=f"irfftn-{plan.decomposition}-{i}",
            )
    return a


def _slab_forward(x: da.Array, **kw: Any) -> da.Array:
    return _dask_rfftn(x, decomposition="slab", **kw)


def _slab_inverse(fk: da.Array, shape: tuple[int, int, int], **kw: Any) -> da.Array:
    return _dask_irfftn(fk, shape, decomposition="slab", **kw)


def _pencil_forward(x: da.Array, **kw: Any) -> da.Array:
    return _dask_rfftn(x, decomposition="pencil", **kw)


def _pencil_inverse(fk: da.Array, shape: tuple[int, int, int], **kw: Any) -> da.Array:
    return _dask_irfftn(fk, shape, decomposition="pencil", **kw)


register_fft_backend("slab", _slab_forward, _slab_inverse)
register_fft_backend("pencil", _pencil_forward, _pencil_inverse)


# ---------------------------------------------------------------- public API


def rfftn(
    x: Any,
    *,
    backend: str = "slab",
    rechunk_method: RechunkMethod = "auto",
    block_bytes: int | None = None,
    min_blocks: int = DEFAULT_MIN_BLOCKS,
    check_finite: bool = True,
    workers: int = 1,
) -> da.Array:
    """Real 3-D FFT of a (dask) array chunked any way, like ``numpy.fft.rfftn``.

    Parameters
    ----------
    x : dask.array.Array, zarr.Array or array-like, 3-D real
        The field; any chunk layout (uneven, one chunk). A Zarr array (e.g.
        :func:`bigpaint.field.zarr_array` of a Field) is read lazily in its own chunks; a
        numpy array is cut straight into the first stage's slabs.
    backend : str
        ``"slab"`` (one transpose, default), ``"pencil"`` (two), or a registered backend.
    rechunk_method : {"auto", "p2p", "tasks"}
        How transposes run; ``"auto"`` uses P2P (disk-spilling) when a distributed client is
        active, else the task-based rechunk.
    block_bytes : int, optional
        Largest complex block of a stage (default: dask ``array.chunk-size``).
    min_blocks : int
        Split each stage into at least this many blocks where possible.
    check_finite : bool
        Raise :class:`~bigpaint.errors.NonFiniteError` (at compute time) when the input holds
        NaN or inf.
    workers : int
        Threads of ``scipy.fft`` per block (dask already runs blocks in parallel).

    Returns
    -------
    dask.array.Array
        Complex64 for float32 input, else complex128; shape ``(nx, ny, nz//2+1)``, equal to
        ``numpy.fft.rfftn(x)`` (unnormalised). Lazy: nothing runs until computed.
    """
    forward, _ = _backend(backend)
    first = None
    if isinstance(x, np.ndarray) and x.ndim == 3 and backend in ("slab", "pencil"):
        real = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        decomposition: Literal["slab", "pencil"] = "slab" if backend == "slab" else "pencil"
        first = (
            plan_fft(
                x.shape,
                decomposition=decomposition,
                itemsize=_complex_dtype(real).itemsize,
                block_bytes=block_bytes,
                min_blocks=min_blocks,
            )
            .forward[0]
            .chunks
        )
    arr = _as_real(x, first)
    opts = {
        "rechunk_method": rechunk_method,
        "block_bytes": block_bytes,
        "min_blocks": min_blocks,
        "check_finite": check_finite,
        "workers": workers,
    }
    return forward(arr, **opts)


def irfftn(
    fk: Any,
    shape: Sequence[int] | None = None,
    *,
    chunks: Any = None,
    backend: str = "slab",
    rechunk_method: RechunkMethod = "auto",
    block_bytes: int | None = None,
    min_blocks: int = DEFAULT_MIN_BLOCKS,
    workers: int = 1,
) -> da.Array:
    """Inverse of :func:`rfftn`, like ``numpy.fft.irfftn(fk, s=shape)``.

    Parameters
    ----------
    fk : dask.array.Array or array-like, complex, shape ``(nx, ny, nz//2+1)``
        Half-space Fourier array, any chunking.
    shape : sequence of 3 int, optional
        Real grid shape; default ``(nx, ny, 2 * (nz//2+1 - 1))`` (even ``nz``), as numpy.
    chunks : optional
        Chunks of the returned real array (as :class:`~bigpaint.chunked.grid.BlockGrid`
        takes them); default the last stage's slabs or pencils. Rechunked with the same method as the transposes.
    backend, rechunk_method, block_bytes, min_blocks, workers
        As in :func:`rfftn`.

    Returns
    -------
    dask.array.Array
        float32 for complex64 input, else float64; divided by ``nx*ny*nz`` (numpy's norm).
    """
    import dask.array as da

    from bigpaint.chunked.grid import BlockGrid

    arr = fk if isinstance(fk, da.Array) else da.from_array(np.asarray(fk), chunks=-1)
    if arr.ndim != 3:
        raise ShapeError(f"irfftn needs a 3-D half-space array, got shape {arr.shape}")
    if arr.dtype.kind != "c":
        arr = arr.astype(np.complex128)
    if shape is None:
        shape = (arr.shape[0], arr.shape[1], 2 * (arr.shape[2] - 1))
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or rfft_shape(shape) != tuple(arr.shape):
        raise ShapeError(
            f"a half-space array of shape {tuple(arr.shape)} cannot come from a real grid {shape}; "
            f"that grid's real FFT has shape {rfft_shape(shape) if len(shape) == 3 else '?'}"
        )
    _, inverse = _backend(backend)
    out = inverse(
        arr,
        shape,
        rechunk_method=rechunk_method,
        block_bytes=block_bytes,
        min_blocks=min_blocks,
        workers=workers,
    )
    if chunks is not None:
        out = _rechunk(out, BlockGrid(shape, chunks).chunks, rechunk_method)
    return out


def rfftn_memory(x: np.ndarray, *, workers: int | None = None) -> np.ndarray:
    """Real 3-D FFT of an in-memory grid, like ``numpy.fft.rfftn``, on several threads.

    Parameters
    ----------
    x : numpy.ndarray, 3-D real
        The grid. float32 is transformed in single precision (complex64 out), float64 in
        double; other real dtypes are promoted to float64 (a copy).
    workers : int, optional
        Threads of ``scipy.fft``; default numba's thread count
        (``numba.set_num_threads`` and ``NUMBA_NUM_THREADS`` set it), so one setting
        governs both the transform and the kernels that bin it.

    Returns
    -------
    numpy.ndarray
        Shape ``(nx, ny, nz//2+1)``, unnormalised. Non-finite input is not checked here (a
        NaN spreads to every mode, so callers check their sums).
    """
    import scipy.fft

    _check_real(x.shape, x.dtype)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if workers is None:
        import numba

        workers = numba.get_num_threads()
    with _small_pages():
        return scipy.fft.rfftn(x, workers=max(1, int(workers)))


@contextmanager
def _small_pages() -> Iterator[None]:
    """numpy's arrays made inside get 4 KiB pages, not transparent huge pages.

    numpy asks the kernel for huge pages on every large array (``madvise``). Where the
    kernel then compacts memory to find one (``defrag`` set to ``madvise``, a common
    default), a fresh 2 MiB page can stall for milliseconds: on the development machine the
    transform of a 256^3 grid took 0.10 s in most calls and 0.3 to 0.7 s in others, while
    with 4 KiB pages it took 0.11 to 0.26 s in every call (0.12 to 0.17 s by the median of
    ten). The transform writes its output once and reads it once, so huge pages buy it
    little. The switch is numpy's own (the one its ``NUMPY_MADVISE_HUGEPAGE`` sets), for
    the whole process: it is turned off while any transform runs and put back as it was
    when the last one ends."""
    global _pages_depth, _pages_before
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    get = getattr(multiarray, "_get_madvise_hugepage", None)
    put = getattr(multiarray, "_set_madvise_hugepage", None)
    if get is None or put is None:
        yield
        return
    with _pages_lock:
        if _pages_depth == 0:
            _pages_before = get()
            put(False)
        _pages_depth += 1
    try:
        yield
    finally:
        with _pages_lock:
            _pages_depth -= 1
            if _pages_depth == 0:
                put(_pages_before)


_pages_lock = threading.Lock()
_pages_depth = 0
_pages_before: bool | None = None
