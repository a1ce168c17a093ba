"""Fourier-space mass-assignment windows: compensation and interlacing, block by block.

A field deposited with a mass-assignment scheme (MAS) of order ``p`` (NGP 1, CIC 2, TSC 3,
PCS 4) is the true field convolved with a ``p``-fold box kernel and sampled on the grid. In
Fourier space that multiplies every mode by the separable window

    W(k) = prod_i sinc(pi m_i / n_i) ** p,      sinc(x) = sin(x) / x,

with ``m_i`` the integer mode number along axis ``i`` (``k_i H / 2 = pi m_i / n_i`` for cell
size ``H``). Pylians and nbodykit compensate by dividing by ``W`` (``"sinc"`` here).

Sampling also aliases: the measured power is ``sum_n |W(k + 2 k_Nyq n)|^2 P(k + 2 k_Nyq n)``.
For a flat (shot-noise) spectrum that sum has the closed form of Jing (2005, ApJ 620, 559,
eq. 20), used by nbodykit's ``Compensate*Shotnoise`` for non-interlaced fields: ``"aliased"``
here divides the power by it, so Poisson particles give a flat 1/n. Interlacing (averaging a
grid with one deposited half a cell off, :func:`interlace`) cancels the odd aliases instead;
compensate an interlaced field with ``"sinc"``.

Why hand-written: no library offers these on dask blocks; each is a few lines of numpy on the
integer mode numbers of :mod:`bigpaint.mesh.kgrid`, and owning them keeps the Nyquist and
sign conventions identical to the spectra's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from bigpaint.errors import ConfigError, ShapeError
from bigpaint.mesh.kgrid import Location, block_modes, rfft_shape

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "MAS_ORDER",
    "Compensation",
    "aliased_power_window_1d",
    "compensate",
    "interlace",
    "mas_order",
    "power_compensation",
    "window_1d",
]

#: Order ``p`` of each mass-assignment scheme (support of ``p`` cells per axis).
MAS_ORDER: dict[str, int] = {"NGP": 1, "CIC": 2, "TSC": 3, "PCS": 4}

Compensation = Literal["sinc", "aliased", "none"]


def mas_order(mas: str | int | None) -> int:
    """Order ``p`` of a mass-assignment scheme name ("NGP", "CIC", "TSC", "PCS"; case-insensitive).

    ``None`` or ``"none"`` gives 0 (no compensation). An int is returned as is (1 to 4).
    """
    if mas is None:
        return 0
    if isinstance(mas, (int, np.integer)) and not isinstance(mas, bool):
        if 0 <= int(mas) <= 4:
            return int(mas)
        raise ConfigError(f"mass-assignment order must be 0..4, got {mas}")
    name = str(mas).upper()
    if name == "NONE":
        return 0
    if name not in MAS_ORDER:
        raise ConfigError(
            f"unknown mass-assignment scheme {mas!r}; use one of {', '.join(MAS_ORDER)} or none"
        )
    return MAS_ORDER[name]


def window_1d(modes: np.ndarray, n: int, p: int) -> np.ndarray:
    """``sinc(pi m / n) ** p`` for integer mode numbers ``m`` on an axis of ``n`` cells."""
    return np.sinc(np.asarray(modes, dtype=np.float64) / n) ** p


def aliased_power_window_1d(modes: np.ndarray, n: int, p: int) -> np.ndarray:
    """``sum_j sinc(pi (m + j n) / n) ** (2 p)`` over all aliases ``j``, in closed form.

    With ``s = sin(pi m / n)``: NGP 1; CIC ``1 - 2/3 s^2``; TSC ``1 - s^2 + 2/15 s^4``;
    PCS ``1 - 4/3 s^2 + 2/5 s^4 - 4/315 s^6`` (Jing 2005, eq. 20 and its higher orders).
    """
    s2 = np.sin(np.pi * np.asarray(modes, dtype=np.float64) / n) ** 2
    if p == 0 or p == 1:
        return np.ones_like(s2)
    if p == 2:
        return 1.0 - 2.0 / 3.0 * s2
    if p == 3:
        return 1.0 - s2 + 2.0 / 15.0 * s2**2
    if p == 4:
        return 1.0 - 4.0 / 3.0 * s2 + 2.0 / 5.0 * s2**2 - 4.0 / 315.0 * s2**3
    raise ConfigError(f"mass-assignment order must be 0..4, got {p}")


def power_compensation(
    shape: Sequence[int],
    location: Location,
    mas: str | int | None,
    kind: Compensation = "sinc",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-axis factors that multiply ``|delta_k|^2`` of a block to undo the window.

    ``"sinc"`` gives ``1 / W^2`` (Pylians), ``"aliased"`` gives ``1 / sum_n W^2(k + 2 k_Nyq n)``
    (Jing 2005), ``"none"`` gives ones. The product of the three broadcastable factors is the
    compensation of each mode; a cross spectrum multiplies the square roots of two fields'.
    """
    p = mas_order(mas)
    modes = block_modes(shape, location)

    def factor(m: np.ndarray, n: int) -> np.ndarray:
        if p == 0 or kind == "none":
            return np.ones(m.shape)
        if kind == "sinc":
            return 1.0 / window_1d(m, n, p) ** 2
        if kind == "aliased":
            return 1.0 / aliased_power_window_1d(m, n, p)
        raise ConfigError(f"compensation must be 'sinc', 'aliased' or 'none', got {kind!r}")

    fx, fy, fz = (factor(m, int(n)) for m, n in zip(modes, shape, strict=True))
    return fx, fy, fz


