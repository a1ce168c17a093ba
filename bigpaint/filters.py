"""Chunked periodic filters, named as in ``scipy.ndimage``.

Differences from scipy: every filter is periodic (``mode='wrap'`` is the only mode), works
chunk by chunk through :func:`bigpaint.chunked.apply.apply_blockwise`, and :func:`smooth` takes
its width in Mpc/h from the Field's box size. Integer and boolean inputs give float output
(see :func:`float_dtype`), where scipy would truncate the result to the input's dtype.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from bigpaint.chunked.apply import apply_blockwise
from bigpaint.context import gaussian_context
from bigpaint.errors import ConfigError, NonFiniteError, TooLargeError
from bigpaint.field import (
    FieldWriter,
    create_field,
    field_meta,
    job_token,
    open_field,
    remove_field,
    zarr_array,
)
from bigpaint.mass_assignment import mass_assignment_of
from bigpaint.outputs import check_apart, job_path, writing

__all__ = [
    "check_sigma",
    "check_smooth_size",
    "float_dtype",
    "gaussian_filter",
    "gaussian_window",
    "smooth",
]


def check_sigma(sigma: Sequence[float], what: str) -> None:
    """Refuse negative or non-finite smoothing widths with a one-line ConfigError."""
    if any(not math.isfinite(s) or s < 0 for s in sigma):
        raise ConfigError(
            f"{what} must be finite and >= 0, got {tuple(sigma)}; give a width like 2.0"
        )


def check_smooth_size(
    source: Any,
    sigma_mpc: float,
    *,
    truncate: float = 4.0,
    chunks: int | Sequence[int] | None = None,
    memory: int | None = None,
) -> None:
    """Refuse, before any work, a smoothing that is pointless or cannot fit in memory.

    Two rules. A Gaussian wider than the box (``sigma_mpc`` above the shortest box side) is
    refused: the periodic kernel then damps the box's fundamental mode by
    ``exp(-2 pi^2 sigma^2 / L^2) < 3e-9``, so the output is the input's mean to float
    precision, and the context it reads wraps the box several times. And each task holds its
    window (the block plus the kernel's context on every side, read in the input's dtype) and
    two copies in the output's float dtype; that must fit in ``memory``.

    Parameters
    ----------
    source : xarray.Dataset
        The input Field (from :func:`bigpaint.field.open_field`).
    sigma_mpc : float
        Standard deviation in Mpc/h.
    truncate : float
        Kernel truncation in standard deviations.
    chunks : int or sequence of 3 int, optional
        Output blocks in voxels (default: the input's chunks).
    memory : int, optional
        Bytes one task may use (default :func:`bigpaint.cluster.task_memory`: the smallest
        worker memory limit, else this machine's memory).

    Raises
    ------
    ConfigError
        ``sigma_mpc`` is wider than the box.
    TooLargeError
        A task's window does not fit in ``memory``.
    """
    from bigpaint.cluster import task_memory
    from bigpaint.config import format_bytes

    meta = field_meta(source)
    arr = zarr_array(source)
    url = source.encoding.get("bigpaint_url", "the input")
    box = min(meta.box_size)
    if sigma_mpc > box:
        raise ConfigError(
            f"sigma {sigma_mpc:g} Mpc/h is wider than the {box:g} Mpc/h box of {url}: the "
            "periodic smoothing would leave only the mean (every other mode damped below "
            f"3e-9); give sigma below {box:g} Mpc/h"
        )
    spatial = tuple(int(n) for n in arr.shape[-3:])
    blocks = arr.chunks[-3:] if chunks is None else chunks
    blocks = (
        (int(blocks),) * 3
        if isinstance(blocks, int | float | np.number)
        else tuple(int(b) for b in blocks)
    )
    ctx = gaussian_context([sigma_mpc / c for c in meta.cell_size(spatial)], truncate)
    window = tuple(min(b, n) + 2 * c for b, n, c in zip(blocks, spatial, ctx, strict=True))
    lead = math.prod(arr.shape[:-3])
    per_voxel = np.dtype(arr.dtype).itemsize + 2 * float_dtype(arr.dtype).itemsize
    need = lead * math.prod(window) * per_voxel
    have = task_memory() if memory is None else int(memory)
    if need > have:
        raise TooLargeError(
            f"smoothing {url} with sigma {sigma_mpc:g} Mpc/h reads a window of "
            f"{'x'.join(map(str, window))} voxels per block ({format_bytes(need)} with its "
            f"copies), more than the {format_bytes(have)} a task has; give smaller --chunks, a "
            "smaller sigma, or workers with more memory"
        )


def float_dtype(dtype: Any) -> np.dtype:
    """The dtype a filter computes and writes for input of ``dtype``.

    Floating inputs keep their dtype. Integer and boolean inputs (counts, masks) are
    filtered as floats, unlike ``scipy.ndimage``, which would truncate a smoothed count to an
    integer: float64 for 64-bit integers, whose values float32 cannot hold exactly, and
    float32 otherwise.
    """
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return dt
    if dt.kind in "biu":
        return np.dtype("f8") if dt.itemsize >= 8 else np.dtype("f4")
    raise ConfigError(f"cannot filter values of dtype {dt}; give a real-valued Field")


def gaussian_window(window: np.ndarray, *, sigma: tuple[float, ...], truncate: float) -> np.ndarray:
    """Separable Gaussian of a window, cropping each axis's context right after its pass.

    Same 1-D passes, in the same axis order and dtype, as ``scipy.ndimage.gaussian_filter``
    (so the core is bit-identical), but each later pass runs on a smaller array: for a
    64^3 core with 8 voxels of context this is 1.59x the core's work instead of 1.95x.
    """
    out = window.astype(float_dtype(window.dtype), copy=False)
    lead = window.ndim - 3
    for ax, (s, c) in enumerate(zip(sigma, gaussian_context(sigma, truncate), strict=True)):
        axis = lead + ax
        if s > 1e-15:  # scipy skips (near-)zero sigmas too
            out = ndi.gaussian_filter1d(out, s, axis=axis, mode="wrap", truncate=truncate)
        if c:
            out = out[(slice(None),) * axis + (slice(c, out.shape[axis] - c),)]
    return out


def gaussian_filter(
    input: Any,
    sigma: float | Sequence[float],
    *,
    truncate: float = 4.0,
    chunks: Any = None,
    output: np.ndarray | None = None,
) -> np.ndarray:
    """Periodic Gaussian filter of an in-memory or Zarr array, chunk by chunk.

    Equal to ``scipy.ndimage.gaussian_filter(input, sigma, mode='wrap', truncate=truncate)``
    on the last three axes, for any chunk layout.

    Parameters
    ----------
    input : numpy.ndarray or zarr.Array
        3-D array, or 4-D with a leading channel axis (not filtered).
    sigma : float or sequence of 3 float
        Standard deviation in voxels per spatial axis.
    truncate : float
        Kernel truncation in standard deviations.
    chunks : optional
        Block layout (dask convention); default one block.
    output : numpy.ndarray, optional
        Array to write into.
    """
    sig = (
        (float(sigma),) * 3
        if isinstance(sigma, int | float | np.number)
        else tuple(float(s) for s in sigma)
    )
    check_sigma(sig, "sigma")
    out = np.empty(input.shape, dtype=float_dtype(input.dtype)) if output is None else output
    block = functools.partial(gaussian_window, sigma=sig, truncate=truncate)
    apply_blockwise(
        block, input, out, gaussian_context(sig, truncate), chunks=chunks, name="gaussian"
    )
    return out


def smooth(
    input: str,
    output: str,
    sigma_mpc: float,
    *,
    truncate: float = 4.0,
    chunks: int | Sequence[int] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> FieldWriter:
    """Gaussian-smooth a Field in real space with periodic wrap, writing a new Field.

    Parameters
    ----------
    input, output : str
        Paths or fsspec URLs of the input Field and the output store.
    sigma_mpc : float
        Standard deviation of the Gaussian in Mpc/h (converted to voxels per axis from the
        Field's box size and grid).
    truncate : float
        Kernel truncation in standard deviations.
    chunks : int or sequence of 3 int, optional
        Write blocks of the output in voxels; default: the input's chunks.
    overwrite : bool
        Replace an existing output. Without it an existing output is refused, unless it is an
        unfinished run of this same job, which is resumed.
    progress : bool
        Show a progress bar.

    Returns
    -------
    FieldWriter
        Handle on the finished output (``.open()`` reads it).
    """
    check_sigma([sigma_mpc], "sigma (Mpc/h)")
    if not math.isfinite(truncate) or truncate <= 0:
        raise ConfigError(f"truncate must be > 0 standard deviations, got {truncate}")
    check_apart({"output": output}, {"input": input})
    src = open_field(input, storage_options=storage_options)
    check_smooth_size(src, sigma_mpc, truncate=truncate, chunks=chunks)
    meta = field_meta(src)
    arr = zarr_array(src)
    cell = meta.cell_size(arr.shape)
    sigma_vox = tuple(sigma_mpc / c for c in cell)
    out_chunks = chunks if chunks is not None else arr.chunks[-3:]
    params = {"sigma_mpc": sigma_mpc, "truncate": truncate}
    job = job_token(
        operation="smooth",
        input=job_path(input),
        input_finished=src.attrs.get("bigpaint_finished"),
        chunks=out_chunks,
        **params,
    )
    out_meta = meta.model_copy(
        update={
            "provenance": {
                "operation": "smooth",
                "inputs": [str(input)],
                "config": params,
            },
            # a Gaussian leaves the deposit's window in: keep the record (older spellings too)
            "mass_assignment": mass_assignment_of(meta, str(input)),
        }
    )
    with writing({"output": output}, {"input": input}, storage_options=storage_options):
        writer = create_field(
            output,
            shape=arr.shape,
            chunks=out_chunks,
            meta=out_meta,
            dtype=float_dtype(arr.dtype),
            name=src.attrs["bigpaint_variable"],
            job=job,
            overwrite=overwrite,
            storage_options=storage_options,
        )
        fresh = len(writer.pending()) == int(np.prod(writer.grid))
        block = functools.partial(gaussian_window, sigma=sigma_vox, truncate=truncate)
        try:
            apply_blockwise(
                block,
                src,
                writer,
                gaussian_context(sigma_vox, truncate),
                progress=progress,
                name="smooth",
            )
        except NonFiniteError:
            if fresh:  # bad input: leave no half-written output behind
                remove_field(output, storage_options)
            raise
    return writer
