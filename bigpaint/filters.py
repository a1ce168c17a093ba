"""Chunked periodic filters, named as in ``scipy.ndimage``.

Differences from scipy: every filter is periodic (``mode='wrap'`` is the only mode), works
chunk by chunk through :func:`bigpaint.blockwise.apply_blockwise`, and :func:`smooth` takes
its width in Mpc/h from the Field's box size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from bigpaint.blockwise import apply_blockwise
from bigpaint.context import gaussian_context
from bigpaint.errors import ConfigError, FieldExistsError, NonFiniteError
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

__all__ = ["check_sigma", "gaussian_filter", "smooth"]


def check_sigma(sigma: Sequence[float], what: str) -> None:
    """Refuse negative or non-finite smoothing widths with a one-line ConfigError."""
    if any(not math.isfinite(s) or s < 0 for s in sigma):
        raise ConfigError(
            f"{what} must be finite and >= 0, got {tuple(sigma)}; give a width like 2.0"
        )


def _gaussian_block(window: np.ndarray, *, sigma: tuple[float, ...], truncate: float) -> np.ndarray:
    """Separable Gaussian of a window, cropping each axis's context right after its pass.

    Same 1-D passes, in the same axis order and dtype, as ``scipy.ndimage.gaussian_filter``
    (so the core is bit-identical), but each later pass runs on a smaller array: for a
    64^3 core with 8 voxels of context this is 1.59x the core's work instead of 1.95x.
    """
    out = window
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
    sig = (float(sigma),) * 3 if np.isscalar(sigma) else tuple(float(s) for s in sigma)  # type: ignore[arg-type]
    check_sigma(sig, "sigma")
    out = np.empty(input.shape, dtype=input.dtype) if output is None else output
    block = functools.partial(_gaussian_block, sigma=sig, truncate=truncate)
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
    if str(input).rstrip("/") == str(output).rstrip("/"):
        raise FieldExistsError(f"output {output} is the input; write to another path")
    src = open_field(input, storage_options=storage_options)
    meta = field_meta(src)
    arr = zarr_array(src)
    cell = meta.cell_size(arr.shape)
    sigma_vox = tuple(sigma_mpc / c for c in cell)
    out_chunks = chunks if chunks is not None else arr.chunks[-3:]
    params = {"sigma_mpc": sigma_mpc, "truncate": truncate}
    job = job_token(
        operation="smooth",
        input=str(input),
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
    writer = create_field(
        output,
        shape=arr.shape,
        chunks=out_chunks,
        meta=out_meta,
        dtype=arr.dtype,
        name=src.attrs["bigpaint_variable"],
        job=job,
        overwrite=overwrite,
        storage_options=storage_options,
    )
    fresh = len(writer.pending()) == int(np.prod(writer.grid))
    block = functools.partial(_gaussian_block, sigma=sigma_vox, truncate=truncate)
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
