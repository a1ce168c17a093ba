"""The arithmetic of Lagrangian perturbation theory: Fourier multipliers, the 2LPT source.

With ``delta`` the linear contrast at z = 0 and ``phi1`` its potential (``nabla^2 phi1 =
delta``), ``psi1 = -grad phi1`` (``psi1_k = i k delta_k / k^2``, so ``div psi1 = -delta``) and
``psi2 = grad phi2`` with ``nabla^2 phi2 = S2``, the 2LPT source of the six second
derivatives ``phi1_ij`` (``phi1_ij,k = k_i k_j delta_k / k^2``)::

    S2 = phi_xx phi_yy + phi_xx phi_zz + phi_yy phi_zz - phi_xy^2 - phi_xz^2 - phi_yz^2

so ``psi_k = i k / k^2 (D1 delta_k - D2 S2_k)`` (Scoccimarro 1998; Bouchet et al. 1995).
Multipliers odd in ``k_i`` are zero on the Nyquist plane of axis ``i`` (where ``+k`` and
``-k`` are one mode, so an odd multiplier cannot keep the field real); the even
``k_i^2 / k^2`` is kept.

The per-block functions work on any half-space block of numpy's ``rfftn`` layout, so the
distributed pipeline (:mod:`bigpaint.ics.lpt`) and the in-memory reference below share them.
The in-memory functions give the N-body initial conditions of :mod:`bigpaint.sim` and are
what the chunked path is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import dask.array as da
import numpy as np
import scipy.fft

from bigpaint.axes import int3
from bigpaint.errors import ConfigError
from bigpaint.ics.grf import block_k2, box_length, cube_shape, linear_modes_array
from bigpaint.ics.power import LinearPower
from bigpaint.mesh.fft import irfftn
from bigpaint.mesh.kgrid import full_location, rfft_shape

__all__ = [
    "PAIRS",
    "Order",
    "displacement_block",
    "displacement_modes",
    "gradient_multiplier",
    "hessian_multiplier",
    "lagrangian_grid",
    "lpt_displacement_array",
    "lpt_particles_array",
    "second_order_source",
    "second_order_source_array",
]

#: The six pairs (i, j) of second derivatives, in the order xx, yy, zz, xy, xz, yz.
PAIRS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))

Order = Literal[1, 2]


# ---------------------------------------------------------------- Fourier multipliers


def _nyquist(m: np.ndarray, n: int) -> np.ndarray:
    return (m == n // 2) if n % 2 == 0 else np.zeros(m.shape, bool)


def hessian_multiplier(shape: tuple[int, int, int], location: Any, i: int, j: int) -> np.ndarray:
    """``k_i k_j / k^2`` on a half-space block (dimensionless): ``phi_ij`` from ``delta``.

    Zero at ``k = 0``; for ``i != j`` zero on the Nyquist planes of axes ``i`` and ``j``.
    """
    m = block_k2(shape, location)
    k2 = m[3]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(k2 > 0, (m[i] * m[j]) / np.where(k2 > 0, k2, 1).astype(np.float64), 0.0)
    if i != j:
        out = np.where(_nyquist(m[i], shape[i]) | _nyquist(m[j], shape[j]), 0.0, out)
    return out


def gradient_multiplier(
    shape: tuple[int, int, int], location: Any, axis: int, box_size: float
) -> np.ndarray:
    """``k_i / k^2`` in Mpc/h on a half-space block (times ``i``: ``psi1`` from ``delta``).

    Zero at ``k = 0`` and on the Nyquist plane of ``axis``.
    """
    m = block_k2(shape, location)
    k2 = m[3]
    kf = 2.0 * math.pi / box_size
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(k2 > 0, m[axis] / (np.where(k2 > 0, k2, 1) * kf), 0.0)
    return np.where(_nyquist(m[axis], shape[axis]), 0.0, out)


def _hessian_block(fk: np.ndarray, i: int, j: int, shape: Any, block_info: Any = None) -> Any:
    loc = [tuple(r) for r in block_info[0]["array-location"]]
    return (fk * hessian_multiplier(shape, loc, i, j).astype(fk.real.dtype)).astype(fk.dtype)


def displacement_modes(
    fk: np.ndarray,
    s2k: np.ndarray | None,
    location: Any,
    *,
    axis: int,
    shape: tuple[int, int, int],
    box_size: float,
    c1: float,
    c2: float,
) -> np.ndarray:
    """``i k_axis / k^2 (c1 delta_k - c2 S2_k)`` on one block (Mpc/h units of ``k^-1``).

    ``c1 = D1, c2 = D2`` gives the displacement; ``c1 = v D1 f1``, ``c2 = v D2 f2`` (``v = 100 a
    E(a)``) the velocity in km/s.
    """
    g = gradient_multiplier(shape, location, axis, box_size).astype(fk.real.dtype)
    src = fk * fk.real.dtype.type(c1)
    if s2k is not None and c2:
        src = src - s2k * fk.real.dtype.type(c2)
    return (1j * g * src).astype(fk.dtype)


def displacement_block(
    fk: np.ndarray, s2k: np.ndarray | None = None, block_info: Any = None, **kw: Any
) -> np.ndarray:
    """Dask block function: :func:`displacement_modes` of one block of ``delta_k`` (and of
    the 2LPT source ``s2k``), located by ``block_info``."""
    loc = [tuple(r) for r in block_info[0]["array-location"]]
    return displacement_modes(fk, s2k, loc, **kw)


def _s2_block(*phis: np.ndarray) -> np.ndarray:
    xx, yy, zz, xy, xz, yz = (p.astype(np.float64) for p in phis)
    s2 = xx * yy + xx * zz + yy * zz - xy * xy - xz * xz - yz * yz
    return s2.astype(phis[0].dtype)


# ---------------------------------------------------------------- in memory


def second_order_source_array(delta_k: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The 2LPT source ``S2(q)`` of ``delta`` (given as its ``rfftn``), in memory.

    Returns
    -------
    numpy.ndarray
        Real, dimensionless, shape ``shape``; same precision as ``delta_k``.
    """
    shape3 = int3(shape)
    loc = full_location(rfft_shape(shape3))
    phis = [
        scipy.fft.irfftn(
            (delta_k * hessian_multiplier(shape3, loc, i, j).astype(delta_k.real.dtype)).astype(
                delta_k.dtype
            ),
            s=shape3,
        )
        for i, j in PAIRS
    ]
    return _s2_block(*phis)


