"""``bigpaint quickstart``: every stage of the engine on a small embedded default.

Thin: builds the embedded pipeline (:func:`bigpaint.quickstart.quickstart_config`) with the
given options and runs it like ``bigpaint run`` does.
"""

from __future__ import annotations

import click

from bigpaint.cli._common import cluster_options

__all__ = ["register"]


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="bigpaint-quickstart",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Run directory (one folder per stage, report/ with index.html).",
)
@click.option(
    "--grid",
    type=click.IntRange(min=32),
    default=None,
    help="Cells per side of the big box, a multiple of 32 (box = 2 grid Mpc/h). [default: 128]",
)
@click.option(
    "--chunks",
    type=click.IntRange(min=4),
    default=None,
    help="Block size in cells of the big box's Fields. [default: 32]",
)
@click.option(
    "--train-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Painter training updates. [default: 200]",
)
@click.option("--overwrite", is_flag=True, help="Redo stages that were run with other options.")
@click.option("--dry-run", is_flag=True, help="Check the pipeline and print each stage's status.")
@cluster_options
def quickstart(
    out_dir: str,
    grid: int | None,
    chunks: int | None,
    train_steps: int | None,
    overwrite: bool,
    dry_run: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Simulate, train, paint, judge and segment on a small box; write report/index.html.

    Runs the pipeline embedded in the package (bigpaint/pipeline/defaults/quickstart.yaml);
    running it again skips finished stages and resumes a killed one.
    """
    from bigpaint.cli.run import execute, resolve_cluster
    from bigpaint.quickstart import quickstart_config

    cfg = quickstart_config(out_dir, grid=grid, chunks=chunks, train_steps=train_steps)
    cluster = resolve_cluster(cfg, cluster_file, workers)
    execute(cfg, "quickstart", overwrite=overwrite, dry_run=dry_run, cluster=cluster)


def register(group: click.Group) -> None:
    """Add ``quickstart`` to the ``bigpaint`` command group."""
    group.add_command(quickstart)
