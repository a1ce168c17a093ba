"""Fields made ready for a power spectrum: read, checked, compensated and Fourier-transformed.

:func:`prepare` turns the inputs of :func:`bigpaint.stats.power.power_spectrum` and
:func:`~bigpaint.stats.power.compare_spectra` (Field paths, opened Fields, numpy or dask
arrays) into a :class:`Prepared`: one cubic grid and box checked, each field's contrast
decided (:func:`uses_contrast`; its mean by :func:`field_mean`), its mass assignment and
interlacing resolved from its record or as given, the per-axis compensation factors of that
scheme (``1 / W``, or ``1 / sqrt`` of Jing's alias sum) and the Fourier transform: whole on
threads for numpy arrays (:func:`bigpaint.mesh.fft.rfftn_memory`), else the distributed
:func:`bigpaint.mesh.fft.rfftn`. :func:`prepared_sums` reduces the transforms to per-bin sums
(:func:`bigpaint.stats.power_modes.binned_sums`) and refuses NaN/inf input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bigpaint.errors import ConfigError, NonFiniteError
from bigpaint.mesh.fft import RechunkMethod, rfftn, rfftn_memory
from bigpaint.mesh.window import Compensation, aliased_power_window_1d, mas_order, window_1d
from bigpaint.stats.inputs import (
    DENSITY_KINDS,
    FieldInput,
    as_input,
    check_cubic,
    check_same_grid,
    resolve_interlaced,
    resolve_mas,
)
from bigpaint.stats.power_modes import BinPlan, binned_sums

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "Prepared",
    "field_mean",
    "prepare",
    "prepared_sums",
    "transform_norm",
    "uses_contrast",
]


def _amplitude_factors(
    n: int, nzh: int, mas: str | int | None, kind: Compensation
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole-axis amplitude compensation per axis (1/W, or 1/sqrt(alias sum))."""
    p = mas_order(mas)
    out = []
    for length, half in ((n, False), (n, False), (nzh, True)):
        m = (
            np.arange(length)
            if half
            else np.where(np.arange(n) > n // 2, np.arange(n) - n, np.arange(n))
        )
        if p == 0 or kind == "none":
            out.append(np.ones(length))
        elif kind == "sinc":
            out.append(1.0 / window_1d(m, n, p))
        elif kind == "aliased":
            out.append(1.0 / np.sqrt(aliased_power_window_1d(m, n, p)))
        else:
            raise ConfigError(f"compensation must be 'sinc', 'aliased' or 'none', got {kind!r}")
    fx, fy, fz = out
    return fx, fy, fz


def uses_contrast(inp: FieldInput, contrast: bool | None) -> bool:
    """Whether a spectrum of ``inp`` is of its contrast ``x / mean - 1``: ``contrast`` when
    given, else for density-like kinds."""
    return inp.kind in DENSITY_KINDS if contrast is None else bool(contrast)


def field_mean(inp: FieldInput) -> float:
    """The mean of a field (float64 sum), refusing NaN/inf and a zero mean (no contrast)."""
    m = inp.data.mean(dtype=np.float64)
    m = float(m.compute() if hasattr(m, "compute") else m)
    if not math.isfinite(m):
        raise NonFiniteError(f"{inp.label} holds NaN/inf values; clean the field first")
    if m == 0.0:
        raise ConfigError(
            f"{inp.label} has mean 0, so it has no density contrast; pass contrast=False to use "
            "it as it is"
        )
    return m


@dataclass(frozen=True)
class Prepared:
    """Fields ready to be binned: their inputs, Fourier transforms (lazy, or in memory with
    the arrays they came from), per-axis compensation factors, contrast scales ``1 / mean``,
    the resolved mass assignment and interlacing, grid side ``n`` and box side (Mpc/h)."""

    inputs: tuple[FieldInput, ...]
    fks: tuple[da.Array | np.ndarray, ...]
    arrays: tuple[np.ndarray, ...] | None
    factors: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    scales: tuple[float, ...]
    contrasts: tuple[bool, ...]
    means: tuple[float, ...]
    mas: tuple[str | int | None, ...]
    mas_sources: tuple[str, ...]
    interlaced: tuple[bool, ...]
    n: int
    box: float


def prepare(
    objs: Sequence[Any],
    *,
    box_size: Any,
    mas: Sequence[str | None],
    interlaced: Sequence[bool | None],
    compensation: Compensation,
    contrast: bool | None,
    where: str,
    backend: str,
    rechunk_method: RechunkMethod,
    block_bytes: int | None,
) -> Prepared:
    """Read and check the fields (one cubic grid and box), resolve their contrasts, mass
    assignments and interlacing, and Fourier-transform them (see :class:`Prepared`)."""
    arrays = _in_memory(objs, backend, rechunk_method, block_bytes)
    if arrays is not None:  # numpy stays numpy: the whole path runs without dask
        inputs = tuple(as_input(a, box_size=box_size, where=where, in_memory=True) for a in arrays)
    else:
        inputs = tuple(as_input(_no_copy(o), box_size=box_size, where=where) for o in objs)
    n, box = check_cubic(inputs[0], where)
    for other in inputs[1:]:
        check_same_grid(inputs[0], other, where)
    contrasts = tuple(uses_contrast(i, contrast) for i in inputs)
    means = tuple(field_mean(i) if c else 1.0 for i, c in zip(inputs, contrasts, strict=True))
    resolved = [resolve_mas(i, m, where) for i, m in zip(inputs, mas, strict=True)]
    mases = tuple(m for m, _ in resolved)
    inter = tuple(resolve_interlaced(i, il) for i, il in zip(inputs, interlaced, strict=True))
    for i, m, il in zip(inputs, mases, inter, strict=True):
        if compensation == "aliased" and il and m is not None:
            raise ConfigError(
                f"{where}: {i.label} is interlaced, which cancels the odd aliases that Jing's alias "
                "sum divides out; use compensation 'sinc'"
            )
    nzh = n // 2 + 1
    factors = tuple(_amplitude_factors(n, nzh, m, compensation) for m in mases)
    if arrays is not None:
        fks: tuple[Any, ...] = tuple(rfftn_memory(a) for a in arrays)
    else:
        fks = tuple(
            rfftn(i.data, backend=backend, rechunk_method=rechunk_method, block_bytes=block_bytes)
            for i in inputs
        )
    return Prepared(
        inputs,
        fks,
        arrays,
        factors,
        tuple(1.0 / m for m in means),
        contrasts,
        means,
        mases,
        tuple(src for _, src in resolved),
        inter,
        n,
        box,
    )


def _no_copy(obj: Any) -> Any:
    """A numpy array as a one-chunk dask array that neither copies nor hashes it
    (``dask.array.from_array`` does both: a full-size copy and a pass over the data)."""
    if not isinstance(obj, np.ndarray) or obj.ndim != 3:
        return obj
    import uuid

    import dask.array as da

    name = f"power-input-{uuid.uuid4().hex}"
    chunks = tuple((int(s),) for s in obj.shape)
    return da.Array({(name, 0, 0, 0): obj}, name, chunks=chunks, dtype=obj.dtype)


def _in_memory(
    objs: Sequence[Any], backend: str, rechunk_method: str, block_bytes: int | None
) -> tuple[np.ndarray, ...] | None:
    """The numpy inputs when every input is one and the default transform was asked for:
    they are transformed whole on threads (no transposes), else None (distributed FFT)."""
    if backend != "slab" or rechunk_method != "auto" or block_bytes is not None:
        return None
    if not all(isinstance(o, np.ndarray) for o in objs):
        return None
    return tuple(objs)


def prepared_sums(
    prep: Prepared,
    plan: BinPlan,
    pairs: tuple[tuple[int, int], ...],
    los: int,
    ells: tuple[int, ...],
) -> np.ndarray:
    """Per-bin sums of the prepared transforms, refusing NaN/inf input.

    The in-memory path does not scan its input first: a NaN or inf voxel reaches every
    Fourier mode, so non-finite sums are the sign, and only then is the input searched for
    the voxel to name.
    """
    shape = (prep.n,) * 3
    sums = binned_sums(prep.fks, shape, plan, pairs, prep.factors, los, ells)
    if prep.arrays is not None and not np.all(np.isfinite(sums)):
        from bigpaint.mesh.fft import refuse_non_finite

        for a in prep.arrays:
            refuse_non_finite(a, None)
        raise NonFiniteError(
            "the Fourier transform of the field overflowed (values too large for its dtype); "
            "pass the field as float64"
        )
    return sums


def transform_norm(prep: Prepared) -> float:
    """``V / N^6``: the factor from squared unnormalised FFT amplitudes to power, (Mpc/h)^3."""
    return prep.box**3 / float(prep.n) ** 6
