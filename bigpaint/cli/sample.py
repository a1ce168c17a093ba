"""``bigpaint sample PAINTED OUT.parquet``: a painted count Field to a halo catalogue."""

from __future__ import annotations

import click

from bigpaint.cli._common import cluster_options, open_cluster, parse_chunks

__all__ = ["register"]


@click.command(name="sample")
@click.argument("painted")
@click.argument("output")
@click.option("--seed", type=click.IntRange(min=0), required=True, help="Seed of the draws.")
@click.option(
    "--mass-function",
    default="model",
    show_default=True,
    metavar="model|SLOPE",
    help="Masses inside a bin: 'model' (Watson13 FoF of the Field's cosmology and redshift) "
    "or the slope s of dn/dlnM ~ M^-s.",
)
@click.option(
    "--density",
    default=None,
    metavar="FIELD",
    help="Finer density Field: positions follow it inside each cell (default: uniform).",
)
@click.option(
    "--velocity",
    default=None,
    metavar="FIELD",
    help="Field of 3 channels (vx, vy, vz) in km/s: each halo takes its cell's velocity.",
)
@click.option(
    "--chunks",
    default=None,
    help="Blocks of the painted grid, N or NX,NY,NZ (default: the Field's write blocks); "
    "the catalogue does not depend on it.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing catalogue.")
@click.option("--progress/--no-progress", default=True, help="Report progress on stderr.")
@cluster_options
def sample(
    painted: str,
    output: str,
    seed: int,
    mass_function: str,
    density: str | None,
    velocity: str | None,
    chunks: str | None,
    overwrite: bool,
    progress: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Poisson-sample the painted halo counts PAINTED into a halo catalogue OUT.parquet.

    PAINTED holds expected halos per cell, one channel per mass bin, with its bin edges
    recorded. Each cell's count is Poisson; positions are uniform in the cell (or follow
    --density); masses come from the bin's mass function (--mass-function); velocities from
    --velocity. Columns: id, bin, mass [Msun/h], x, y, z [Mpc/h] (and vx, vy, vz [km/s]),
    units in the Parquet metadata. Re-running the same command resumes; any --chunks gives
    the same catalogue.
    """
    from bigpaint.sample.run import plan_sample, run_sample

    plan = plan_sample(
        painted, output, seed=seed, mass_function=mass_function, density=density,
        velocity=velocity, chunks=parse_chunks(chunks), overwrite=overwrite,
    )  # fmt: skip
    with open_cluster(cluster_file, workers):
        result = run_sample(plan, overwrite=overwrite, progress=progress)
    click.echo(
        f"wrote {result.path}: {result.n_halos} halos "
        f"({result.blocks_sampled} of {result.blocks_total} blocks sampled now)"
    )


def register(group: click.Group) -> None:
    group.add_command(sample)
