"""Options shared by the subcommands that compute: which cluster to run on, and the
parsers of list-valued options (chunks, comma-separated or ranged numbers)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import click

from bigpaint.config import ClusterConfig, LocalClusterConfig, load_config
from bigpaint.errors import ConfigError

__all__ = ["cluster_options", "open_cluster", "parse_chunks", "parse_floats", "record_options"]


def cluster_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--cluster FILE`` and ``--workers N`` to a command."""
    func = click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Number of local worker processes (overrides the cluster file's n_workers).",
    )(func)
    func = click.option(
        "--cluster",
        "cluster_file",
        type=click.Path(dir_okay=False),
        default=None,
        help="YAML file with a 'cluster:' section (local, slurm, local-cuda or scheduler). Default: local.",
    )(func)
    return func


def snapshot_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--ptype`` and ``--length-unit``, the reader options of a particle snapshot."""
    func = click.option(
        "--length-unit",
        type=click.Choice(["kpc/h", "Mpc/h"], case_sensitive=False),
        default=None,
        help="Gadget length unit (default: from the snapshot, else kpc/h).",
    )(func)
    func = click.option(
        "--ptype",
        type=click.IntRange(min=0),
        default=1,
        show_default=True,
        help="Gadget/SWIFT particle type.",
    )(func)
    return func


def record_options(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--redshift``, ``--cosmology`` (parsed by ``bigpaint.cli.deposit.parse_cosmology``)
    and ``--overwrite`` to a command that records physics; ``default`` names where the
    redshift comes from when not given (e.g. "the snapshot's")."""

    def add(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option("--overwrite", is_flag=True, help="Replace an existing output.")(func)
        func = click.option(
            "--cosmology",
            default=None,
            metavar="PARAMS",
            help="Cosmology recorded: all of Omega_m=..,Omega_b=..,h=..,n_s=..,sigma_8=..",
        )(func)
        return click.option(
            "--redshift",
            type=click.FloatRange(min=0),
            default=None,
            help=f"Redshift recorded (default: {default}).",
        )(func)

    return add


def cluster_config(cluster_file: str | None, workers: int | None) -> ClusterConfig:
    """The cluster config from ``--cluster``/``--workers``."""
    from pydantic import BaseModel, ConfigDict, Field

    class _File(BaseModel):
        model_config = ConfigDict(extra="forbid")
        cluster: ClusterConfig = Field(default_factory=LocalClusterConfig)

    if cluster_file is None:
        return LocalClusterConfig(n_workers=workers)
    overrides = {"cluster.n_workers": workers} if workers else None
    cfg = load_config(_File, cluster_file, overrides).cluster
    if workers and not isinstance(cfg, LocalClusterConfig):
        raise ConfigError(
            "--workers applies to local clusters; set jobs/processes in the cluster file"
        )
    return cfg


@contextlib.contextmanager
def open_cluster(
    cluster_file: str | None,
    workers: int | None,
    *,
    outputs: Mapping[str, str | None] | None = None,
    inputs: Mapping[str, str | None] | None = None,
) -> Iterator[Any]:
    """Connect a client to the configured cluster for the duration of a command.

    ``outputs`` (and the ``inputs`` they must stay apart from) are guarded before the
    cluster starts (:func:`bigpaint.outputs.writing`): a second writer of the same output is
    refused without starting workers.
    """
    from bigpaint.cluster import connect
    from bigpaint.outputs import writing

    cfg = cluster_config(cluster_file, workers)
    with writing(outputs or {}, inputs or {}), connect(cfg) as client:
        yield client


def parse_chunks(text: str | None) -> tuple[int, ...] | None:
    """``"64"`` or ``"64,64,32"`` to a tuple of ints."""
    if text is None:
        return None
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--chunks must be an integer or three comma-separated integers, got {text!r}"
        ) from None
    if len(vals) not in (1, 3) or any(v <= 0 for v in vals):
        raise ConfigError(f"--chunks must be one or three positive integers, got {text!r}")
    return vals * 3 if len(vals) == 1 else vals


def parse_floats(text: str | None, what: str) -> list[float] | None:
    """``"0.1,0.2"`` or ``"start:stop:count"`` (inclusive linspace) to floats."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            import numpy as np

            return [float(v) for v in np.linspace(float(start), float(stop), int(count))]
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"{what} must be comma-separated numbers or start:stop:count, got {text!r}"
        ) from None
