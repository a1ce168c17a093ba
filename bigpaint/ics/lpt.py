"""Lagrangian perturbation theory (Zel'dovich and 2LPT) on the distributed FFT.

Particles start on a Lagrangian lattice ``q = (i + o) L / N`` (``o = 1/2``: cell centres,
bigpaint's own; ``o = 0``: grid corners, the lattice of external IC codes) and move to

    x = q + D1 psi1(q) + D2 psi2(q),        v = 100 a E(a) (f1 D1 psi1 + f2 D2 psi2)  [km/s]

with ``psi_k = i k / k^2 (D1 delta_k - D2 S2_k)`` (the arithmetic is in
:mod:`bigpaint.ics.lpt_fourier`). Positions and displacements are in Mpc/h, velocities in
km/s (peculiar).

Pipeline of :func:`lpt_density` (every step chunked, resumable, nothing gathered), after
:func:`bigpaint.ics.lpt_plan.plan_lpt` has checked its options and named the job:

1. ``delta_k`` at z = 0: from the seed (:func:`bigpaint.ics.grf.linear_modes`) or from the
   user's own initial conditions (:mod:`bigpaint.ics.external`: a linear density, a white
   noise, or particles at the starting redshift).
2. 2LPT: six inverse FFTs give ``phi_ij``; ``S2`` is formed block by block and written to a
   scratch Field (so the next step does not recompute six transforms).
3. One forward FFT of ``S2``; three inverse FFTs (six with velocities) give ``psi`` straight
   into Lagrangian cubes of a particle store (:mod:`bigpaint.ics.particle_store`).
4. :func:`bigpaint.mesh.deposit.deposit_to_field` deposits the store. Particles from one cube
   land in that cube's neighbourhood only, so routing touches a few blocks per batch.

Why hand-written: the Fourier multipliers and the S2 combination are a few lines each; what no
library offers is doing them on a dask-distributed FFT into a chunked particle store.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from bigpaint.field import FieldWriter, create_field, job_token, open_field, zarr_array
from bigpaint.ics.external import initial_modes
from bigpaint.ics.grf import (
    Precision,
    linear_modes,
    precision_dtypes,
    slab_chunks,
    store_field,
)
from bigpaint.ics.lpt_fourier import (
    Order,
    displacement_block,
    displacement_modes,
    lagrangian_grid,
    lpt_displacement_array,
    lpt_particles_array,
    second_order_source,
    second_order_source_array,
)
from bigpaint.ics.lpt_plan import LptPlan, LPTResult, checked_seed, finished_result, plan_lpt
from bigpaint.ics.particle_store import (
    ParticleStore,
    lagrangian_block,
    open_store,
    write_particle_block,
    write_particles,
)
from bigpaint.ics.power import LinearPower
from bigpaint.mesh.fft import irfftn, rfftn
from bigpaint.outputs import check_apart, owned_dir, remove_owned, writing

if TYPE_CHECKING:
    from bigpaint.ics.ic_spec import ExternalICs

__all__ = [
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


def _second_order_modes(plan: LptPlan, fk: da.Array, progress: bool) -> da.Array:
    """``rfftn(S2)``, with ``S2`` formed once into a scratch Field."""
    s2_writer = create_field(
        os.path.join(plan.scratch, "s2.zarr"),
        shape=plan.shape,
        chunks=slab_chunks(plan.shape),
        dtype="float32" if plan.precision == "single" else "float64",
        meta={"box_size": plan.box, "kind": "lpt_source", "units": "1"},
        job=f"{plan.job}-s2",
    )
    store_field(
        second_order_source(fk, plan.shape, backend=plan.backend), s2_writer, progress=progress
    )
    s2 = da.from_zarr(zarr_array(open_field(s2_writer.url)))
    return rfftn(s2, backend=plan.backend, check_finite=False)


def _displacements(
    plan: LptPlan, fk: da.Array, s2k: da.Array | None, velocities: bool
) -> tuple[list[da.Array], list[da.Array] | None]:
    """The three displacement (and velocity) components, chunked as Lagrangian cubes."""
    _, cplx = precision_dtypes(plan.precision)
    g = plan.growth
    cubes = ((plan.lblock,) * (plan.shape[0] // plan.lblock),) * 3

    def component(axis: int, c1: float, c2: float) -> da.Array:
        args = (fk,) if s2k is None else (fk, s2k.rechunk(fk.chunks))
        mk = da.map_blocks(
            displacement_block,
            *args,
            axis=axis,
            shape=plan.shape,
            box_size=plan.box,
            c1=c1,
            c2=c2 if plan.order == 2 else 0.0,
            dtype=cplx,
            meta=np.array((), cplx),
        )
        return irfftn(mk, plan.shape, chunks=cubes, backend=plan.backend)

    psi = [component(ax, g.d1, g.d2) for ax in range(3)]
    if not velocities:
        return psi, None
    v1, v2 = g.vfac * g.d1 * g.f1, g.vfac * g.d2 * g.f2
    return psi, [component(ax, v1, v2) for ax in range(3)]


def _write_linear(
    plan: LptPlan,
    fk: da.Array,
    linear_output: str,
    *,
    redshift: float,
    cosmology: Any,
    overwrite: bool,
    progress: bool,
) -> FieldWriter:
    """The linear contrast at ``redshift`` (``D1 delta_k``) as a Field."""
    _, cplx = precision_dtypes(plan.precision)
    writer = create_field(
        linear_output,
        shape=plan.shape,
        chunks=plan.chunks,
        meta={
            "box_size": plan.box,
            "kind": "delta",
            "units": "1",
            "redshift": float(redshift),
            "cosmology": cosmology,
            "provenance": {"operation": "gaussian_field", "config": plan.params},
            "mass_assignment": {"scheme": None},
        },
        job=f"{plan.job}-linear-{job_token(chunks=plan.chunks)}",
        overwrite=overwrite,
    )
    lin = irfftn(
        fk * cplx.type(plan.growth.d1), plan.shape, chunks=writer.block_chunks, backend=plan.backend
    )
    store_field(lin, writer, progress=progress)
    return writer


def lpt_density(
    output: str,
    *,
    grid: int,
    box_size: float,
    seed: int | None = None,
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
    initial: ExternalICs | None = None,
) -> LPTResult:
    """LPT particles from a Gaussian field, deposited into a density-contrast Field.

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
    seed : int, optional
        Random seed of the white noise; required unless ``initial`` is given.
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
        As :func:`bigpaint.ics.grf.gaussian_field` (``fixed_amplitude`` and ``paired`` also
        apply to an external white noise).
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
        Also write the linear density contrast at ``redshift`` (same ICs) as a Field (no
        assignment window).
    scratch_dir : str, optional
        Where scratch stores go (default: next to ``output``).
    overwrite : bool
        Replace existing outputs.
    progress : bool
        Progress bars for the deposition.
    initial : ExternalICs, optional
        The user's own initial conditions (:func:`bigpaint.ics.external.resolve_initial_conditions`)
        instead of the seed; their lattice places the particles.

    Returns
    -------
    LPTResult
    """
    plan = plan_lpt(
        output, grid=grid, box_size=box_size, seed=seed, power=power, redshift=redshift,
        order=order, nmesh=nmesh, chunks=chunks, tile=tile, fixed_amplitude=fixed_amplitude,
        paired=paired, precision=precision, backend=backend, block=block,
        velocities=velocities, scratch_dir=scratch_dir, initial=initial,
    )  # fmt: skip
    outs = {"output": output, "particles": particles, "linear_output": linear_output}
    ins = {"initial conditions": initial.path if initial else None}
    check_apart({**outs, "scratch directory": plan.scratch}, ins)
    with writing(outs):
        done = finished_result(plan, output, particles, overwrite)
        if done is not None:
            return done
        owned_dir(plan.scratch, purpose="LPT scratch stores")
        fk = _initial_modes(plan, initial, seed, power, tile, fixed_amplitude, paired, progress)
        return _run(
            plan, fk, output, power=power, redshift=redshift, scheme=scheme,
            particles=particles, velocities=velocities, linear_output=linear_output,
            overwrite=overwrite, progress=progress,
        )  # fmt: skip


def _initial_modes(
    plan: LptPlan,
    initial: ExternalICs | None,
    seed: int | None,
    power: LinearPower,
    tile: int,
    fixed_amplitude: bool,
    paired: bool,
    progress: bool,
) -> da.Array:
    """``delta_k`` at z = 0: of the seed's white noise, or of the external ICs."""
    if initial is not None:
        return _external_modes(initial, plan, power, fixed_amplitude, paired, progress)
    return linear_modes(
        plan.shape[0], plan.box, seed=checked_seed(seed), power=power, tile=tile,
        fixed_amplitude=fixed_amplitude, paired=paired, precision=plan.precision,
        backend=plan.backend,
    )  # fmt: skip


