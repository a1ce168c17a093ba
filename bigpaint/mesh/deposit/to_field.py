"""Deposit particles into a Field: open the input, guard the output, run, clean the spill.

:func:`deposit_to_field` is a short list of phases: open the particles and settle the box;
plan the blocks; make the Field's record and job token (:mod:`~bigpaint.mesh.deposit.record`);
refuse an output that is an input or was written by another job; then, holding the
output's writer lock, deposit (:func:`~bigpaint.mesh.deposit.run.route_and_deposit`, or the
interlaced pair of :mod:`~bigpaint.mesh.deposit.interlace`) and finalize the Field.

**Resume.** The output Field is created only once every particle has been checked, with the
job token; re-running the same command finds it unfinished and deposits only its unwritten
blocks. The spill directory belongs to the job (:mod:`~bigpaint.mesh.deposit.spill`) and is
removed when the Field is finished or the job fails, except the intermediate grids of an
interlaced run whose output exists, which a rerun resumes from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bigpaint.errors import FieldExistsError
from bigpaint.field import FieldWriter, create_field, remove_field
from bigpaint.io.open import open_particles
from bigpaint.io.particles import DEFAULT_BATCH_SIZE, ParticleSource
from bigpaint.mesh.assign import grid_shape, scheme_order
from bigpaint.mesh.deposit.interlace import deposit_interlaced
from bigpaint.mesh.deposit.plan import DepositPlan
from bigpaint.mesh.deposit.record import FieldRecord, field_record, particle_paths
from bigpaint.mesh.deposit.route import DEFAULT_HOME_FRACTION
from bigpaint.mesh.deposit.run import Quantity, check_quantity, route_and_deposit
from bigpaint.mesh.deposit.spill import job_spill_dir
from bigpaint.outputs import check_apart, owned_dir, remove_owned, writing
from bigpaint.store import store_exists

__all__ = ["DEFAULT_BLOCK", "deposit_to_field"]

#: Default write block per axis in cells (or the grid, if smaller).
DEFAULT_BLOCK = 128


def deposit_to_field(
    particles: Any,
    url: str,
    *,
    nmesh: int | Sequence[int],
    chunks: int | Sequence[int] | None = None,
    box_size: float | Sequence[float] | None = None,
    scheme: str = "cic",
    quantity: Quantity = "delta",
    interlace: bool = False,
    wrap: bool = False,
    masses: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    length_unit: str | float | None = None,
    ptype: int = 1,
    redshift: float | None = None,
    cosmology: Any = None,
    dtype: str = "float32",
    spill_dir: str | None = None,
    home_fraction: float = DEFAULT_HOME_FRACTION,
    overwrite: bool = False,
    progress: bool = False,
) -> FieldWriter:
    """Deposit particles onto a periodic grid and write it as a Field, block by block.

    Runs on the current distributed client if there is one, else on local threads.

    Parameters
    ----------
    particles : str, array, dask array or ParticleSource
        What :func:`bigpaint.io.open_particles` accepts: ``.npy``, Zarr, Gadget HDF5 (single
        or multi-file), numpy or dask (N, 3) positions in Mpc/h.
    url : str
        Output Field (Zarr v3 store).
    nmesh : int or 3 ints
        Grid cells per axis.
    chunks : int or 3 ints, optional
        Write block size in cells (default: 128 per axis, or the grid if smaller). Any size
        up to the grid works; the last block per axis may be smaller.
    box_size : float or 3 floats, optional
        Box in Mpc/h; required for inputs without one, checked against snapshot headers.
    scheme : {"ngp", "cic", "tsc", "pcs"}
    quantity : {"delta", "mass", "density"}
        Overdensity (kind ``delta``), mass per cell (kind ``mass``), or mass per (Mpc/h)^3
        (kind ``density``).
    interlace : bool
        Interlace: deposit a second grid shifted by half a cell and combine the two in Fourier
        space with the distributed FFT, which removes most of the aliasing of P(k).
        The scheme and interlacing are the Field's ``mass_assignment`` record, which the
        spectra read to compensate the window.
    wrap : bool
        Wrap positions outside the box instead of refusing them.
    masses, batch_size, length_unit, ptype
        Passed to :func:`bigpaint.io.open_particles`.
    redshift : float, optional
        Stored in the Field (default: the input's, if it has one).
    cosmology : bigpaint.field.Cosmology or mapping, optional
        Stored in the Field (all five parameters: ``Omega_m``, ``Omega_b``, ``h``, ``n_s``,
        ``sigma_8``). Painters with a model card refuse inputs without redshift and cosmology.
    dtype : str
        Stored dtype (accumulation is float64).
    spill_dir : str, optional
        Where bucket files (and, with interlacing, the two intermediate grids) go; must be
        visible to every worker. Default: a hidden directory next to a local output, else the
        system temporary directory. Removed when the Field is finished.
    home_fraction : float
        See :func:`~bigpaint.mesh.deposit.run.deposit_blocks`.
    overwrite : bool
        Replace an existing output. Without it, re-running the same command on an unfinished
        output resumes it, and any other existing output is refused.
    progress : bool

    Returns
    -------
    FieldWriter
        Of the finished Field (``.open()`` reads it).

    Raises
    ------
    MetadataError, ShapeError, NonFiniteError, ParticleBoundsError, ChunkingError
        Before anything is written.
    """
    check_quantity(quantity)
    scheme_order(scheme)
    shape = grid_shape(nmesh)
    src = open_particles(particles, box_size=box_size, masses=masses, batch_size=batch_size,
                         length_unit=length_unit, ptype=ptype)  # fmt: skip
    assert src.box_size is not None  # open_particles settles the box or refuses the input
    if chunks is None:
        chunks = tuple(min(n, DEFAULT_BLOCK) for n in shape)
    plan = DepositPlan(shape, chunks, src.box_size, scheme)
    inputs = particle_paths(particles)
    record = field_record(src, plan, inputs, quantity=quantity, interlace=interlace, wrap=wrap,
                          dtype=dtype, redshift=redshift, cosmology=cosmology)  # fmt: skip
    spill = job_spill_dir(url, record.job, spill_dir)
    check_apart({"output": url, "spill directory": spill}, inputs)
    with writing({"output": url}, inputs):
        if overwrite:
            remove_field(url)
        refuse_foreign_output(url, record.job)
        owned_dir(spill, purpose="deposit spill files")
        return _deposit_owned(src, url, plan, record, spill, quantity=quantity, dtype=dtype,
                              interlace=interlace, wrap=wrap, home_fraction=home_fraction,
                              progress=progress)  # fmt: skip


def refuse_foreign_output(url: str, job: str) -> None:
    """Refuse an existing output written by another job before any work is done."""
    import zarr

    if not store_exists(url):
        return
    try:
        same = zarr.open_group(store=str(url), mode="r").attrs.get("bigpaint_job") == job
    except Exception:  # not a Zarr group at all
        same = False
    if not same:
        raise FieldExistsError(
            f"output {url} already exists (written by a different job); choose another path or "
            "pass --overwrite"
        )


def _deposit_owned(
    src: ParticleSource,
    url: str,
    plan: DepositPlan,
    record: FieldRecord,
    spill_dir: str,
    *,
    quantity: str,
    dtype: str,
    interlace: bool,
    wrap: bool,
    home_fraction: float,
    progress: bool,
) -> FieldWriter:
    """The deposit proper, under the output's lock, with its spill in ``spill_dir`` (owned)."""
    write_chunks = tuple(c[0] for c in plan.chunks)

    def create() -> FieldWriter:
        return create_field(url, shape=plan.shape, chunks=write_chunks, meta=record.meta,
                            dtype=dtype, job=record.job)  # fmt: skip

    try:
        writer = _deposit(src, plan, create, spill_dir, quantity=quantity, interlace=interlace,
                          wrap=wrap, home_fraction=home_fraction, progress=progress,
                          job=record.job)  # fmt: skip
        writer.finalize()
    except BaseException:
        # keep the intermediate grids of an interlaced run whose output exists (resume);
        # otherwise leave nothing behind
        if not (interlace and store_exists(url)):
            remove_owned(spill_dir)
        raise
    remove_owned(spill_dir)
    return writer


def _deposit(
    src: ParticleSource,
    plan: DepositPlan,
    create: Callable[[], FieldWriter],
    spill_dir: str,
    *,
    quantity: str,
    interlace: bool,
    wrap: bool,
    home_fraction: float,
    progress: bool,
    job: str,
) -> FieldWriter:
    """Deposit into the Field ``create()`` makes, plain or interlaced (not finalized)."""
    if interlace:
        return deposit_interlaced(src, plan, create, quantity=quantity, wrap=wrap,
                                  spill_dir=spill_dir, home_fraction=home_fraction,
                                  progress=progress, job=job)  # fmt: skip
    writer, _, _ = route_and_deposit(src, plan, create, spill_dir=spill_dir, quantity=quantity,
                                     wrap=wrap, home_fraction=home_fraction, progress=progress,
                                     scheduler=None)  # fmt: skip
    return writer
