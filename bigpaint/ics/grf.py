"""Gaussian random fields on the cluster: seeded white noise shaped by sqrt(P(k)).

The linear density contrast is made in three lazy steps, none of which gathers the box:

1. **White noise** in real space from :func:`bigpaint.ics.noise.white_noise_array`: fixed
   noise tiles keyed by ``(seed, i, j, k)``, generated directly in the x-slabs that the first
   stage of the distributed FFT wants (no rechunk before the transform).
2. **Forward FFT** with :func:`bigpaint.mesh.fft.rfftn` and, block by block on its output,
   multiplication by the amplitude ``sqrt(P(|k|, z) / V_cell)`` (``V_cell = V / N^3``), the DC
   mode set to zero. Optionally the amplitude is fixed (``|w_k|`` replaced by its expectation
   ``sqrt(N^3)``, Angulo & Pontzen 2016) and/or the phases are flipped (the "paired" twin,
   ``delta -> -delta``).
3. **Inverse FFT** with :func:`bigpaint.mesh.fft.irfftn` straight into the write blocks of
   the output Field, one task per block.

Convention (numpy's unnormalised FFT, as :mod:`bigpaint.stats.power`): the unit white noise
``w`` has ``<|w_k|^2> = N^3``, so ``delta_k = w_k sqrt(P / V_cell)`` has
``<|delta_k|^2> = P(k) N^6 / V`` and the measured spectrum ``<|delta_k|^2> V / N^6`` equals
the input ``P(k)`` (tested against the measured P(k) within cosmic variance).

What the values depend on: the seed, the noise tile, the grid and box, the spectrum, the
options and the precision. Not on the output chunks, the worker count or the scheduler: the
FFT's internal decomposition is fixed by the grid (and dask's ``array.chunk-size``, which
sizes the slabs; :func:`bigpaint.mesh.fft_plan.plan_fft`), every per-block step is elementwise, and
the last rechunk only moves values. Runs with different chunkings or worker counts are
bit-identical (tested).

Why hand-written: the amplitude step is a few lines of numpy per Fourier block; no library
shapes a dask-distributed FFT by a power spectrum.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, Literal

import dask.array as da
import numpy as np
import scipy.fft

from bigpaint.chunked.block_info import array_location, chunk_location
from bigpaint.chunked.grid import BlockGrid, default_chunks
from bigpaint.errors import ConfigError, ShapeError
from bigpaint.field import FieldWriter, create_field, job_token
from bigpaint.ics.noise import white_noise_array
from bigpaint.ics.power import LinearPower
from bigpaint.mesh.fft import irfftn, rfftn
from bigpaint.mesh.fft_plan import plan_fft
from bigpaint.mesh.kgrid import block_modes, full_location, rfft_shape
from bigpaint.outputs import writing
from bigpaint.progress import compute

__all__ = [
    "Precision",
    "box_length",
    "cube_shape",
    "fft_input_chunks",
    "gaussian_field",
    "gaussian_field_array",
    "linear_meta",
    "linear_modes",
    "linear_modes_array",
    "noise_modes",
    "precision_dtypes",
    "slab_chunks",
    "store_field",
    "white_noise_dask",
]

Precision = Literal["single", "double"]


def precision_dtypes(precision: str) -> tuple[np.dtype, np.dtype]:
    """The (real, complex) dtypes of ``"single"`` or ``"double"`` precision."""
    if precision == "single":
        return np.dtype(np.float32), np.dtype(np.complex64)
    if precision == "double":
        return np.dtype(np.float64), np.dtype(np.complex128)
    raise ConfigError(f"precision must be 'single' or 'double', got {precision!r}")


def cube_shape(grid: int) -> tuple[int, int, int]:
    """``(n, n, n)`` for a cubic grid of ``n >= 2`` cells per side."""
    n = int(grid)
    if n < 2:
        raise ShapeError(f"the grid needs at least 2 cells per side, got {grid}")
    return (n, n, n)


def box_length(box_size: float) -> float:
    """The box side in Mpc/h, refusing a non-finite or non-positive one (ConfigError)."""
    box = float(box_size)
    if not (math.isfinite(box) and box > 0):
        raise ConfigError(f"box_size must be a positive length in Mpc/h, got {box_size}")
    return box


# ---------------------------------------------------------------- per-block Fourier steps


def block_k2(shape: tuple[int, int, int], location: Any) -> tuple[np.ndarray, ...]:
    """Integer mode numbers ``(mx, my, mz)`` (broadcastable) and ``m^2`` of a half-space block."""
    mx, my, mz = block_modes(shape, location)
    k2 = (mx * mx + my * my) + mz * mz
    return mx, my, mz, k2


def shape_modes(
    wk: np.ndarray,
    location: Any,
    *,
    shape: tuple[int, int, int],
    box_size: float,
    power: LinearPower,
    redshift: float = 0.0,
    fixed_amplitude: bool = False,
    paired: bool = False,
) -> np.ndarray:
    """Turn white-noise modes ``w_k`` of one half-space block into ``delta_k``.

    ``delta_k = w_k sqrt(P(|k|, z) / V_cell)``; with ``fixed_amplitude`` ``w_k`` is first
    replaced by ``sqrt(N^3) w_k / |w_k|``; with ``paired`` the sign is flipped. The DC mode
    is zero. Keeps the dtype of ``wk``.

    Parameters
    ----------
    wk : complex array
        The block of ``rfftn(white noise)``.
    location : sequence of 3 (start, stop)
        The block's place in the half-space array.
    shape : 3 ints
        Real grid (voxels).
    box_size : float
        Box side in Mpc/h.
    power : LinearPower
    redshift : float
        ``P`` is taken at this redshift (``D1(z)^2 P(k, 0)``).
    """
    n3 = float(np.prod(shape))
    kf = 2.0 * math.pi / box_size
    v_cell = box_size**3 / n3
    _, _, _, k2 = block_k2(shape, location)
    top = int(k2.max()) if k2.size else 0
    table = np.sqrt(power(kf * np.sqrt(np.arange(top + 1, dtype=np.float64)), redshift) / v_cell)
    table[0] = 0.0
    amp = table[k2].astype(wk.real.dtype, copy=False)
    if fixed_amplitude:
        mag = np.abs(wk)
        unit = np.where(mag > 0, wk / np.where(mag > 0, mag, 1), 0)
        wk = (unit * np.sqrt(n3)).astype(wk.dtype, copy=False)
    out = wk * amp
    if paired:
        out = -out
    return out.astype(wk.dtype, copy=False)


def _shape_block(wk: np.ndarray, block_info: dict | None = None, **kw: Any) -> np.ndarray:
    return shape_modes(wk, array_location(block_info), **kw)


# ---------------------------------------------------------------- lazy noise and modes


def _noise_block(
    *,
    shape: tuple[int, int, int],
    seed: int,
    tile: int,
    out_dtype: Any,
    block_info: dict | None = None,
) -> np.ndarray:
    window = tuple(slice(a, b) for a, b in array_location(block_info, None))
    return white_noise_array(shape, window, seed=seed, tile=tile, dtype=out_dtype)


def white_noise_dask(
    grid: int, *, seed: int, tile: int = 32, chunks: Any, dtype: Any = "float32"
) -> da.Array:
    """The seeded white noise of :func:`bigpaint.ics.noise.white_noise_array` as a lazy dask
    array in any chunking (each block draws only the noise tiles it overlaps)."""
    shape = cube_shape(grid)
    white_noise_array(shape, (slice(0, 0),) * 3, seed=seed, tile=tile)  # validates early
    dt = np.dtype(dtype)
    return da.map_blocks(
        _noise_block,
        shape=shape,
        seed=int(seed),
        tile=int(tile),
        out_dtype=dt,
        dtype=dt,
        chunks=BlockGrid(shape, chunks).chunks,
        meta=np.array((), dt),
        name=f"white-noise-{job_token(g=grid, s=seed, t=tile, d=dt.str, c=str(chunks))}",
    )


def linear_modes(
    grid: int,
    box_size: float,
    *,
    seed: int,
    power: LinearPower,
    redshift: float = 0.0,
    tile: int = 32,
    fixed_amplitude: bool = False,
    paired: bool = False,
    precision: Precision = "single",
    backend: str = "slab",
) -> da.Array:
    """``delta_k`` (numpy's ``rfftn`` layout, unnormalised) of the linear field, lazily.

    Parameters
    ----------
    grid : int
        Cells per side (a multiple of ``tile``).
    box_size : float
        Box side in Mpc/h.
    seed, tile
        The white noise (:mod:`bigpaint.ics.noise`).
    power : LinearPower
    redshift : float
        Redshift of the returned modes (0: the normalisation of LPT's ``psi1``).
    fixed_amplitude, paired : bool
        Fixed-amplitude and/or phase-flipped field.
    precision : {"single", "double"}
        float32 noise and complex64 FFTs, or float64/complex128.
    backend : str
        Distributed FFT backend (``slab`` or ``pencil``).

    Returns
    -------
    dask.array.Array
        Complex, shape ``(N, N, N//2+1)``, chunked as the FFT's last stage.
    """
    shape = cube_shape(grid)
    box = box_length(box_size)
    real, _ = precision_dtypes(precision)
    noise = white_noise_dask(
        grid, seed=seed, tile=tile, chunks=fft_input_chunks(shape, precision, backend), dtype=real
    )
    return noise_modes(
        noise,
        box,
        power=power,
        redshift=redshift,
        fixed_amplitude=fixed_amplitude,
        paired=paired,
        precision=precision,
        backend=backend,
    )


def slab_chunks(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Write blocks of a scratch field: x-slabs of about 64 MiB (float32)."""
    plane = shape[1] * shape[2] * 4
    return (max(1, min(shape[0], (64 << 20) // plane)), shape[1], shape[2])


def fft_input_chunks(shape: tuple[int, int, int], precision: str, backend: str) -> Any:
    """The chunks the first stage of the distributed FFT of ``shape`` wants (no rechunk).

    A backend registered by name other than ``slab`` and ``pencil`` gets the slab plan's
    chunks: it rechunks its input as it needs, as :func:`~bigpaint.mesh.fft.rfftn` does.
    """
    _, cplx = precision_dtypes(precision)
    decomposition: Literal["slab", "pencil"] = "pencil" if backend == "pencil" else "slab"
    plan = plan_fft(shape, decomposition=decomposition, itemsize=cplx.itemsize)
    return plan.forward[0].chunks


def noise_modes(
    noise: da.Array,
    box_size: float,
    *,
    power: LinearPower,
    redshift: float = 0.0,
    fixed_amplitude: bool = False,
    paired: bool = False,
    precision: Precision = "single",
    backend: str = "slab",
) -> da.Array:
    """``delta_k`` (numpy's ``rfftn`` layout) of any unit white noise ``noise`` (lazy, real,
    cubic, in the precision's real dtype), shaped by ``sqrt(P / V_cell)`` as
    :func:`shape_modes`; the seeded :func:`linear_modes` and an external white noise share it."""
    shape = cube_shape(noise.shape[0])
    _, cplx = precision_dtypes(precision)
    wk = rfftn(noise, backend=backend, check_finite=False)
    return da.map_blocks(
        _shape_block,
        wk,
        shape=shape,
        box_size=box_length(box_size),
        power=power,
        redshift=float(redshift),
        fixed_amplitude=bool(fixed_amplitude),
        paired=bool(paired),
        dtype=cplx,
        meta=np.array((), cplx),
    )


def linear_modes_array(
    grid: int,
    box_size: float,
    *,
    seed: int,
    power: LinearPower,
    redshift: float = 0.0,
    tile: int = 32,
    fixed_amplitude: bool = False,
    paired: bool = False,
    precision: Precision = "double",
) -> np.ndarray:
    """In-memory :func:`linear_modes` (same noise, same shaping; ``scipy.fft`` on the box)."""
    shape = cube_shape(grid)
    box = box_length(box_size)
    real, _ = precision_dtypes(precision)
    window = tuple(slice(0, n) for n in shape)
    wk = scipy.fft.rfftn(white_noise_array(shape, window, seed=seed, tile=tile, dtype=real))
    return shape_modes(
        wk,
        full_location(rfft_shape(shape)),
        shape=shape,
        box_size=box,
        power=power,
        redshift=redshift,
        fixed_amplitude=fixed_amplitude,
        paired=paired,
    )


def gaussian_field_array(
    grid: int,
    box_size: float,
    *,
    seed: int,
    power: LinearPower,
    redshift: float = 0.0,
    tile: int = 32,
    fixed_amplitude: bool = False,
    paired: bool = False,
    precision: Precision = "double",
) -> np.ndarray:
    """The linear density contrast in memory (small boxes, tests, the N-body ICs).

    Returns
    -------
    numpy.ndarray
        Real ``(N, N, N)``, float64 (``"double"``) or float32 (``"single"``).
    """
    fk = linear_modes_array(
        grid,
        box_size,
        seed=seed,
        power=power,
        redshift=redshift,
        tile=tile,
        fixed_amplitude=fixed_amplitude,
        paired=paired,
        precision=precision,
    )
    return scipy.fft.irfftn(fk, s=cube_shape(grid))


# ---------------------------------------------------------------- writing


def _store_block(
    block: np.ndarray,
    *,
    writer: FieldWriter,
    todo: frozenset[tuple[int, ...]],
    block_info: dict | None = None,
) -> np.ndarray:
    idx = chunk_location(block_info)
    if idx in todo:
        writer.write_block(idx, block)
    return np.ones((1, 1, 1), np.uint8)


def store_field(
    x: da.Array, writer: FieldWriter, *, finalize: bool = True, progress: bool = False
) -> int:
    """Write a lazy 3-D dask array into a Field, one task per pending write block.

    The array is rechunked to the Field's write blocks if it is not already (rechunk: P2P on
    a cluster). Blocks already written (a resumed run) are computed but not rewritten.
    ``progress`` reports the tasks of the whole graph (:func:`bigpaint.progress.compute`).

    Returns
    -------
    int
        Number of blocks written.
    """
    todo = frozenset(writer.pending())
    if not todo:
        if finalize:
            writer.finalize()
        return 0
    if tuple(x.shape) != tuple(writer.shape):
        raise ShapeError(f"array of shape {x.shape} cannot fill a Field of shape {writer.shape}")
    if tuple(x.chunks) != tuple(writer.block_chunks):
        x = x.rechunk(writer.block_chunks)
    flags = da.map_blocks(
        _store_block,
        x,
        writer=writer,
        todo=todo,
        chunks=tuple((1,) * len(c) for c in x.chunks),
        dtype=np.uint8,
        meta=np.array((), np.uint8),
    )
    compute(flags, name=f"write {os.path.basename(writer.url.rstrip('/'))}", progress=progress)
    if finalize:
        writer.finalize()
    return len(todo)


def linear_meta(
    box: float, redshift: float, power: LinearPower, operation: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Field metadata of a linear contrast (kind ``delta``, no assignment window)."""
    return {
        "box_size": box,
        "kind": "delta",
        "units": "1",
        "redshift": float(redshift),
        "cosmology": power.cosmology.to_field(),
        "provenance": {
            "operation": operation,
            "config": params,
            "cosmology": power.cosmology.model_dump(),
            "sigma_8_table": power.sigma_8,
        },
        "mass_assignment": {"scheme": None},
    }


def gaussian_field(
    output: str,
    *,
    grid: int,
    box_size: float,
    seed: int,
    power: LinearPower,
    redshift: float = 0.0,
    chunks: int | tuple[int, int, int] | None = None,
    tile: int = 32,
    fixed_amplitude: bool = False,
    paired: bool = False,
    precision: Precision = "single",
    backend: str = "slab",
    dtype: str = "float32",
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> FieldWriter:
    """Write the linear density contrast ``delta_lin`` at ``redshift`` as a Field.

    Runs on the current distributed client if there is one, else on local threads. The
    values depend on the seed (and tile, spectrum, options, precision) alone, never on
    ``chunks`` or the workers. Re-running the same call on an unfinished output resumes it.

    Parameters
    ----------
    output : str
        Path or fsspec URL of the new Field (kind ``delta``, units ``1``).
    grid : int
        Cells per side; a multiple of ``tile``.
    box_size : float
        Box side in Mpc/h.
    seed : int
        Random seed (non-negative).
    power : LinearPower
        Linear spectrum and growth (:func:`bigpaint.ics.power.linear_power`).
    redshift : float
        Redshift of the field: ``delta_lin(z) = D1(z) delta_lin(0)``.
    chunks : int or 3 ints, optional
        Write blocks in cells; default 128, or the grid where it is smaller.
    tile : int
        Noise tile in cells.
    fixed_amplitude, paired : bool
        Fixed-amplitude (``|delta_k|^2 = <|delta_k|^2>``) and/or phase-flipped field.
    precision : {"single", "double"}
        Precision of the noise and FFTs.
    backend : {"slab", "pencil"}
        Distributed FFT decomposition.
    dtype : str
        Stored dtype.
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    FieldWriter
        Of the finished Field.
    """
    shape = cube_shape(grid)
    layout = default_chunks(chunks, shape)
    box = box_length(box_size)
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    white_noise_array(shape, (slice(0, 0),) * 3, seed=seed, tile=tile)  # grid % tile, early
    precision_dtypes(precision)
    params = {
        "grid": shape[0],
        "box_size": box,
        "seed": int(seed),
        "tile": int(tile),
        "redshift": float(redshift),
        "fixed_amplitude": bool(fixed_amplitude),
        "paired": bool(paired),
        "precision": precision,
        "power_source": power.source,
        "convention": "<|delta_k|^2> = P(k) N^6 / V (numpy unnormalised rfftn)",
    }
    with writing({"output": output}, storage_options=storage_options):
        writer = create_field(
            output,
            shape=shape,
            chunks=layout,
            dtype=dtype,
            overwrite=overwrite,
            meta=linear_meta(box, redshift, power, "gaussian_field", params),
            job=job_token(
                operation="gaussian_field",
                chunks=layout,
                dtype=dtype,
                cosmology=power.cosmology.model_dump(),
                k=float(power.k.sum()),
                p=float(power.p.sum()),
                **params,
            ),
            storage_options=storage_options,
        )
        fk = linear_modes(
            shape[0],
            box,
            seed=seed,
            power=power,
            redshift=redshift,
            tile=tile,
            fixed_amplitude=fixed_amplitude,
            paired=paired,
            precision=precision,
            backend=backend,
        )
        delta = irfftn(fk, shape, chunks=writer.block_chunks, backend=backend)
        store_field(delta, writer)
        return writer