def lpt_displacement_array(
    delta_k: np.ndarray,
    shape: Sequence[int],
    box_size: float,
    *,
    d1: float = 1.0,
    d2: float = 0.0,
    s2k: np.ndarray | None = None,
    order: Order = 2,
) -> np.ndarray:
    """Displacement ``D1 psi1 + D2 psi2`` on the Lagrangian grid, in memory (Mpc/h).

    Parameters
    ----------
    delta_k : complex array
        ``rfftn`` of the linear contrast at z = 0 (normalisation of ``psi1``).
    shape : 3 ints
        Grid.
    box_size : float
        Mpc/h.
    d1, d2 : float
        Growth factors (``D2 ~ -3/7 D1^2``); pass ``v D1 f1`` and ``v D2 f2`` for velocities.
    s2k : complex array, optional
        ``rfftn`` of the 2LPT source; computed when ``order == 2`` and not given.
    order : {1, 2}

    Returns
    -------
    numpy.ndarray
        ``(3, N, N, N)``.
    """
    shape3 = int3(shape)
    if order not in (1, 2):
        raise ConfigError(f"LPT order must be 1 or 2, got {order}")
    if order == 2 and s2k is None:
        s2k = scipy.fft.rfftn(second_order_source_array(delta_k, shape3))
    loc = full_location(rfft_shape(shape3))
    out = []
    for axis in range(3):
        mk = displacement_modes(
            delta_k,
            s2k if order == 2 else None,
            loc,
            axis=axis,
            shape=shape3,
            box_size=box_size,
            c1=d1,
            c2=d2 if order == 2 else 0.0,
        )
        out.append(scipy.fft.irfftn(mk, s=shape3))
    return np.stack(out)


