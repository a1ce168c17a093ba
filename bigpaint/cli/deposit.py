"""``bigpaint deposit``: particles (snapshot or array) to a density Field.

``--redshift`` and ``--cosmology`` record the physics a painter's model card checks; the
cosmology is one comma-separated list of all five parameters,
``Omega_m=0.3175,Omega_b=0.049,h=0.6711,n_s=0.9624,sigma_8=0.834``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bigpaint.cli._common import cluster_options, open_cluster, parse_chunks, snapshot_options
from bigpaint.errors import ConfigError

if TYPE_CHECKING:
    from bigpaint.mesh.deposit import Quantity

__all__ = ["register"]


@click.command()
@click.argument("particles")
@click.argument("output")
@click.option("--grid", type=click.IntRange(min=1), required=True, help="Cells per side.")
@click.option(
    "--scheme",
    type=click.Choice(["ngp", "cic", "tsc", "pcs"], case_sensitive=False),
    default="cic",
    show_default=True,
    help="Mass assignment scheme.",
)
@click.option(
    "--interlace", is_flag=True, help="Interlace (half-cell-shifted twin, Fourier space)."
)
@click.option("--chunks", default=None, help="Write blocks: N or NX,NY,NZ cells (default 128).")
@click.option(
    "--quantity",
    type=click.Choice(["delta", "mass", "density"]),
    default="delta",
    show_default=True,
    help="Overdensity, mass per cell, or mass per (Mpc/h)^3.",
)
@click.option(
    "--box-size", type=float, default=None, help="Box in Mpc/h (required for .npy and arrays)."
)
@click.option(
    "--masses", default=None, help=".npy file of per-particle masses (with a .npy input)."
)
@click.option(
    "--wrap", is_flag=True, help="Wrap positions outside [0, L) instead of refusing them."
)
@snapshot_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1 << 22,
    show_default=True,
    help="Particles read per task.",
)
@click.option(
    "--redshift",
    type=click.FloatRange(min=0),
    default=None,
    help="Redshift of the particles, recorded in the Field (default: the snapshot's, if any).",
)
@click.option(
    "--cosmology",
    default=None,
    metavar="PARAMS",
    help="Cosmology recorded in the Field: all of Omega_m=..,Omega_b=..,h=..,n_s=..,sigma_8=..",
)
@click.option("--spill-dir", default=None, help="Bucket directory visible to every worker.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@cluster_options
def deposit(
    particles: str,
    output: str,
    grid: int,
    scheme: str,
    interlace: bool,
    chunks: str | None,
    quantity: Quantity,  # click's Choice gives one of these
    box_size: float | None,
    masses: str | None,
    wrap: bool,
    length_unit: str | None,
    ptype: int,
    batch_size: int,
    redshift: float | None,
    cosmology: str | None,
    spill_dir: str | None,
    overwrite: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Deposit PARTICLES (.npy, Zarr, Gadget HDF5 or binary, SWIFT) onto a periodic grid as the Field OUTPUT.

    Positions are in Mpc/h (snapshots: converted from the snapshot's unit; Gadget binary
    files, which record none, are kpc/h unless --length-unit says otherwise). Bad input is
    refused before anything is written; re-running after an interruption resumes. Give
    --redshift and --cosmology when a painter with a model card will paint the Field: it
    refuses inputs that do not record them.
    """
    from bigpaint.errors import check_writable
    from bigpaint.io.open import open_particles
    from bigpaint.mesh.deposit import deposit_to_field
    from bigpaint.outputs import check_apart, check_scratch_home

    cosmo = parse_cosmology(cosmology)
    check_apart({"output": output}, {"particles": particles})  # before reading particles
    check_scratch_home("--spill-dir", spill_dir, {"output": output, "particles": particles})
    if spill_dir is not None:
        check_writable(spill_dir, "--spill-dir")
    src = open_particles(  # refuse a bad input before starting a cluster
        particles,
        box_size=box_size,
        masses=masses,
        batch_size=batch_size,
        length_unit=length_unit,
        ptype=ptype,
    )
    with open_cluster(
        cluster_file, workers, outputs={"output": output}, inputs={"particles": particles}
    ):
        writer = deposit_to_field(
            src,
            output,
            nmesh=grid,
            chunks=parse_chunks(chunks),
            scheme=scheme.lower(),
            quantity=quantity,
            interlace=interlace,
            wrap=wrap,
            redshift=redshift,
            cosmology=cosmo,
            spill_dir=spill_dir,
            overwrite=overwrite,
            progress=True,
        )
    click.echo(
        f"wrote {writer.url} ({writer.shape}, {len(list(writer.blocks()))} blocks) "
        f"from {src.n_particles} particles"
    )


def parse_cosmology(text: str | None) -> dict[str, float] | None:
    """``"Omega_m=0.3,Omega_b=0.05,h=0.7,n_s=0.96,sigma_8=0.8"`` to a checked mapping.

    All five parameters are required (:func:`bigpaint.mesh.deposit.cosmology_record`): a
    default filled in would record a cosmology the particles may not have.
    """
    from bigpaint.field import Cosmology
    from bigpaint.mesh.deposit import cosmology_record

    if text is None:
        return None
    names = list(Cosmology.model_fields)
    values: dict[str, float] = {}
    for item in (p.strip() for p in text.split(",")):
        key, sep, value = (v.strip() for v in item.partition("="))
        if key in values:
            raise ConfigError(f"--cosmology gives {key} twice; give each parameter once")
        if not sep or key not in names:
            raise ConfigError(
                f"--cosmology: {item!r} is not NAME=VALUE of {', '.join(names)}; give e.g. "
                "Omega_m=0.3175,Omega_b=0.049,h=0.6711,n_s=0.9624,sigma_8=0.834"
            )
        try:
            values[key] = float(value)
        except ValueError:
            raise ConfigError(f"--cosmology: {key}={value!r} is not a number") from None
    return cosmology_record(values)


def register(group: click.Group) -> None:
    group.add_command(deposit)
