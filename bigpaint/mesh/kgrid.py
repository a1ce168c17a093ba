"""Wave-vector grids of the real-FFT layout, block by block.

The distributed FFT (:mod:`bigpaint.mesh.fft`) returns the half-space layout of
``numpy.fft.rfftn``: shape ``(nx, ny, nz // 2 + 1)``, axes 0 and 1 in FFT order, axis 2 from
0 to the Nyquist index. Every chunked Fourier-space operation (window compensation, spectra,
shell filters) needs the integer mode numbers of *its* block only, never the whole grid, so
the helpers here take a block location ``[(start, stop)] * 3`` and return broadcastable 1-D
pieces.

Why hand-written: ``numpy.fft.fftfreq`` is whole-axis and gives the Nyquist index ``n/2`` the
mode number ``-n/2``; Pylians (whose conventions bigpaint matches, see
:mod:`bigpaint.stats.power`) gives it ``+n/2`` and keeps exactly one mode of each conjugate
pair in the ``k_z = 0`` and ``k_z = k_Nyq`` planes. Both rules live here, once.

Units: box sizes in Mpc/h, wavenumbers in h/Mpc; mode numbers are integers (multiples of the
fundamental ``k_F = 2 pi / L``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bigpaint.axes import float3

__all__ = [
    "Location",
    "block_modes",
    "full_location",
    "fundamental",
    "independent_modes",
    "mode_numbers",
    "nyquist",
    "rfft_shape",
    "wavenumbers",
]

#: Global ``(start, stop)`` index range of a block along each of the three axes.
Location = Sequence[tuple[int, int]]


def rfft_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """Shape of the real-FFT half-space array of a real grid of ``shape`` (voxels)."""
    nx, ny, nz = (int(n) for n in shape)
    return (nx, ny, nz // 2 + 1)


def full_location(shape: Sequence[int]) -> list[tuple[int, int]]:
    """The location covering a whole array of ``shape``."""
    return [(0, int(n)) for n in shape]


def fundamental(box_size: Sequence[float]) -> tuple[float, float, float]:
    """Fundamental wavenumber ``k_F = 2 pi / L`` per axis, in h/Mpc (``L`` in Mpc/h)."""
    return float3(2.0 * np.pi / float(L) for L in box_size)


def nyquist(box_size: Sequence[float], shape: Sequence[int]) -> tuple[float, float, float]:
    """Nyquist wavenumber ``k_Nyq = pi n / L`` per axis, in h/Mpc."""
    return float3(np.pi * int(n) / float(L) for L, n in zip(box_size, shape, strict=True))


def mode_numbers(
    n: int, start: int = 0, stop: int | None = None, *, half: bool = False
) -> np.ndarray:
    """Signed integer mode numbers of FFT indices ``start..stop-1`` along an axis of ``n`` voxels.

    Index ``i`` maps to ``i`` if ``i <= n // 2`` else ``i - n`` (Pylians' rule: the Nyquist
    index of an even axis is ``+n/2``). With ``half=True`` (the last axis of a real FFT,
    ``n // 2 + 1`` entries) the mode numbers are the indices themselves.
    """
    m = n // 2 + 1 if half else n
    stop = m if stop is None else stop
    if not 0 <= start <= stop <= m:
        raise ValueError(f"index range [{start}, {stop}) outside an axis of {m} modes")
    idx = np.arange(start, stop, dtype=np.int64)
    if half:
        return idx
    return np.where(idx > n // 2, idx - n, idx)


def block_modes(
    shape: Sequence[int], location: Location
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer mode numbers of a block of the real-FFT array, broadcastable to the block.

    Parameters
    ----------
    shape : sequence of 3 int
        Shape of the *real* grid (voxels), not of the half-space array.
    location : sequence of 3 (start, stop)
        The block's global index range in the half-space array.

    Returns
    -------
    ix, iy, iz : numpy.ndarray of int64
        Shapes ``(bx, 1, 1)``, ``(1, by, 1)``, ``(1, 1, bz)``.
    """
    nx, ny, nz = (int(n) for n in shape)
    (x0, x1), (y0, y1), (z0, z1) = location
    ix = mode_numbers(nx, x0, x1)[:, None, None]
    iy = mode_numbers(ny, y0, y1)[None, :, None]
    iz = mode_numbers(nz, z0, z1, half=True)[None, None, :]
    return ix, iy, iz


def wavenumbers(
    shape: Sequence[int], box_size: Sequence[float], location: Location | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wave-vector components (h/Mpc) of a block of the real-FFT array, broadcastable.

    ``location`` defaults to the whole half-space array.
    """
    location = location if location is not None else full_location(rfft_shape(shape))
    kx, ky, kz = fundamental(box_size)
    ix, iy, iz = block_modes(shape, location)
    return ix * kx, iy * ky, iz * kz


def independent_modes(shape: Sequence[int], location: Location) -> np.ndarray:
    """Which modes of a block count as independent (one per conjugate pair), Pylians' rule.

    In the real-FFT half space, a mode with ``0 < k_z < k_Nyq`` stands for itself and its
    conjugate, which is not stored: it counts once. In the ``k_z = 0`` plane (and the
    ``k_z = k_Nyq`` plane of an even ``nz``) both members of a conjugate pair are stored, so
    only one is kept: ``k_x > 0``; or ``k_x`` in {0, Nyquist} and ``k_y >= 0``. Self-conjugate
    modes (every component 0 or Nyquist) are kept once.

    Returns
    -------
    numpy.ndarray of bool
        Broadcastable to the block (shape ``(bx, by, bz)``).
    """
    nx, _, nz = (int(n) for n in shape)
    ix, iy, iz = block_modes(shape, location)
    special = iz == 0
    if nz % 2 == 0:
        special = special | (iz == nz // 2)
    x_edge = (ix == 0) | ((ix == nx // 2) & (nx % 2 == 0))
    drop_plane = (ix < 0) | (x_edge & (iy < 0))
    return ~(special & drop_plane)