def _external_modes(
    initial: ExternalICs,
    plan: LptPlan,
    power: LinearPower,
    fixed_amplitude: bool,
    paired: bool,
    progress: bool,
) -> da.Array:
    """``delta_k`` at z = 0 from external ICs; a refusal removes the scratch it began."""
    from bigpaint.errors import BigpaintError

    try:
        return initial_modes(
            initial,
            power=power,
            precision=plan.precision,
            backend=plan.backend,
            fixed_amplitude=fixed_amplitude,
            paired=paired,
            scratch=os.path.join(plan.scratch, "ics"),
            progress=progress,
        )
    except BigpaintError:
        remove_owned(plan.scratch)
        raise


def _run(
    plan: LptPlan,
    fk: da.Array,
    output: str,
    *,
    power: LinearPower,
    redshift: float,
    scheme: str,
    particles: str | None,
    velocities: bool,
    linear_output: str | None,
    overwrite: bool,
    progress: bool,
) -> LPTResult:
    """Steps 2-4 of :func:`lpt_density` from ``delta_k`` at z = 0."""
    from bigpaint.mesh.deposit import deposit_to_field

    cosmo_field = power.cosmology.to_field()
    s2k = _second_order_modes(plan, fk, progress) if plan.order == 2 else None
    psi, vel = _displacements(plan, fk, s2k, velocities)
    keep = particles is not None
    store_url = particles if particles is not None else os.path.join(plan.scratch, "particles.zarr")
    store = _particle_store(plan, store_url, power, redshift, velocities, keep, overwrite)
    linear_writer = None
    if linear_output is not None:
        linear_writer = _write_linear(
            plan, fk, linear_output, redshift=redshift, cosmology=cosmo_field,
            overwrite=overwrite, progress=progress,
        )  # fmt: skip
    # looked up here at call time, so a test can wrap the cube writer of this module
    write_particles(store, psi, vel, progress=progress, block_writer=write_particle_block)
    if overwrite and os.path.exists(output):
        shutil.rmtree(output)
    writer = deposit_to_field(
        store.url,
        output,
        nmesh=plan.nmesh,
        chunks=plan.chunks,
        scheme=scheme,
        quantity="delta",
        batch_size=plan.lblock**3,
        redshift=float(redshift),
        spill_dir=os.path.join(plan.scratch, "deposit"),
        progress=progress,
    )
    _annotate(writer, cosmo_field, {"lpt": plan.params, "lpt_job": plan.job})
    if not keep:
        shutil.rmtree(store.url, ignore_errors=True)
    remove_owned(plan.scratch)
    return LPTResult(
        writer, store.url if keep else None, linear_writer, plan.shape[0] ** 3, plan.lblock
    )


