"""``bigpaint run CONFIG``: a whole pipeline from one YAML, stage by stage, resumable.

Thin: reads :class:`bigpaint.pipeline.PipelineConfig` (flags override ``out`` and the
cluster) and calls :func:`bigpaint.pipeline.run_pipeline`. Running it again skips finished
stages and resumes a killed one.
"""

from __future__ import annotations

from typing import Any

import click

from bigpaint.cli._common import cluster_options

__all__ = ["register", "resolve_cluster"]


def resolve_cluster(cfg: Any, cluster_file: str | None, workers: int | None) -> Any:
    """The cluster of a run: ``--cluster FILE`` replaces the config's section and
    ``--workers N`` sets the local worker count."""
    from bigpaint.cli._common import cluster_config
    from bigpaint.config import LocalClusterConfig
    from bigpaint.errors import ConfigError

    if cluster_file is not None:
        return cluster_config(cluster_file, workers)
    if workers is None:
        return cfg.cluster
    if not isinstance(cfg.cluster, LocalClusterConfig):
        raise ConfigError(
            "--workers applies to local clusters; set jobs/processes in the config's cluster"
        )
    return cfg.cluster.model_copy(update={"n_workers": workers})


def execute(cfg: Any, source: str, *, overwrite: bool, dry_run: bool, cluster: Any) -> None:
    """Plan (``dry_run``) or run a validated pipeline and print where its report is."""
    from bigpaint.pipeline import run_pipeline, stage_status

    if dry_run:
        for name, kind, status in stage_status(cfg, source=source):
            click.echo(f"{name} ({kind}): {status}")
        return
    records = run_pipeline(cfg, source=source, overwrite=overwrite, cluster=cluster)
    ran = sum(not r["skipped"] for r in records)
    reports = [r for r in records if r["kind"] == "report"]
    where = f"; report {reports[-1]['dir']}/index.html" if reports else ""
    click.echo(f"pipeline done: {ran} stages run, {len(records) - ran} skipped{where}")


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", default=None, help="Run directory (overrides the config's 'out').")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Redo stages whose folder holds results of another configuration.",
)
@click.option("--dry-run", is_flag=True, help="Check the config and print each stage's status.")
@cluster_options
def run(
    config: str,
    out: str | None,
    overwrite: bool,
    dry_run: bool,
    cluster_file: str | None,
    workers: int | None,
) -> None:
    """Run the pipeline CONFIG (configs/pipeline-*.yaml): every stage in order, skipping
    finished ones; re-run the same command to resume."""
    from bigpaint.pipeline import load_pipeline

    cfg = load_pipeline(config, {"out": out})
    cluster = resolve_cluster(cfg, cluster_file, workers)
    execute(cfg, config, overwrite=overwrite, dry_run=dry_run, cluster=cluster)


def register(group: click.Group) -> None:
    """Add ``run`` to the ``bigpaint`` command group."""
    group.add_command(run)
