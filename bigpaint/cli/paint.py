"""``bigpaint paint``: paint a Field with a trained painter, chunk by chunk.

Thin: flags (or a YAML file, ``--config``, which flags override) become a
:class:`bigpaint.paint.config.PaintConfig`, whose spec is planned here, so that the checkpoint
is checked against the input before a cluster starts, and then run with that plan by
:func:`bigpaint.paint.paint`. Re-running the same command resumes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from bigpaint.cli._common import cluster_config, cluster_options, parse_chunks

if TYPE_CHECKING:
    from bigpaint.paint.plan import PaintPlan

__all__ = ["register"]


@click.command()
@click.argument("paths", nargs=-1, metavar="[INPUT OUTPUT]")
@click.option(
    "--checkpoint",
    default=None,
    help="Painter checkpoint directory (bigpaint train), or pretrained:NAME (bigpaint painters list).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML paint config (checkpoint, input, output, chunks, margin, slab, cluster, ...).",
)
@click.option("--chunks", default=None, help="Output write blocks: N or NX,NY,NZ voxels.")
@click.option(
    "--margin",
    type=click.IntRange(min=0),
    default=None,
    help="Seam margin per side in voxels for U-Nets (default: docs/paint.md).",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Default auto."
)
@click.option("--memory-budget", default=None, help="Activation memory per forward, e.g. 2GiB.")
@click.option("--autocast", type=click.Choice(["bf16", "fp16"]), default=None)
@click.option("--slab-axis", type=click.Choice(["x", "y", "z"]), default=None, help="2-D painters.")
@click.option(
    "--slab-thickness",
    type=click.IntRange(min=1),
    default=None,
    help="2-D painters: voxels per projected slab (default: the training depth).",
)
@click.option("--seed", type=int, default=None, help="Seed of noise-injecting painters.")
@click.option(
    "--fixed-tile",
    type=click.IntRange(min=1),
    default=None,
    help="Paint a fixed global grid of tiles of this edge (voxels), one per call: the output "
    "is then bit-identical for any chunks that are multiples of it (docs/paint.md).",
)
@click.option(
    "--allow-mismatch",
    default=None,
    metavar="CHECKS",
    help="Paint an input the model card does not cover, e.g. redshift,cosmology (of cell_size, "
    "redshift, cosmology, kind, mass_assignment); logged and recorded in the output.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@cluster_options
def paint(
    paths: tuple[str, ...],
    checkpoint: str | None,
    config_file: str | None,
    chunks: str | None,
    margin: int | None,
    device: str | None,
    memory_budget: str | None,
    autocast: str | None,
    slab_axis: str | None,
    slab_thickness: int | None,
    seed: int | None,
    fixed_tile: int | None,
    allow_mismatch: str | None,
    overwrite: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Paint INPUT into OUTPUT with the painter in --checkpoint (or from --config).

    \b
    bigpaint paint --checkpoint runs/halo/best.painter box.zarr halos.zarr
    bigpaint paint --checkpoint pretrained:NAME box.zarr halos.zarr
    bigpaint paint --config paint.yaml
    """
    from bigpaint.cluster import connect
    from bigpaint.config import load_config, parse_config
    from bigpaint.errors import ConfigError
    from bigpaint.outputs import writing
    from bigpaint.paint import paint as run_paint
    from bigpaint.paint import plan_spec
    from bigpaint.paint.config import PaintConfig
    from bigpaint.painters.card import parse_allow_mismatch

    if len(paths) not in (0, 2):
        raise ConfigError(f"give INPUT and OUTPUT (or neither, with --config), got {len(paths)}")
    slab: dict[str, str | int] = {}
    if slab_axis is not None:
        slab["axis"] = slab_axis
    if slab_thickness is not None:
        slab["thickness"] = slab_thickness
    overrides: dict[str, Any] = {
        "checkpoint": checkpoint,
        "input": paths[0] if paths else None,
        "output": paths[1] if paths else None,
        "chunks": parse_chunks(chunks) if chunks else None,
        "margin": margin,
        "device": device,
        "memory_budget": memory_budget,
        "autocast": autocast,
        "seed": seed,
        "fixed_tile": fixed_tile,
        "allow_mismatch": None
        if allow_mismatch is None
        else sorted(parse_allow_mismatch(allow_mismatch, "--allow-mismatch")),
        "overwrite": True if overwrite else None,
        **{f"slab.{k}": v for k, v in slab.items()},
    }
    if config_file is not None:
        cfg = load_config(PaintConfig, config_file, overrides)
    else:
        if checkpoint is None or not paths:
            raise ConfigError("give --checkpoint CKPT INPUT OUTPUT, or --config FILE")
        data = {k: v for k, v in overrides.items() if v is not None and "." not in k}
        if slab:
            data["slab"] = slab
        cfg = parse_config(PaintConfig, data, "paint options")
    if cluster_file is not None or workers is not None or config_file is None:
        cluster = cluster_config(cluster_file, workers)
    else:
        cluster = cfg.cluster
    spec = cfg.spec()
    # refuse an incompatible checkpoint or input before a cluster starts; the plan (and the
    # input it opened) is the one painted
    plan = plan_spec(spec)
    _check_painter(plan, spec.budget_bytes)
    with (
        writing({"output": spec.output}, {"input": spec.input, "checkpoint": plan.checkpoint.path}),
        connect(cluster),
    ):
        run_paint(spec, plan=plan, progress=True)
    click.echo(
        f"painted {spec.output} {plan.out_shape} with {plan.checkpoint.meta.family} "
        f"(margin {plan.margin}, chunks {plan.chunks})"
    )


def _check_painter(plan: PaintPlan, budget: int | None) -> None:
    """Load the painter here, so that damaged weights are refused before a cluster starts,
    and refuse a memory budget (bytes) below what its smallest sub-tile needs
    (:func:`bigpaint.paint.plan.min_memory_budget`)."""
    from bigpaint.paint.plan import check_memory_budget
    from bigpaint.paint.workers import bytes_per_voxel
    from bigpaint.painters import load_checkpoint

    painter, _ = load_checkpoint(plan.checkpoint.path)
    if budget is not None:
        check_memory_budget(plan, budget, bytes_per_voxel(painter))


def register(group: click.Group) -> None:
    """Add ``paint`` to the ``bigpaint`` command group."""
    group.add_command(paint)
