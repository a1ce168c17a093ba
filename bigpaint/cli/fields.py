"""``bigpaint info`` and ``bigpaint smooth``."""

from __future__ import annotations

import json

import click

from bigpaint.cli._common import cluster_options, open_cluster, parse_chunks

__all__ = ["register"]


@click.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(path: str, as_json: bool) -> None:
    """Print a Field's metadata, chunking, completion state and size."""
    from bigpaint.field import field_info, format_info

    meta = field_info(path)
    click.echo(json.dumps(meta, indent=2, default=str) if as_json else format_info(meta))


@click.command()
@click.argument("input")
@click.argument("output")
@click.option(
    "--sigma-mpc", type=float, required=True, help="Gaussian standard deviation in Mpc/h."
)
@click.option(
    "--truncate",
    type=float,
    default=4.0,
    show_default=True,
    help="Kernel cut in standard deviations.",
)
@click.option(
    "--chunks", default=None, help="Output write blocks: N or NX,NY,NZ voxels (default: input's)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@cluster_options
def smooth(
    input: str,
    output: str,
    sigma_mpc: float,
    truncate: float,
    chunks: str | None,
    overwrite: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Gaussian-smooth INPUT into OUTPUT (periodic, real space, sigma in Mpc/h).

    Re-running the same command after an interruption resumes: finished blocks are kept.
    """
    from bigpaint.field import open_field
    from bigpaint.filters import check_sigma, check_smooth_size
    from bigpaint.filters import smooth as smooth_field

    # refuse bad arguments and inputs before starting a cluster
    check_sigma([sigma_mpc], "sigma (Mpc/h)")
    out_chunks = parse_chunks(chunks)
    check_smooth_size(open_field(input), sigma_mpc, truncate=truncate, chunks=out_chunks)
    with open_cluster(cluster_file, workers, outputs={"output": output}, inputs={"input": input}):
        writer = smooth_field(
            input,
            output,
            sigma_mpc,
            truncate=truncate,
            chunks=out_chunks,
            overwrite=overwrite,
            progress=True,
        )
    click.echo(f"wrote {writer.url} ({writer.shape}, {len(list(writer.blocks()))} blocks)")


def register(group: click.Group) -> None:
    group.add_command(info)
    group.add_command(smooth)
