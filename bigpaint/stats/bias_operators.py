"""The local bias operators of a density contrast, on the distributed FFT.

A bias expansion writes a tracer's expected number per cell as a function of the local
matter field (e.g. "Large-Scale Galaxy Bias", V. Desjacques, D. Jeong & F. Schmidt 2018,
arXiv:1611.09787, section 2). Up to second order in the density contrast ``delta`` the local
operators are

* ``delta_R``: ``delta`` smoothed with a Gaussian of radius ``R`` Mpc/h, in Fourier space
  ``delta_R(k) = exp(-k^2 R^2 / 2) delta(k)`` (``R = 0``: no smoothing);
* ``O2 = delta_R^2 - <delta_R^2>``;
* ``Os2 = s_R^2 - <s_R^2>``, the tidal operator, with the traceless tidal tensor
  ``s_ij(k) = (k_i k_j / k^2 - delta_ij / 3) delta_R(k)`` and ``s^2 = sum_ij s_ij s_ij``.

``<.>`` is the mean over the box, so both second-order operators average to zero and the
constant of a fit is the mean count. All are dimensionless; wavenumbers are in h/Mpc.

How it runs. One forward FFT of ``delta`` (:func:`bigpaint.mesh.fft.rfftn`); the window and
the tidal multipliers are applied block by block on the half-space array; one inverse FFT
gives ``delta_R`` and five more the independent components of ``s_ij`` (it is symmetric and
traceless: ``s_zz = -s_xx - s_yy``); ``O2`` and ``Os2`` are formed block by block. The two
box means are known before any inverse transform, by Parseval's theorem, from a chunked
reduction over the half-space modes (:func:`operator_means`), so nothing is ever gathered and
the real-space operators come out in one pass. Multipliers odd in ``k_i`` (``k_i k_j``,
``i != j``) are zero on the Nyquist plane of axis ``i``, where ``+k`` and ``-k`` are one mode
(as in :mod:`bigpaint.ics.lpt`); the tidal tensor of the ``k = 0`` mode is zero.

Arithmetic is float64 throughout (the input is promoted); :func:`write_bias_operators`
stores float32.

Why hand-written: the multipliers are a few lines; what no library does is form them on a
dask-distributed FFT chunk by chunk.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np

from bigpaint.errors import ConfigError, MetadataError, ShapeError
from bigpaint.mesh.fft import irfftn, rfftn
from bigpaint.mesh.kgrid import block_modes
from bigpaint.stats._reduce import blockwise_sum_lazy

__all__ = [
    "OPERATOR_NAMES",
    "TIDAL_PAIRS",
    "bias_operators",
    "check_smoothing",
    "operator_means",
    "operator_names",
    "smoothed_modes",
    "tidal_multiplier",
    "write_bias_operators",
]

#: Names of the operator channels, in order; a first-order model uses the first only.
OPERATOR_NAMES: tuple[str, str, str] = ("delta_R", "O2", "Os2")

#: The five independent components of the traceless symmetric tidal tensor.
TIDAL_PAIRS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (0, 1), (0, 2), (1, 2))

Order = Literal[1, 2]


def operator_names(order: int) -> tuple[str, ...]:
    """The operator channels a bias model of ``order`` (1 or 2) uses."""
    if order not in (1, 2):
        raise ConfigError(f"bias order must be 1 (linear) or 2 (second-order), got {order!r}")
    return OPERATOR_NAMES[:1] if order == 1 else OPERATOR_NAMES


def check_smoothing(smoothing: float, box_size: Sequence[float] | None = None) -> float:
    """``smoothing`` (Mpc/h) as a float, refused when negative, not finite or wider than the box."""
    try:
        r = float(smoothing)
    except (TypeError, ValueError):
        raise ConfigError(
            f"smoothing must be a radius in Mpc/h, got {smoothing!r}; give e.g. 4"
        ) from None
    if not math.isfinite(r) or r < 0:
        raise ConfigError(f"smoothing must be >= 0 Mpc/h and finite, got {smoothing!r}")
    if box_size is not None and r > min(box_size):
        raise ConfigError(
            f"smoothing {r:g} Mpc/h is wider than the {min(box_size):g} Mpc/h box: only the "
            "mean would survive; give a radius below the box size"
        )
    return r


# ---------------------------------------------------------------- Fourier multipliers


def _physical_modes(
    shape: Sequence[int], box_size: Sequence[float], location: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, ...]:
    """Mode numbers and wave-vector components (h/Mpc) of a half-space block."""
    modes = block_modes(shape, location)
    ks = tuple(m * (2.0 * math.pi / float(L)) for m, L in zip(modes, box_size, strict=True))
    return (*modes, *ks)


def _nyquist(m: np.ndarray, n: int) -> np.ndarray:
    return (m == n // 2) if n % 2 == 0 else np.zeros(m.shape, bool)


def gaussian_window(
    shape: Sequence[int],
    box_size: Sequence[float],
    location: Sequence[tuple[int, int]],
    smoothing: float,
) -> np.ndarray:
    """``exp(-k^2 R^2 / 2)`` on a half-space block (``R = smoothing`` in Mpc/h)."""
    _, _, _, kx, ky, kz = _physical_modes(shape, box_size, location)
    k2 = kx * kx + ky * ky + kz * kz
    return np.exp(-0.5 * k2 * float(smoothing) ** 2)


def tidal_multiplier(
    shape: Sequence[int],
    box_size: Sequence[float],
    location: Sequence[tuple[int, int]],
    i: int,
    j: int,
) -> np.ndarray:
    """``k_i k_j / k^2 - delta_ij / 3`` on a half-space block (dimensionless).

    Zero at ``k = 0``; for ``i != j`` zero on the Nyquist planes of axes ``i`` and ``j``.
    """
    mx, my, mz, kx, ky, kz = _physical_modes(shape, box_size, location)
    m, k = (mx, my, mz), (kx, ky, kz)
    k2 = kx * kx + ky * ky + kz * kz
    safe = np.where(k2 > 0, k2, 1.0)
    out = np.where(k2 > 0, k[i] * k[j] / safe - (1.0 / 3.0 if i == j else 0.0), 0.0)
    if i != j:
        out = np.where(_nyquist(m[i], shape[i]) | _nyquist(m[j], shape[j]), 0.0, out)
    return out


def _tidal_square_weight(
    shape: Sequence[int], box_size: Sequence[float], location: Sequence[tuple[int, int]]
) -> np.ndarray:
    """``sum_ij m_ij(k)^2`` of the tidal multipliers (2/3 away from Nyquist planes and k=0)."""
    total: float | np.ndarray = 0.0
    for i in range(3):
        for j in range(3):
            total = total + tidal_multiplier(shape, box_size, location, i, j) ** 2
    return np.asarray(total)


def _half_space_weight(shape: Sequence[int], location: Sequence[tuple[int, int]]) -> np.ndarray:
    """How many full-space modes each stored half-space mode stands for (1 or 2)."""
    nz = int(shape[2])
    _, _, iz = block_modes(shape, location)
    edge = iz == 0
    if nz % 2 == 0:
        edge = edge | (iz == nz // 2)
    return np.where(edge, 1.0, 2.0)


# ---------------------------------------------------------------- lazy operators


def _window_block(
    fk: np.ndarray, *, shape: tuple[int, ...], box: tuple[float, ...], smoothing: float,
    block_info: dict | None = None,
) -> np.ndarray:  # fmt: skip
    assert block_info is not None  # dask passes it to functions that take it
    loc = [tuple(r) for r in block_info[0]["array-location"]]
    return fk * gaussian_window(shape, box, loc, smoothing)


def _tidal_block(
    fk: np.ndarray, i: int, j: int, *, shape: tuple[int, ...], box: tuple[float, ...],
    block_info: dict | None = None,
) -> np.ndarray:  # fmt: skip
    assert block_info is not None  # dask passes it to functions that take it
    loc = [tuple(r) for r in block_info[0]["array-location"]]
    return fk * tidal_multiplier(shape, box, loc, i, j)


def _mean_sums(
    fk: np.ndarray, *, loc: Sequence[tuple[int, int]], shape: tuple[int, ...],
    box: tuple[float, ...],
) -> np.ndarray:  # fmt: skip
    power = np.abs(fk) ** 2 * _half_space_weight(shape, loc)
    return np.array([power.sum(), (power * _tidal_square_weight(shape, box, loc)).sum()])


def _as_dask(delta: Any) -> da.Array:
    arr = delta if isinstance(delta, da.Array) else da.asarray(np.asarray(delta))
    if arr.ndim != 3:
        raise ShapeError(f"bias operators need a 3-D density contrast, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ShapeError(f"bias operators need real values, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _box3(box_size: float | Sequence[float]) -> tuple[float, float, float]:
    box = (
        (float(box_size),) * 3
        if isinstance(box_size, int | float | np.number)
        else tuple(float(b) for b in box_size)
    )
    if len(box) != 3 or not all(math.isfinite(b) and b > 0 for b in box):
        raise ConfigError(f"box_size must be one or three positive lengths in Mpc/h, got {box}")
    return box


def smoothed_modes(
    delta: Any, *, box_size: float | Sequence[float], smoothing: float, backend: str = "slab"
) -> da.Array:
    """``delta_R(k)``: the real FFT of ``delta`` times the Gaussian window, lazily.

    Parameters
    ----------
    delta : dask or numpy array, 3-D
        Density contrast (any chunking).
    box_size : float or 3 floats
        Mpc/h.
    smoothing : float
        Gaussian radius ``R`` in Mpc/h (0: none).
    backend : str
        FFT backend (:func:`bigpaint.mesh.fft.rfftn`).

    Returns
    -------
    dask.array.Array
        complex128, the layout of ``numpy.fft.rfftn`` (unnormalised).
    """
    box = _box3(box_size)
    r = check_smoothing(smoothing, box)
    x = _as_dask(delta)
    fk = rfftn(x, backend=backend)
    if r == 0:
        return fk
    return da.map_blocks(
        _window_block, fk, shape=tuple(x.shape), box=box, smoothing=r, dtype=fk.dtype,
        meta=np.array((), fk.dtype),
    )  # fmt: skip


def operator_means(
    fk: da.Array, shape: Sequence[int], box_size: float | Sequence[float]
) -> tuple[float, float]:
    """``<delta_R^2>`` and ``<s_R^2>`` over the box, from ``delta_R(k)`` (Parseval), computed.

    ``sum_x f(x)^2 = (1/N) sum_k |f_k|^2`` over all ``N`` modes; in the half space each mode
    with ``0 < k_z < k_Nyq`` stands for itself and its conjugate. The reduction runs block by
    block over the half-space array; only two numbers per block travel.
    """
    shape3 = tuple(int(n) for n in shape)
    box = _box3(box_size)
    sums = blockwise_sum_lazy(_mean_sums, [fk], (2,), np.float64, shape=shape3, box=box)
    (total,) = dask.compute(sums)
    n = float(math.prod(shape3))
    return float(total[0]) / n**2, float(total[1]) / n**2


def _square_minus(d: np.ndarray, mean: float) -> np.ndarray:
    return d * d - mean


def _tidal_square_minus(
    sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray, sxz: np.ndarray, syz: np.ndarray,
    mean: float,
) -> np.ndarray:  # fmt: skip
    szz = -(sxx + syy)
    return sxx * sxx + syy * syy + szz * szz + 2.0 * (sxy * sxy + sxz * sxz + syz * syz) - mean


def bias_operators(
    delta: Any,
    *,
    box_size: float | Sequence[float],
    smoothing: float,
    order: int = 2,
    chunks: Any = None,
    backend: str = "slab",
) -> tuple[list[da.Array], dict[str, float]]:
    """The bias operators of ``delta`` as lazy dask arrays, and the box means subtracted.

    Parameters
    ----------
    delta : dask or numpy array, 3-D
        Density contrast (dimensionless), any chunking.
    box_size : float or 3 floats
        Mpc/h.
    smoothing : float
        Gaussian radius ``R`` in Mpc/h applied to ``delta`` first (0: none).
    order : {1, 2}
        1: ``[delta_R]``; 2: ``[delta_R, O2, Os2]`` (:data:`OPERATOR_NAMES`).
    chunks : optional
        Chunks of the returned arrays (dask convention); default the FFT's last slabs.
    backend : str
        FFT backend.

    Returns
    -------
    operators : list of dask.array.Array
        float64, each of ``delta``'s shape. Lazy; computing them runs the inverse FFTs.
    means : dict
        ``{"delta_R2": <delta_R^2>, "s_R2": <s_R^2>}``, computed now (the forward FFT and a
        reduction run once here).
    """
    names = operator_names(order)
    box = _box3(box_size)
    x = _as_dask(delta)
    shape = tuple(int(n) for n in x.shape)
    fk = smoothed_modes(x, box_size=box, smoothing=smoothing, backend=backend)
    m_d2, m_s2 = operator_means(fk, shape, box)
    d = irfftn(fk, shape, chunks=chunks, backend=backend)
    ops = [d]
    if len(names) > 1:
        comps = [
            irfftn(
                da.map_blocks(
                    _tidal_block, fk, i, j, shape=shape, box=box, dtype=fk.dtype,
                    meta=np.array((), fk.dtype),
                ),
                shape,
                chunks=d.chunks,
                backend=backend,
            )
            for i, j in TIDAL_PAIRS
        ]  # fmt: skip
        o2 = da.map_blocks(_square_minus, d, m_d2, dtype=np.float64, meta=np.array((), np.float64))
        os2 = da.map_blocks(
            _tidal_square_minus, *comps, mean=m_s2, dtype=np.float64,
            meta=np.array((), np.float64),
        )  # fmt: skip
        ops += [o2, os2]
    return ops, {"delta_R2": m_d2, "s_R2": m_s2}


# ---------------------------------------------------------------- as a Field


def _store_block(
    block: np.ndarray,
    *,
    writer: Any,
    todo: frozenset[tuple[int, ...]],
    block_info: dict | None = None,
) -> np.ndarray:
    assert block_info is not None  # dask passes it to functions that take it
    idx = tuple(int(i) for i in block_info[0]["chunk-location"][1:])
    if idx in todo:
        writer.write_block(idx, block)
    return np.ones((1, 1, 1, 1), np.uint8)


def check_density_field(ds: Any, where: str) -> tuple[tuple[int, int, int], Any]:
    """Shape and metadata of a density-contrast Field, refused unless 3-D of kind ``delta``."""
    from bigpaint.field import data_var, field_meta

    url = ds.encoding.get("bigpaint_url", "the density")
    meta = field_meta(ds)
    var = data_var(ds)
    if meta.kind != "delta":
        raise MetadataError(
            f"{where}: {url} is a {meta.kind!r} Field; bias operators are built from a density "
            "contrast (kind 'delta'), e.g. the density that bigpaint lpt or simulate writes"
        )
    if var.ndim != 3:
        raise ShapeError(
            f"{where}: {url} has {var.ndim} dimensions {tuple(var.shape)}; give a 3-D density "
            "contrast Field"
        )
    nx, ny, nz = var.shape  # 3-D, checked above
    return (int(nx), int(ny), int(nz)), meta


def write_bias_operators(
    density: str,
    output: str,
    *,
    smoothing: float,
    order: int = 2,
    chunks: int | Sequence[int] | None = None,
    backend: str = "slab",
    overwrite: bool = False,
    progress: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Any:
    """Write the bias operators of a density-contrast Field as one multi-channel Field.

    The output has kind ``bias_operators``, shape ``(C, n, n, n)`` float32 with the channels
    :func:`operator_names` ``(order)`` (recorded in ``provenance.config.channels``), and the
    box means subtracted from ``O2`` and ``Os2`` in ``provenance.config.means``. Re-running
    the same call on an unfinished output resumes it.

    Parameters
    ----------
    density : str
        Path or URL of a Field of kind ``delta``.
    output : str
        Path or URL of the new Field.
    smoothing : float
        Gaussian radius in Mpc/h (0: none).
    order : {1, 2}
    chunks : int or 3 ints, optional
        Write blocks of the output (default: the density's).
    backend : str
        FFT backend.
    overwrite, progress, storage_options
        As :func:`bigpaint.filters.smooth`.

    Returns
    -------
    FieldWriter
    """
    from bigpaint.field import create_field, data_var, job_token, open_field, zarr_array
    from bigpaint.outputs import job_path, writing
    from bigpaint.progress import compute

    names = operator_names(order)
    src = open_field(density, storage_options=storage_options)
    shape, meta = check_density_field(src, "bias operators")
    r = check_smoothing(smoothing, meta.box_size)
    out_chunks = tuple(chunks) if isinstance(chunks, Sequence) else chunks
    if out_chunks is None:
        out_chunks = tuple(int(c) for c in zarr_array(src).chunks[-3:])
    job = job_token(
        operation="bias_operators", input=job_path(density),
        input_finished=src.attrs.get("bigpaint_finished"), smoothing=r, order=order,
        chunks=out_chunks, backend=backend,
    )  # fmt: skip
    with writing({"output": output}, {"density": density}, storage_options=storage_options):
        # the means come first (forward FFT and a reduction): they go into the metadata
        ops, means = bias_operators(
            data_var(src).data, box_size=meta.box_size, smoothing=r, order=order,
            chunks=out_chunks, backend=backend,
        )  # fmt: skip
        config = {"smoothing": r, "order": order, "channels": list(names), "means": means}
        writer = create_field(
            output,
            shape=(len(names), *shape),
            chunks=out_chunks,
            meta={
                "box_size": meta.box_size,
                "kind": "bias_operators",
                "units": "1",
                "redshift": meta.redshift,
                "cosmology": meta.cosmology,
                "provenance": {
                    "operation": "bias_operators",
                    "inputs": [str(density)],
                    "config": config,
                },
                "mass_assignment": None,
            },
            dtype="float32",
            job=job,
            overwrite=overwrite,
            storage_options=storage_options,
        )
        todo = frozenset(writer.pending())
        if todo:
            stacked = da.stack([o.astype(np.float32) for o in ops])
            stacked = stacked.rechunk(((len(ops),), *writer.block_chunks))
            flags = stacked.map_blocks(
                _store_block, writer=writer, todo=todo,
                chunks=((1,), *(((1,) * len(c)) for c in stacked.chunks[1:])),
                dtype=np.uint8, meta=np.array((), np.uint8),
            )  # fmt: skip
            compute(flags, name=f"bias operators of {os.path.basename(str(density))}",
                    progress=progress)  # fmt: skip
        writer.finalize()
    return writer
