"""``bigpaint quickstart``: the whole engine on a small embedded default."""

from __future__ import annotations

import click

from bigpaint.cli._common import cluster_options, open_cluster

__all__ = ["register"]


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="bigpaint-quickstart",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output directory (Fields and report/).",
)
@click.option(
    "--grid",
    type=click.IntRange(min=32),
    default=128,
    show_default=True,
    help="Voxels per side (a multiple of 32).",
)
@click.option(
    "--chunks",
    type=click.IntRange(min=4),
    default=32,
    show_default=True,
    help="Block size in voxels.",
)
@cluster_options
def quickstart(
    out_dir: str, grid: int, chunks: int, cluster_file: str | None, workers: int | None
) -> None:
    """Run every stage that exists on a small box and write a report (resumable)."""
    from bigpaint.quickstart import run_quickstart

    with open_cluster(cluster_file, workers):
        summary = run_quickstart(out_dir, grid=grid, chunks=chunks)
    click.echo(
        f"quickstart done: chunked vs whole-array max |diff| = "
        f"{summary['chunked_vs_whole_max_abs_diff']:.3g}; report in {out_dir}/report/index.html"
    )


def register(group: click.Group) -> None:
    group.add_command(quickstart)