def lagrangian_grid(
    n: int, box_size: float, window: Sequence[slice] | None = None, offset: float = 0.5
) -> np.ndarray:
    """Lagrangian coordinates ``(i + offset) L / n`` (Mpc/h) of a window, shape ``(3, ...)``.

    ``offset`` is in cells: 0.5 puts the particles at cell centres (bigpaint's own lattice),
    0 at the grid corners (the lattice of N-GenIC, 2LPTic, MUSIC and monofonIC).
    """
    window = window or (slice(0, n),) * 3
    dx = box_size / n
    axes = [(np.arange(s.start, s.stop, dtype=np.float64) + offset) * dx for s in window]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def lpt_particles_array(
    grid: int,
    box_size: float,
    *,
    seed: int,
    power: LinearPower,
    redshift: float,
    order: Order = 2,
    tile: int = 32,
    fixed_amplitude: bool = False,
    paired: bool = False,
    delta_k: np.ndarray | None = None,
    lattice_offset: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPT particles in memory: positions (Mpc/h), velocities (km/s), Lagrangian ids.

    Particles are in Lagrangian C order (id ``(i N + j) N + k``); positions wrapped into
    ``[0, L)``; float64. ``delta_k`` (the ``rfftn`` of the linear contrast at z = 0) replaces
    the seeded field when given; ``lattice_offset`` is that of :func:`lagrangian_grid`.

    Returns
    -------
    positions, velocities : (N^3, 3) float64
    ids : (N^3,) int64
    """
    shape = cube_shape(grid)
    box = box_length(box_size)
    a = 1.0 / (1.0 + redshift)
    bg = power.background
    d1, d2 = float(bg.D1(a)), float(bg.D2(a))
    vfac = 100.0 * a * float(bg.E(a))
    fk = delta_k
    if fk is None:
        fk = linear_modes_array(
            grid,
            box,
            seed=seed,
            power=power,
            tile=tile,
            fixed_amplitude=fixed_amplitude,
            paired=paired,
        )
    s2k = scipy.fft.rfftn(second_order_source_array(fk, shape)) if order == 2 else None
    psi = lpt_displacement_array(fk, shape, box, d1=d1, d2=d2, s2k=s2k, order=order)
    vel = lpt_displacement_array(
        fk,
        shape,
        box,
        d1=vfac * d1 * float(bg.f1(a)),
        d2=vfac * d2 * float(bg.f2(a)),
        s2k=s2k,
        order=order,
    )
    q = lagrangian_grid(shape[0], box, offset=lattice_offset)
    pos = np.mod(q + psi, box).reshape(3, -1).T.copy()
    pos[pos >= box] = 0.0
    return pos, vel.reshape(3, -1).T.copy(), np.arange(math.prod(shape), dtype=np.int64)


# ---------------------------------------------------------------- distributed


def second_order_source(fk: da.Array, shape: Sequence[int], *, backend: str = "slab") -> da.Array:
    """The 2LPT source ``S2`` of ``delta`` (its distributed ``rfftn`` ``fk``), lazily.

    Six inverse FFTs of ``k_i k_j / k^2 delta_k``, combined block by block.
    """
    shape3 = int3(shape)
    phis = [
        irfftn(
            da.map_blocks(
                _hessian_block, fk, i, j, shape3, dtype=fk.dtype, meta=np.array((), fk.dtype)
            ),
            shape3,
            backend=backend,
        )
        for i, j in PAIRS
    ]
    return da.map_blocks(_s2_block, *phis, dtype=phis[0].dtype, meta=np.array((), phis[0].dtype))