def _location(block_info: dict | None) -> list[tuple[int, int]]:
    assert block_info is not None  # dask passes it to functions that take it
    return [(int(lo), int(hi)) for lo, hi in block_info[0]["array-location"]]


def _check_half_space(fk: da.Array, shape: Sequence[int]) -> tuple[int, int, int]:
    sizes = tuple(int(n) for n in shape)
    if len(sizes) != 3:
        raise ShapeError(f"shape must give the 3 real-grid sizes, got {sizes}")
    if tuple(fk.shape) != rfft_shape(sizes):
        raise ShapeError(
            f"a real FFT of a {sizes} grid has shape {rfft_shape(sizes)}, got {tuple(fk.shape)}; "
            "pass the real grid's shape"
        )
    return sizes[0], sizes[1], sizes[2]


def _compensate_block(
    block: np.ndarray, shape: tuple[int, int, int], p: int, block_info: dict | None = None
) -> np.ndarray:
    loc = _location(block_info)
    modes = block_modes(shape, loc)
    w = np.ones((1, 1, 1))
    for m, n in zip(modes, shape, strict=True):
        w = w * window_1d(m, n, p)
    return (block / w).astype(block.dtype, copy=False)


def compensate(fk: da.Array, shape: Sequence[int], mas: str | int | None) -> da.Array:
    """Divide a real-FFT array by the mass-assignment window ``W(k)`` (amplitude, ``"sinc"``).

    Parameters
    ----------
    fk : dask.array.Array of complex
        Output of :func:`bigpaint.mesh.fft.rfftn`, any chunking.
    shape : sequence of 3 int
        Shape of the real grid.
    mas : str, int or None
        Scheme name or order; None leaves ``fk`` unchanged.
    """
    import dask.array as da

    fk = da.asarray(fk)
    grid = _check_half_space(fk, shape)
    p = mas_order(mas)
    if p == 0:
        return fk
    return da.map_blocks(
        _compensate_block, fk, grid, p, dtype=fk.dtype, meta=np.array((), fk.dtype)
    )


def _interlace_block(
    a: np.ndarray, b: np.ndarray, shape: tuple[int, int, int], block_info: dict | None = None
) -> np.ndarray:
    loc = _location(block_info)
    ix, iy, iz = block_modes(shape, loc)
    phase = np.pi * (ix / shape[0] + iy / shape[1] + iz / shape[2])
    out = 0.5 * (a + b * np.exp(1j * phase))
    return out.astype(a.dtype, copy=False)


def interlace(fk: da.Array, fk_shifted: da.Array, shape: Sequence[int]) -> da.Array:
    """Combine a grid and its half-cell-shifted twin in Fourier space (interlacing).

    ``fk_shifted`` must be the real FFT of the same particles deposited with every position
    moved by ``+H/2`` along each axis (``H`` the cell size), i.e. a grid whose cell centres sit
    on the first grid's cell corners. The result, ``(fk + fk_shifted * exp(i k.H/2)) / 2``,
    cancels the odd alias images (Hockney & Eastwood 1988; Sefusatti et al. 2016); compensate
    it with the plain ``"sinc"`` window. This is nbodykit's convention.

    Parameters
    ----------
    fk, fk_shifted : dask.array.Array of complex
        Real-FFT arrays of identical shape; chunks are unified.
    shape : sequence of 3 int
        Shape of the real grid.

    Notes
    -----
    On Nyquist planes the phase factor is not Hermitian-symmetric, so ``irfftn`` of the result
    keeps only its Hermitian part there; spectra are unaffected.
    """
    import dask.array as da

    fk = da.asarray(fk)
    fk_shifted = da.asarray(fk_shifted)
    grid = _check_half_space(fk, shape)
    if fk_shifted.shape != fk.shape:
        raise ShapeError(f"interlaced grids differ in shape: {fk.shape} vs {fk_shifted.shape}")
    dtype = np.result_type(fk.dtype, fk_shifted.dtype)
    return da.map_blocks(
        _interlace_block, fk, fk_shifted, grid, dtype=dtype, meta=np.array((), dtype)
    )
