"""``bigpaint ics | lpt | simulate CONFIG``: cheap universes and small simulations.

Each command reads a typed YAML config (:mod:`bigpaint.ics.config`,
:class:`bigpaint.sim.simulate.SimulateConfig`), applies the few flags given on the command
line on top, and calls one library function. ``ics`` and ``lpt`` run on the configured
cluster (default: a LocalCluster; the FFT transposes use P2P rechunks that spill to disk).
``simulate`` runs the particle-mesh code in this process (torch on the CPU or a GPU), so it
takes no cluster options.

With an ``initial_conditions`` section, ``ics`` and ``lpt`` start from the user's own
initial conditions (a linear density, a white noise or particles) instead of the seed; they
are opened and checked against the config before the cluster starts, so a mismatch is
refused in one line with nothing written.
"""

from __future__ import annotations

from typing import Any

import click

from bigpaint.cli._common import cluster_config, cluster_options, open_cluster

__all__ = ["register"]


def _overrides(**flags: Any) -> dict[str, Any]:
    return {k: v for k, v in flags.items() if v is not None and v is not False}


_output = click.option("--output", default=None, help="Output path (overrides the config's).")
_seed = click.option("--seed", type=click.IntRange(min=0), default=None, help="Random seed.")
_overwrite = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_output
@_seed
@_overwrite
@cluster_options
def ics(
    config: str,
    output: str | None,
    seed: int | None,
    overwrite: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Write the linear density field (Gaussian ICs) that CONFIG describes.

    The field depends on the seed (and noise tile) alone, never on chunks or workers.
    """
    from bigpaint.config import load_config
    from bigpaint.ics.config import IcsConfig, run_ics

    cfg = load_config(IcsConfig, config, _overrides(output=output, seed=seed, overwrite=overwrite))
    cfg.check_tile()  # refuse a bad grid before starting a cluster
    cfg.check_size(cluster_config(cluster_file, workers))
    initial = cfg.external()
    with open_cluster(cluster_file, workers):
        writer = run_ics(cfg, initial=initial)
    source = f", from {initial.kind} {initial.path}" if initial else ""
    click.echo(f"wrote {writer.url} (delta_lin, {writer.shape}, z = {cfg.redshift}{source})")


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_output
@_seed
@_overwrite
@cluster_options
def lpt(
    config: str,
    output: str | None,
    seed: int | None,
    overwrite: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Write the 2LPT (or Zel'dovich) density field, and optionally particles, from CONFIG."""
    from bigpaint.config import load_config
    from bigpaint.ics.config import LptConfig, run_lpt

    cfg = load_config(LptConfig, config, _overrides(output=output, seed=seed, overwrite=overwrite))
    cfg.check_tile()
    cfg.check_size(cluster_config(cluster_file, workers))
    initial = cfg.external()
    with open_cluster(cluster_file, workers):
        res = run_lpt(cfg, progress=True, initial=initial)
    extra = f", particles in {res.particles}" if res.particles else ""
    if initial is not None:
        extra += f", from {initial.kind} {initial.path}"
    click.echo(
        f"wrote {res.density.url} ({cfg.order}LPT density, {res.n_particles} particles, "
        f"z = {cfg.redshift}{extra})"
    )


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@_output
@_seed
@_overwrite
@click.option("--device", default=None, help="torch device: auto, cpu or cuda.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def simulate(
    config: str,
    output: str | None,
    seed: int | None,
    overwrite: bool,
    device: str | None,
    quiet: bool,
) -> None:
    """Run the small PM simulation of CONFIG: 2LPT ICs, PM, FoF halos, truth Fields."""
    import logging

    from bigpaint.config import load_config
    from bigpaint.sim.simulate import SimulateConfig
    from bigpaint.sim.simulate import simulate as run

    cfg = load_config(
        SimulateConfig,
        config,
        _overrides(output=output, seed=seed, overwrite=overwrite, device=device),
    )
    progress = logging.getLogger("bigpaint.sim.simulate").info  # stderr, like all progress
    res = run(cfg, log=None if quiet else progress)
    click.echo(
        f"wrote {res.output}: {res.n_halos} halos, {res.steps_per_second:.2f} PM steps/s, "
        f"{res.total_seconds:.0f} s in all"
    )


def register(group: click.Group) -> None:
    group.add_command(ics)
    group.add_command(lpt)
    group.add_command(simulate)
