"""One LPT job resolved before any work: its options, growth factors, identity and scratch.

:func:`plan_lpt` checks the options of :func:`bigpaint.ics.lpt.lpt_density` (order,
redshift, seed, precision, tile) and resolves them into an :class:`LptPlan`: the Lagrangian
lattice and density mesh, the blocks, the growth factors and rates of the cosmology at the
redshift (:func:`lpt_growth`), what the linear field comes from (a seed or the user's initial
conditions), the job token naming all of it, and the scratch folder of the job (next to the
output, or under ``scratch_dir``). :func:`finished_result` recognises an output this job has
finished already, so the same call returns it instead of redoing it, and refuses an output
another job wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bigpaint.chunked.grid import BlockGrid, default_chunks
from bigpaint.errors import ConfigError, FieldExistsError
from bigpaint.field import FieldWriter, job_token, open_field
from bigpaint.ics.grf import Precision, box_length, cube_shape, precision_dtypes
from bigpaint.ics.noise import white_noise_array
from bigpaint.ics.particle_store import is_complete, lagrangian_block
from bigpaint.ics.power import LinearPower
from bigpaint.outputs import remove_owned

if TYPE_CHECKING:
    from bigpaint.ics.ic_spec import ExternalICs

__all__ = [
    "LPTResult",
    "LptGrowth",
    "LptPlan",
    "checked_seed",
    "finished_result",
    "lpt_growth",
    "plan_lpt",
]


@dataclass(frozen=True)
class LptGrowth:
    """Growth factors (``D1 = 1`` today), growth rates and ``100 a E(a)`` (km/s per Mpc/h)."""

    d1: float
    d2: float
    f1: float
    f2: float
    vfac: float


def lpt_growth(power: LinearPower, redshift: float) -> LptGrowth:
    """The :class:`LptGrowth` of the cosmology of ``power`` at ``redshift``."""
    a = 1.0 / (1.0 + redshift)
    bg = power.background
    return LptGrowth(
        float(bg.D1(a)),
        float(bg.D2(a)),
        float(bg.f1(a)),
        float(bg.f2(a)),
        100.0 * a * float(bg.E(a)),
    )


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


@dataclass(frozen=True)
class LptPlan:
    """The resolved shape, growth, identity and scratch place of one LPT job."""

    shape: tuple[int, int, int]
    box: float
    nmesh: int
    chunks: Any
    lblock: int
    order: int
    precision: Precision
    backend: str
    growth: LptGrowth
    params: dict[str, Any]
    job: str
    scratch: str
    lattice_offset: float


def checked_seed(seed: int | None) -> int:
    """The seed of the white noise, refused (one-line ConfigError) when missing or negative."""
    if seed is None or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    return int(seed)


def _check_options(
    order: int, redshift: float, seed: int | None, tile: int, shape: Any, initial: Any
) -> None:
    if order not in (1, 2):
        raise ConfigError(f"LPT order must be 1 or 2, got {order}")
    if initial is None:
        white_noise_array(shape, (slice(0, 0),) * 3, seed=checked_seed(seed), tile=tile)
    if redshift < 0:
        raise ConfigError(f"redshift must be >= 0, got {redshift}")


def _source_record(
    seed: int | None, tile: int, initial: ExternalICs | None, grid: int, box: float
) -> dict[str, Any]:
    """What the linear field comes from, for the job token and provenance."""
    if initial is None:
        return {"seed": checked_seed(seed), "tile": int(tile)}
    return {"initial_conditions": initial.check(grid=grid, box_size=box)}


def _plan(
    output: str,
    *,
    shape: tuple[int, int, int],
    box: float,
    chunks: Any,
    nmesh: int,
    lblock: int,
    power: LinearPower,
    redshift: float,
    order: int,
    source: dict[str, Any],
    precision: Precision,
    backend: str,
    velocities: bool,
    scratch_dir: str | None,
    lattice_offset: float,
) -> LptPlan:
    growth = lpt_growth(power, redshift)
    params = {
        "grid": shape[0],
        "box_size": box,
        **source,
        "redshift": float(redshift),
        "order": int(order),
        "precision": precision,
        "power_source": power.source,
        "D1": growth.d1,
        "D2": growth.d2 if order == 2 else 0.0,
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
        scratch = os.path.join(
            os.path.dirname(absout), f".{os.path.basename(absout)}.lpt-{job[:12]}"
        )
    else:
        scratch = os.path.join(scratch_dir, f"lpt-{job[:12]}")
    return LptPlan(
        shape, box, nmesh, chunks, lblock, order, precision, backend, growth, params, job,
        scratch, lattice_offset,
    )  # fmt: skip


def plan_lpt(
    output: str,
    *,
    grid: int,
    box_size: float,
    seed: int | None,
    power: LinearPower,
    redshift: float,
    order: int,
    nmesh: int | None,
    chunks: int | tuple[int, int, int] | None,
    tile: int,
    fixed_amplitude: bool,
    paired: bool,
    precision: Precision,
    backend: str,
    block: int,
    velocities: bool,
    scratch_dir: str | None,
    initial: ExternalICs | None,
) -> LptPlan:
    """Check the options of :func:`bigpaint.ics.lpt.lpt_density` (one-line ConfigError) and
    resolve them into its plan, before anything is written."""
    shape = cube_shape(grid)
    blocks = default_chunks(chunks, (int(nmesh or grid),) * 3)  # blocks of the density
    box = box_length(box_size)
    _check_options(order, redshift, seed, tile, shape, initial)
    precision_dtypes(precision)
    source = _source_record(seed, tile, initial, shape[0], box)
    source.update(fixed_amplitude=bool(fixed_amplitude), paired=bool(paired))
    return _plan(
        output, shape=shape, box=box, chunks=blocks, nmesh=int(nmesh or shape[0]),
        lblock=lagrangian_block(shape[0], block), power=power, redshift=redshift, order=order,
        source=source, precision=precision, backend=backend, velocities=velocities,
        scratch_dir=scratch_dir, lattice_offset=0.5 if initial is None else initial.lattice_offset,
    )  # fmt: skip


def finished_result(
    plan: LptPlan, output: str, particles: str | None, overwrite: bool
) -> LPTResult | None:
    """The result of a finished run of the same job, or None (refusing another job's output)."""
    if not os.path.exists(output) or overwrite:
        return None
    try:
        attrs = open_field(output, require_complete=False).attrs
        done = attrs.get("provenance", {}).get("lpt_job") == plan.job
    except Exception:  # not a Field
        attrs, done = {}, False
    if done and attrs.get("bigpaint_complete") and (particles is None or is_complete(particles)):
        remove_owned(plan.scratch)  # a run killed while cleaning up
        mesh = (plan.nmesh,) * 3
        bx, by, bz = BlockGrid(mesh, plan.chunks).block_shape((0, 0, 0))
        writer = FieldWriter(output, "delta", mesh, (bx, by, bz), "<f4")
        return LPTResult(writer, particles, None, plan.shape[0] ** 3, plan.lblock)
    if not (done or os.path.isdir(plan.scratch)):  # our own interrupted run may resume
        raise FieldExistsError(
            f"output {output} already exists (written by a different job); choose another "
            "path or pass overwrite"
        )
    return None
