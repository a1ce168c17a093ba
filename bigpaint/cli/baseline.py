"""``bigpaint baseline fit|paint|choose-smoothing``: the bias baselines a painting must beat.

Each subcommand checks its inputs from their metadata before a cluster starts, then calls
one function of :mod:`bigpaint.stats.baselines`.
"""

from __future__ import annotations

import os

import click

from bigpaint.cli._common import cluster_options, open_cluster, parse_chunks

__all__ = ["register"]


def _radii(text: str) -> list[float]:
    from bigpaint.errors import ConfigError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"--radii must be comma-separated radii in Mpc/h, got {text!r}; e.g. 0,2,4,6"
        ) from None


def _model_output(path: str, overwrite: bool, inputs: dict[str, str]) -> None:
    from bigpaint.errors import FieldExistsError, PathConflictError
    from bigpaint.outputs import check_apart

    check_apart({"MODEL": path}, inputs)
    if os.path.isdir(path):
        raise PathConflictError(f"MODEL {path} is a directory; give the path of a JSON file")
    if os.path.exists(path) and not overwrite:
        raise FieldExistsError(f"MODEL {path} already exists; choose another path or --overwrite")


@click.group()
def baseline() -> None:
    """Bias baselines: fit linear or second-order bias to halo counts, paint with it."""


@baseline.command()
@click.argument("density")
@click.argument("counts")
@click.argument("model")
@click.option(
    "--also",
    nargs=2,
    multiple=True,
    metavar="DENSITY COUNTS",
    help="Another training box, fitted jointly (repeatable).",
)
@click.option(
    "--order",
    type=click.Choice(["1", "2"]),
    default="2",
    show_default=True,
    help="1: linear bias; 2: second-order local bias (b1, b2, bs2).",
)
@click.option(
    "--smoothing",
    type=float,
    default=2.0,
    show_default=True,
    help="Gaussian radius R of delta_R in Mpc/h (0: none); docs/baselines.md: the default.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing MODEL file.")
@cluster_options
def fit(
    density: str,
    counts: str,
    model: str,
    also: tuple[tuple[str, str], ...],
    order: str,
    smoothing: float,
    overwrite: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Fit a bias model of COUNTS (halo_count) on DENSITY (delta); write it to MODEL (JSON)."""
    from bigpaint.stats.baselines import fit_bias, open_training
    from bigpaint.stats.bias_operators import check_smoothing

    pairs = [(density, counts), *also]
    boxes = open_training(pairs)  # refuse mismatched Fields before a cluster starts
    r = check_smoothing(smoothing, min((b.box_size for b in boxes), key=min))
    inputs = {f"input {i + 1}": p for i, p in enumerate(p for pair in pairs for p in pair)}
    _model_output(model, overwrite, inputs)
    with open_cluster(cluster_file, workers):
        fitted = fit_bias(pairs, order=int(order), smoothing=r)
    fitted.save(model)
    click.echo(fitted.summary())
    click.echo(f"wrote {model}")


@baseline.command()
@click.argument("model")
@click.argument("density")
@click.argument("output")
@click.option("--sample", is_flag=True, help="Poisson counts instead of expected counts.")
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of --sample."
)
@click.option(
    "--chunks", default=None, help="Output write blocks: N or NX,NY,NZ voxels (default: input's)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@cluster_options
def paint(
    model: str,
    density: str,
    output: str,
    sample: bool,
    seed: int,
    chunks: str | None,
    overwrite: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Paint halo counts per mass bin from DENSITY with MODEL into OUTPUT (halo_count).

    Values are the model's expected counts per cell (unclipped: a linear model can go
    negative in voids), or with --sample Poisson draws from them clipped at 0 and rescaled to
    keep each mass bin's mean. Re-running the same command after an interruption resumes.
    """
    from bigpaint.field import open_field
    from bigpaint.stats.baselines import check_density, paint_bias
    from bigpaint.stats.bias_model import BiasModel

    bias = BiasModel.load(model)
    check_density(bias, open_field(density))
    out_chunks = parse_chunks(chunks)
    with open_cluster(
        cluster_file, workers, outputs={"output": output},
        inputs={"density": density, "model": model},
    ):  # fmt: skip
        writer = paint_bias(
            model, density, output, sample=sample, seed=seed, chunks=out_chunks,
            overwrite=overwrite, progress=True,
        )  # fmt: skip
    what = "Poisson counts" if sample else "expected counts"
    click.echo(f"painted {writer.url} {writer.shape} ({what}, {bias.name})")


@baseline.command("choose-smoothing")
@click.argument("density")
@click.argument("counts")
@click.argument("heldout_density")
@click.argument("heldout_counts")
@click.option(
    "--order", type=click.Choice(["1", "2"]), default="2", show_default=True, help="As fit."
)
@click.option("--radii", default="0,2,4,6", show_default=True, help="Candidate radii R in Mpc/h.")
@cluster_options
def choose_smoothing(
    density: str,
    counts: str,
    heldout_density: str,
    heldout_counts: str,
    order: str,
    radii: str,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Fit on DENSITY/COUNTS for each radius and print its error on the held-out box."""
    from bigpaint.stats.baselines import choose_smoothing as choose
    from bigpaint.stats.baselines import open_training
    from bigpaint.stats.bias_operators import check_smoothing

    train, held = [(density, counts)], [(heldout_density, heldout_counts)]
    boxes = open_training([*train, *held])
    rs = [check_smoothing(r, min((b.box_size for b in boxes), key=min)) for r in _radii(radii)]
    with open_cluster(cluster_file, workers):
        choice = choose(train, held, order=int(order), radii=rs)
    click.echo(choice.table())
    click.echo(f"best R = {choice.best:g} Mpc/h")


def register(group: click.Group) -> None:
    group.add_command(baseline)
