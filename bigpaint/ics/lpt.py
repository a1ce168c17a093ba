"""Lagrangian perturbation theory (Zel'dovich and 2LPT) on the distributed FFT.

Particles start on a Lagrangian grid at the cell centres ``q = (i + 1/2) L / N`` and move to

    x = q + D1 psi1(q) + D2 psi2(q),        v = 100 a E(a) (f1 D1 psi1 + f2 D2 psi2)  [km/s]

(Scoccimarro 1998; Bouchet et al. 1995). With ``delta`` the linear contrast at z = 0 and
``phi1`` its potential (``nabla^2 phi1 = delta``):

* ``psi1 = -grad phi1``, i.e. ``psi1_k = i k delta_k / k^2`` (so ``div psi1 = -delta``);
* ``psi2 = grad phi2`` with ``nabla^2 phi2 = S2``, the 2LPT source built from the six second
  derivatives ``phi1_ij`` (``phi1_ij,k = k_i k_j delta_k / k^2``)::

      S2 = phi_xx phi_yy + phi_xx phi_zz + phi_yy phi_zz - phi_xy^2 - phi_xz^2 - phi_yz^2

  so ``psi2_k = -i k S2_k / k^2``; ``D2 ~ -3/7 D1^2`` (:mod:`bigpaint.ics.cosmology`).

Hence ``psi_k = i k / k^2 (D1 delta_k - D2 S2_k)``: the total displacement (and velocity) of
each axis is one inverse FFT. Multipliers odd in ``k_i`` (``i k_i``, ``k_i k_j`` with
``i != j``) are set to zero on the Nyquist plane of axis ``i`` (where ``+k`` and ``-k`` are
the same mode, so an odd multiplier cannot keep the field real); the even ``k_i^2 / k^2`` is
kept. Positions are in Mpc/h, displacements in Mpc/h, velocities in km/s (peculiar).

Pipeline of :func:`lpt_density` (every step chunked, resumable, nothing gathered):

1. ``delta_k`` from :func:`bigpaint.ics.grf.linear_modes` (seeded noise, FFT, sqrt(P)).
2. 2LPT: six inverse FFTs give ``phi_ij``; ``S2`` is formed block by block and written to a
   scratch Field (so the next step does not recompute six transforms).
3. One forward FFT of ``S2``; three inverse FFTs (six with velocities) give ``psi`` straight
   into Lagrangian cubes; each cube becomes one chunk of a particle store (Zarr group:
   ``positions`` (N, 3) float32 in Mpc/h, ``velocities`` (N, 3) in km/s, ``ids`` (N,) int64 =
   the Lagrangian grid index ``(i N + j) N + k``), cube after cube.
4. :func:`bigpaint.mesh.deposit.deposit_to_field` deposits the store. Particles from one cube
   land in that cube's neighbourhood only, so routing touches a few blocks per batch.

The in-memory functions (:func:`lpt_displacement_array`, :func:`second_order_source_array`)
do the same arithmetic with ``scipy.fft`` on a whole box; they give the N-body initial
conditions of :mod:`bigpaint.sim` and are the reference the chunked path is tested against.

Why hand-written: the Fourier multipliers and the S2 combination are a few lines each; what no
library offers is doing them on a dask-distributed FFT into a chunked particle store.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dask.array as da
import numpy as np
import scipy.fft

from bigpaint.chunked.grid import BlockGrid, default_chunks
from bigpaint.errors import ConfigError, FieldExistsError
from bigpaint.field import (
    FieldWriter,
    create_field,
    job_token,
    open_field,
    zarr_array,
)
from bigpaint.ics.grf import (
    Precision,
    block_k2,
    box_length,
    cube_shape,
    linear_modes,
    linear_modes_array,
    precision_dtypes,
    store_field,
)
from bigpaint.ics.noise import white_noise_array
from bigpaint.ics.power import LinearPower
from bigpaint.mesh.fft import irfftn, rfftn
from bigpaint.mesh.kgrid import full_location, rfft_shape
from bigpaint.outputs import check_apart, owned_dir, remove_owned, writing
from bigpaint.progress import compute
from bigpaint.store import remove_stale_partials

__all__ = [
    "LPTResult",
    "displacement_modes",
    "lagrangian_block",
    "lagrangian_grid",
    "lpt_density",
    "lpt_displacement_array",
    "lpt_particles_array",
    "second_order_source",
    "second_order_source_array",
    "write_particles",
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


def _displacement_block(
    fk: np.ndarray, s2k: np.ndarray | None = None, block_info: Any = None, **kw: Any
) -> np.ndarray:
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
    shape3 = tuple(int(n) for n in shape)
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
    shape3 = tuple(int(n) for n in shape)
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
            shape=shape3,  # type: ignore[arg-type]
            box_size=box_size,
            c1=d1,
            c2=d2 if order == 2 else 0.0,
        )
        out.append(scipy.fft.irfftn(mk, s=shape3))
    return np.stack(out)


def lagrangian_grid(n: int, box_size: float, window: Sequence[slice] | None = None) -> np.ndarray:
    """Cell-centre Lagrangian coordinates ``(i + 1/2) L / n`` of a window, shape ``(3, ...)``."""
    window = window or (slice(0, n),) * 3
    dx = box_size / n
    axes = [(np.arange(s.start, s.stop, dtype=np.float64) + 0.5) * dx for s in window]
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPT particles in memory: positions (Mpc/h), velocities (km/s), Lagrangian ids.

    Particles are in Lagrangian C order (id ``(i N + j) N + k``); positions wrapped into
    ``[0, L)``; float64.

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
    q = lagrangian_grid(shape[0], box)
    pos = np.mod(q + psi, box).reshape(3, -1).T.copy()
    pos[pos >= box] = 0.0
    return pos, vel.reshape(3, -1).T.copy(), np.arange(math.prod(shape), dtype=np.int64)


# ---------------------------------------------------------------- distributed


def second_order_source(fk: da.Array, shape: Sequence[int], *, backend: str = "slab") -> da.Array:
    """The 2LPT source ``S2`` of ``delta`` (its distributed ``rfftn`` ``fk``), lazily.

    Six inverse FFTs of ``k_i k_j / k^2 delta_k``, combined block by block.
    """
    shape3 = tuple(int(n) for n in shape)
    phis = [
        irfftn(
            fk.map_blocks(
                _hessian_block, i, j, shape3, dtype=fk.dtype, meta=np.array((), fk.dtype)
            ),
            shape3,
            backend=backend,
        )
        for i, j in PAIRS
    ]
    return da.map_blocks(_s2_block, *phis, dtype=phis[0].dtype, meta=np.array((), phis[0].dtype))


def lagrangian_block(grid: int, size: int) -> int:
    """The largest divisor of ``grid`` not above ``size``: the side of a Lagrangian cube."""
    size = max(1, min(int(size), int(grid)))
    return max(d for d in range(1, size + 1) if grid % d == 0)


@dataclass(frozen=True)
class _ParticleStore:
    url: str
    grid: int
    block: int
    box_size: float
    velocities: bool
    ids: bool = True

    @property
    def nblocks(self) -> int:
        return self.grid // self.block

    def block_id(self, idx: Sequence[int]) -> int:
        nb = self.nblocks
        return (int(idx[0]) * nb + int(idx[1])) * nb + int(idx[2])


def _open_store(
    url: str,
    *,
    grid: int,
    block: int,
    box_size: float,
    velocities: bool,
    ids: bool,
    attrs: dict[str, Any],
    job: str,
    overwrite: bool,
) -> _ParticleStore:
    import zarr

    store = _ParticleStore(url, grid, block, box_size, velocities, ids)
    n = grid**3
    per = block**3
    if os.path.exists(url) or "://" in url:
        try:
            g = zarr.open_group(store=url, mode="r")
            same = g.attrs.get("bigpaint_job") == job
        except Exception:  # not a group: foreign data
            same = False
        if same and not overwrite:
            return store
        if not overwrite and os.path.exists(url):
            raise FieldExistsError(
                f"particle output {url} already exists (written by a different job); choose "
                "another path or pass overwrite"
            )
        shutil.rmtree(url, ignore_errors=True)
    g = zarr.open_group(store=url, mode="w", zarr_format=3)
    g.attrs.update({**attrs, "bigpaint_job": job, "bigpaint_complete": False})
    g.create_array("positions", shape=(n, 3), chunks=(per, 3), dtype="f4", fill_value=np.nan)
    if velocities:
        g.create_array("velocities", shape=(n, 3), chunks=(per, 3), dtype="f4", fill_value=np.nan)
    if ids:
        g.create_array("ids", shape=(n,), chunks=(per,), dtype="i8", fill_value=-1)
    nb = grid // block
    g.create_array("_bigpaint/done", shape=(nb**3,), chunks=(1,), dtype="u1", fill_value=0)
    return store


def _write_particle_block(
    *arrays: np.ndarray, store: _ParticleStore, todo: frozenset[int], block_info: Any = None
) -> np.ndarray:
    import zarr

    idx = tuple(int(i) for i in block_info[0]["chunk-location"])
    bid = store.block_id(idx)
    if bid in todo:
        window = tuple(slice(i * store.block, (i + 1) * store.block) for i in idx)
        q = lagrangian_grid(store.grid, store.box_size, window)
        psi = np.stack(arrays[:3]).astype(np.float64)
        pos = np.mod(q + psi, store.box_size).reshape(3, -1).T.astype(np.float32)
        pos[pos >= np.float32(store.box_size)] = 0.0
        g = zarr.open_group(store=store.url, mode="r+")
        rows = slice(bid * store.block**3, (bid + 1) * store.block**3)
        g["positions"][rows] = pos
        if store.velocities:
            vel = np.stack(arrays[3:6]).reshape(3, -1).T.astype(np.float32)
            g["velocities"][rows] = vel
        if store.ids:
            n = store.grid
            ii, jj, kk = (np.arange(s.start, s.stop, dtype=np.int64) for s in window)
            g["ids"][rows] = (
                (ii[:, None, None] * n + jj[None, :, None]) * n + kk[None, None, :]
            ).ravel()
        g["_bigpaint/done"][bid] = 1
    return np.ones((1, 1, 1), np.uint8)


def write_particles(
    store: _ParticleStore,
    psi: Sequence[da.Array],
    vel: Sequence[da.Array] | None = None,
    *,
    progress: bool = False,
) -> int:
    """Write displaced Lagrangian cubes (``psi``, optional ``vel``) into a particle store
    (``progress``: see :func:`bigpaint.progress.compute`)."""
    import zarr

    g = zarr.open_group(store=store.url, mode="r")
    done = np.asarray(g["_bigpaint/done"][...]).astype(bool)
    todo = frozenset(int(i) for i in np.flatnonzero(~done))
    if todo:
        cubes = ((store.block,) * store.nblocks,) * 3
        arrays = [a.rechunk(cubes) for a in (*psi, *(vel or ()))]
        flags = da.map_blocks(
            _write_particle_block,
            *arrays,
            store=store,
            todo=todo,
            chunks=tuple((1,) * store.nblocks for _ in range(3)),
            dtype=np.uint8,
            meta=np.array((), np.uint8),
        )
        compute(flags, name="lpt-particles", progress=progress)
    remove_stale_partials(store.url)
    zarr.open_group(store=store.url, mode="r+").attrs["bigpaint_complete"] = True
    return len(todo)


@dataclass(frozen=True)
class LPTResult:
    """What :func:`lpt_density` wrote.

    Attributes
    ----------
    density : FieldWriter
        The deposited density contrast Field.
    particles : str or None
        The particle store, when kept.
    linear : FieldWriter or None
        The linear density Field at the same redshift, when asked for.
    n_particles : int
    lagrangian_block : int
        Side of the Lagrangian cubes (particle-store chunks) in cells.
    """

    density: FieldWriter
    particles: str | None
    linear: FieldWriter | None
    n_particles: int
    lagrangian_block: int


def lpt_density(
    output: str,
    *,
    grid: int,
    box_size: float,
    seed: int,
    power: LinearPower,
    redshift: float = 0.0,
    order: Order = 2,
    nmesh: int | None = None,
    chunks: int | tuple[int, int, int] | None = None,
    scheme: str = "cic",
    tile: int = 32,
    fixed_amplitude: bool = False,
    paired: bool = False,
    precision: Precision = "single",
    backend: str = "slab",
    block: int = 128,
    particles: str | None = None,
    velocities: bool = False,
    linear_output: str | None = None,
    scratch_dir: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> LPTResult:
    """LPT particles from a seeded Gaussian field, deposited into a density-contrast Field.

    Runs on the current distributed client if there is one, else on local threads. Every
    stage is resumable: re-running the same call after an interruption reuses the finished
    scratch source, particle cubes and density blocks.

    Parameters
    ----------
    output : str
        The density Field (kind ``delta``: ``rho / mean - 1`` of the deposited particles); its
        ``mass_assignment`` record names ``scheme``, which the spectra compensate.
    grid : int
        Particles (and Lagrangian cells) per side; a multiple of ``tile``.
    box_size : float
        Box side in Mpc/h.
    seed : int
    power : LinearPower
    redshift : float
        Redshift of the particles.
    order : {1, 2}
        Zel'dovich or 2LPT.
    nmesh : int, optional
        Density cells per side (default ``grid``).
    chunks : int or 3 ints, optional
        Write blocks of the density (and linear) Field; default 128, or the grid where it
        is smaller.
    scheme : {"ngp", "cic", "tsc", "pcs"}
        Mass assignment.
    tile, fixed_amplitude, paired, precision, backend
        As :func:`bigpaint.ics.grf.gaussian_field`.
    block : int
        Side of a Lagrangian cube, one chunk of the particle store (rounded down to a divisor
        of ``grid``).
    particles : str, optional
        Keep the particles as a Zarr group at this path (``positions`` (N, 3) float32 Mpc/h,
        ``ids`` (N,) int64, ``velocities`` (N, 3) float32 km/s with ``velocities=True``). Without
        it the positions alone go to a scratch store that is removed at the end.
    velocities : bool
        Also compute and store peculiar velocities (three more inverse FFTs).
    linear_output : str, optional
        Also write the linear density contrast at ``redshift`` (same seed) as a Field (no
        assignment window).
    scratch_dir : str, optional
        Where scratch stores go (default: next to ``output``).
    overwrite : bool
        Replace existing outputs.
    progress : bool
        Progress bars for the deposition.

    Returns
    -------
    LPTResult
    """
    from bigpaint.mesh.deposit import deposit_to_field

    shape = cube_shape(grid)
    chunks = default_chunks(chunks, (int(nmesh or grid),) * 3)  # blocks of the density
    box = box_length(box_size)
    if order not in (1, 2):
        raise ConfigError(f"LPT order must be 1 or 2, got {order}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    white_noise_array(shape, (slice(0, 0),) * 3, seed=seed, tile=tile)
    _, cplx = precision_dtypes(precision)
    if redshift < 0:
        raise ConfigError(f"redshift must be >= 0, got {redshift}")
    a = 1.0 / (1.0 + redshift)
    bg = power.background
    d1, d2 = float(bg.D1(a)), float(bg.D2(a))
    f1, f2 = float(bg.f1(a)), float(bg.f2(a))
    vfac = 100.0 * a * float(bg.E(a))
    lblock = lagrangian_block(shape[0], block)
    nmesh = int(nmesh or shape[0])
    params = {
        "grid": shape[0],
        "box_size": box,
        "seed": int(seed),
        "tile": int(tile),
        "redshift": float(redshift),
        "order": int(order),
        "fixed_amplitude": bool(fixed_amplitude),
        "paired": bool(paired),
        "precision": precision,
        "power_source": power.source,
        "D1": d1,
        "D2": d2 if order == 2 else 0.0,
    }
    job = job_token(
        operation="lpt",
        cosmology=power.cosmology.model_dump(),
        k=float(power.k.sum()),
        p=float(power.p.sum()),
        block=lblock,
        velocities=bool(velocities),
        **params,
    )
    if scratch_dir is None:
        absout = os.path.abspath(output)
        scratch_dir = os.path.join(
            os.path.dirname(absout), f".{os.path.basename(absout)}.lpt-{job[:12]}"
        )
    else:
        scratch_dir = os.path.join(scratch_dir, f"lpt-{job[:12]}")
    outs = {"output": output, "particles": particles, "linear_output": linear_output}
    check_apart({**outs, "scratch directory": scratch_dir}, {})
    with writing(outs):
        if os.path.exists(output) and not overwrite:
            try:
                attrs = open_field(output, require_complete=False).attrs
                done = attrs.get("provenance", {}).get("lpt_job") == job
            except Exception:  # not a Field
                attrs, done = {}, False
            if (
                done
                and attrs.get("bigpaint_complete")
                and (particles is None or _complete(particles))
            ):
                remove_owned(scratch_dir)  # a run killed while cleaning up
                return LPTResult(
                    FieldWriter(
                        output,
                        "delta",
                        (nmesh,) * 3,
                        BlockGrid((nmesh,) * 3, chunks).block_shape((0, 0, 0)),  # type: ignore[arg-type]
                        "<f4",
                    ),
                    particles,
                    None,
                    shape[0] ** 3,
                    lblock,
                )
            if not (done or os.path.isdir(scratch_dir)):  # our own interrupted run may resume
                raise FieldExistsError(
                    f"output {output} already exists (written by a different job); choose another "
                    "path or pass overwrite"
                )
        owned_dir(scratch_dir, purpose="LPT scratch stores")
        cosmo_field = power.cosmology.to_field()

        fk = linear_modes(
            shape[0],
            box,
            seed=seed,
            power=power,
            tile=tile,
            fixed_amplitude=fixed_amplitude,
            paired=paired,
            precision=precision,
            backend=backend,
        )

        # 2. the 2LPT source, once, to a scratch Field
        s2k = None
        if order == 2:
            s2_writer = create_field(
                os.path.join(scratch_dir, "s2.zarr"),
                shape=shape,
                chunks=_slab_chunks(shape),
                dtype="float32" if precision == "single" else "float64",
                meta={"box_size": box, "kind": "lpt_source", "units": "1"},
                job=f"{job}-s2",
            )
            store_field(
                second_order_source(fk, shape, backend=backend), s2_writer, progress=progress
            )
            s2 = da.from_zarr(zarr_array(open_field(s2_writer.url)))
            s2k = rfftn(s2, backend=backend, check_finite=False)

        # 3. displacements (and velocities) into Lagrangian cubes of a particle store
        def component(axis: int, c1: float, c2: float) -> da.Array:
            args = (fk,) if s2k is None else (fk, s2k.rechunk(fk.chunks))
            mk = da.map_blocks(
                _displacement_block,
                *args,
                axis=axis,
                shape=shape,
                box_size=box,
                c1=c1,
                c2=c2 if order == 2 else 0.0,
                dtype=cplx,
                meta=np.array((), cplx),
            )
            cubes = ((lblock,) * (shape[0] // lblock),) * 3
            return irfftn(mk, shape, chunks=cubes, backend=backend)

        psi = [component(ax, d1, d2) for ax in range(3)]
        vel = (
            [component(ax, vfac * d1 * f1, vfac * d2 * f2) for ax in range(3)]
            if velocities
            else None
        )
        keep = particles is not None
        store_url = particles if keep else os.path.join(scratch_dir, "particles.zarr")
        store = _open_store(
            store_url,  # type: ignore[arg-type]
            grid=shape[0],
            block=lblock,
            box_size=box,
            velocities=bool(velocities),
            ids=keep,
            attrs={
                "box_size": [box] * 3,
                "redshift": float(redshift),
                "kind": "lpt_particles",
                "units": {"positions": "Mpc/h", "velocities": "km/s", "ids": "Lagrangian index"},
                "particle_order": f"Lagrangian cubes of {lblock}^3 in C order, C order inside",
                "cosmology": power.cosmology.model_dump(),
                "provenance": {"operation": "lpt", "config": params},
            },
            job=job,
            overwrite=overwrite and keep,
        )
        linear_writer = None
        if linear_output is not None:
            linear_writer = create_field(
                linear_output,
                shape=shape,
                chunks=chunks,
                meta={
                    "box_size": box,
                    "kind": "delta",
                    "units": "1",
                    "redshift": float(redshift),
                    "cosmology": cosmo_field,
                    "provenance": {"operation": "gaussian_field", "config": params},
                    "mass_assignment": {"scheme": None},
                },
                job=f"{job}-linear-{job_token(chunks=chunks)}",
                overwrite=overwrite,
            )
            lin = irfftn(
                fk * cplx.type(d1), shape, chunks=linear_writer.block_chunks, backend=backend
            )
            store_field(lin, linear_writer, progress=progress)
        write_particles(store, psi, vel, progress=progress)

        # 4. deposit the ordered particles
        if overwrite and os.path.exists(output):
            shutil.rmtree(output)
        writer = deposit_to_field(
            store_url,
            output,
            nmesh=nmesh,
            chunks=chunks,
            scheme=scheme,
            quantity="delta",
            batch_size=lblock**3,
            redshift=float(redshift),
            spill_dir=os.path.join(scratch_dir, "deposit"),
            progress=progress,
        )
        _annotate(writer, cosmo_field, {"lpt": params, "lpt_job": job})
        if not keep:
            shutil.rmtree(store_url, ignore_errors=True)
        remove_owned(scratch_dir)
        return LPTResult(writer, store_url if keep else None, linear_writer, shape[0] ** 3, lblock)


def _complete(url: str) -> bool:
    import zarr

    try:
        return bool(zarr.open_group(store=url, mode="r").attrs.get("bigpaint_complete"))
    except Exception:  # missing or not a group
        return False


def _slab_chunks(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Write blocks of a scratch field: x-slabs of about 64 MiB (float32)."""
    plane = shape[1] * shape[2] * 4
    return (max(1, min(shape[0], (64 << 20) // plane)), shape[1], shape[2])


def _annotate(writer: FieldWriter, cosmology: Any, extra: dict[str, Any]) -> None:
    """Add the cosmology and LPT provenance to a Field written by the deposition."""
    import json

    import zarr

    g = zarr.open_group(store=writer.url, mode="r+")
    prov = dict(g.attrs.get("provenance") or {})
    prov["deposit_operation"] = prov.get("operation")
    prov["operation"] = "lpt"
    prov.update(extra)
    g.attrs["provenance"] = json.loads(json.dumps(prov, default=str))
    g.attrs["cosmology"] = json.loads(cosmology.model_dump_json())
