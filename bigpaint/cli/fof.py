"""``bigpaint fof SNAPSHOT OUT``: friends-of-friends halos of a user's snapshot.

The catalogue is the Parquet file ``bigpaint simulate`` writes (``halos.parquet``: same
columns, order and metadata keys), so ``bigpaint bin`` and every consumer of simulate's
catalogue read it. The whole snapshot is held in memory; a job whose estimated memory
exceeds ``--memory-limit`` (default: what the machine has available) is refused before
reading a particle.
"""

from __future__ import annotations

import os

import click

from bigpaint.cli._common import record_options, snapshot_options
from bigpaint.cli.deposit import parse_cosmology
from bigpaint.errors import ConfigError, FieldExistsError

__all__ = ["register"]


def parse_memory(text: str | None) -> int | None:
    """``"8GB"``, ``"512MiB"`` or a number of bytes, to bytes."""
    if text is None:
        return None
    from dask.utils import parse_bytes

    try:
        value = int(parse_bytes(text))
    except (ValueError, TypeError):
        raise ConfigError(f"--memory-limit {text!r} is not a size like 8GB or 512MiB") from None
    if value <= 0:
        raise ConfigError(f"--memory-limit must be positive, got {text!r}")
    return value


@click.command()
@click.argument("snapshot")
@click.argument("output")
@click.option(
    "--b",
    "b",
    type=float,
    default=0.2,
    show_default=True,
    help="Linking length in mean interparticle separations.",
)
@click.option(
    "--min-members",
    type=click.IntRange(min=2),
    default=20,
    show_default=True,
    help="Smallest halo kept, in particles.",
)
@snapshot_options
@click.option(
    "--box-size",
    type=float,
    default=None,
    help="Box in Mpc/h (required for .npy; checked against a snapshot header).",
)
@click.option(
    "--particle-mass",
    type=float,
    default=None,
    help="Particle mass in Msun/h, when the snapshot records none.",
)
@click.option(
    "--memory-limit",
    default=None,
    metavar="SIZE",
    help="Memory the job may use, e.g. 64GB (default: what is available now).",
)
@record_options("the snapshot's")
def fof(
    snapshot: str,
    output: str,
    b: float,
    min_members: int,
    ptype: int,
    length_unit: str | None,
    box_size: float | None,
    particle_mass: float | None,
    memory_limit: str | None,
    redshift: float | None,
    cosmology: str | None,
    overwrite: bool,
) -> None:
    """Find friends-of-friends halos in SNAPSHOT and write their catalogue to OUTPUT (.parquet).

    SNAPSHOT is anything `bigpaint deposit` reads: Gadget HDF5 or binary (formats 1 and
    2, multi-file), SWIFT HDF5, Zarr or .npy. The box is periodic; the linking length is b
    times L / N^(1/3). Columns: halo_id, n_particles, mass (Msun/h), x, y, z (Mpc/h), vx, vy,
    vz (peculiar km/s; NaN when the snapshot has no velocities) and members (particle ids).
    """
    from bigpaint.catalogs.fof import snapshot_halos
    from bigpaint.io.open import open_particles
    from bigpaint.outputs import writing
    from bigpaint.sim.fof import write_catalogue

    cosmo = parse_cosmology(cosmology)
    limit = parse_memory(memory_limit)
    if os.path.exists(output) and not overwrite:
        raise FieldExistsError(
            f"{output} already exists; choose another output or pass --overwrite"
        )
    src = open_particles(snapshot, box_size=box_size, length_unit=length_unit, ptype=ptype)
    with writing({"output": output}, {"snapshot": snapshot}):
        table, meta = snapshot_halos(src, b=b, min_members=min_members,
                                     particle_mass=particle_mass, memory_limit=limit,
                                     redshift=redshift, cosmology=cosmo)  # fmt: skip
        partial = f"{output}.partial"
        write_catalogue(table, partial, meta)
        os.replace(partial, output)
    click.echo(
        f"wrote {output}: {table.num_rows} halos with >= {min_members} particles from "
        f"{src.n_particles} particles (b = {b}, particle mass {meta['particle_mass']:.4g} Msun/h)"
    )


def register(group: click.Group) -> None:
    group.add_command(fof)