def _particle_store(
    plan: LptPlan,
    url: str,
    power: LinearPower,
    redshift: float,
    velocities: bool,
    keep: bool,
    overwrite: bool,
) -> ParticleStore:
    return open_store(
        url,
        grid=plan.shape[0],
        block=plan.lblock,
        box_size=plan.box,
        velocities=bool(velocities),
        ids=keep,
        attrs={
            "box_size": [plan.box] * 3,
            "redshift": float(redshift),
            "kind": "lpt_particles",
            "units": {"positions": "Mpc/h", "velocities": "km/s", "ids": "Lagrangian index"},
            "particle_order": f"Lagrangian cubes of {plan.lblock}^3 in C order, C order inside",
            "lattice_offset": plan.lattice_offset,
            "cosmology": power.cosmology.model_dump(),
            "provenance": {"operation": "lpt", "config": plan.params},
        },
        job=plan.job,
        overwrite=overwrite and keep,
        lattice_offset=plan.lattice_offset,
    )


def _annotate(writer: FieldWriter, cosmology: Any, extra: dict[str, Any]) -> None:
    """Add the cosmology and LPT provenance to a Field written by the deposition (in the
    stored, netCDF-safe form of :func:`bigpaint.field.update_attrs`)."""
    import zarr

    from bigpaint.field import update_attrs
    from bigpaint.field_meta import decode_attrs

    g = zarr.open_group(store=writer.url, mode="r")
    operation = (decode_attrs(g.attrs).get("provenance") or {}).get("operation")
    prov = {"deposit_operation": operation, "operation": "lpt", **extra}
    update_attrs(
        writer.url,
        provenance=json.loads(json.dumps(prov, default=str)),
        cosmology=json.loads(cosmology.model_dump_json()),
    )
