"""A Dask cluster and client from one config section: local, slurm or local-cuda.

``local`` is a ``distributed.LocalCluster``; ``slurm`` submits worker jobs through
``dask_jobqueue.SLURMCluster`` (the scheduler runs where bigpaint runs: a login node or,
better, a batch job, see ``deploy/``); ``local-cuda`` starts one worker per GPU with
``dask_cuda.LocalCUDACluster`` and fails with the install command when dask-cuda is missing;
``scheduler`` connects to a scheduler that a batch script already started (its workers, e.g.
``dask cuda worker`` on every node of an allocation, are that script's business).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

from bigpaint.config import (
    ClusterConfig,
    LocalClusterConfig,
    LocalCudaClusterConfig,
    SchedulerClusterConfig,
    SlurmClusterConfig,
)
from bigpaint.errors import ConfigError, MissingDependencyError

__all__ = ["connect", "job_script", "make_cluster", "task_memory", "worker_memory"]

logger = logging.getLogger(__name__)


def _slurm_kwargs(cfg: SlurmClusterConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "cores": cfg.cores,
        "memory": cfg.memory,
        "processes": cfg.processes,
        "walltime": cfg.walltime,
        "queue": cfg.queue,
        "account": cfg.account,
        "job_name": cfg.job_name,
        "job_extra_directives": list(cfg.job_extra_directives),
        "job_script_prologue": list(cfg.job_script_prologue),
        "worker_extra_args": list(cfg.worker_extra_args),
        "interface": cfg.interface,
        "local_directory": cfg.local_directory,
        "log_directory": cfg.log_directory,
        "scheduler_options": dict(cfg.scheduler_options),
    }
    if cfg.python:
        kwargs["python"] = cfg.python
    return kwargs


@contextlib.contextmanager
def _any_dashboard_port() -> Iterator[None]:
    """When another run holds the default dashboard port, distributed serves on a free one
    and warns in several lines, which would break the CLI's one-line output: keep it quiet."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
        yield


def _slurm_cluster(cfg: SlurmClusterConfig) -> Any:
    from dask_jobqueue import SLURMCluster

    try:
        with _any_dashboard_port():
            return SLURMCluster(**_slurm_kwargs(cfg))
    except ValueError as exc:  # e.g. an interface that does not exist on this host
        raise ConfigError(f"cluster (slurm): {exc}") from None


def job_script(cfg: SlurmClusterConfig) -> str:
    """The batch script one SLURM worker job will run (for review before submitting)."""
    cluster = _slurm_cluster(cfg)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def make_cluster(cfg: ClusterConfig | None = None) -> Any:
    """Start the cluster a config describes (workers requested, not awaited).

    Parameters
    ----------
    cfg : LocalClusterConfig, SlurmClusterConfig or LocalCudaClusterConfig
        Default: a LocalCluster with one single-threaded worker process per core.
    """
    cfg = cfg or LocalClusterConfig()
    if isinstance(cfg, LocalClusterConfig):
        from distributed import LocalCluster

        n = cfg.n_workers or max(1, (os.cpu_count() or 1) // cfg.threads_per_worker)
        with _any_dashboard_port():
            return LocalCluster(
                n_workers=n,
                threads_per_worker=cfg.threads_per_worker,
                processes=cfg.processes,
                memory_limit=cfg.memory_limit,
                local_directory=cfg.local_directory,
                dashboard_address=cfg.dashboard_address,
                silence_logs=getattr(logging, cfg.worker_log_level.upper()),
            )
    if isinstance(cfg, SlurmClusterConfig):
        cluster = _slurm_cluster(cfg)
        if cfg.adapt is not None:
            cluster.adapt(minimum_jobs=cfg.adapt.minimum_jobs, maximum_jobs=cfg.adapt.maximum_jobs)
        elif cfg.jobs:
            cluster.scale(jobs=cfg.jobs)
        return cluster
    if isinstance(cfg, LocalCudaClusterConfig):
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise MissingDependencyError(
                "cluster kind 'local-cuda' needs dask-cuda: pip install 'bigpaint[gpu]' "
                "(on a machine with CUDA GPUs), or use kind 'local'"
            ) from None
        kwargs = cfg.model_dump(exclude={"kind"}, exclude_none=True)
        # one worker per GPU advertises it, so GPU-annotated tasks (painting) run one per GPU
        kwargs["resources"] = {"GPU": 1}
        return LocalCUDACluster(**kwargs)
    if isinstance(cfg, SchedulerClusterConfig):
        raise ConfigError(
            "cluster kind 'scheduler' connects to a running scheduler and starts no cluster; "
            "use bigpaint.cluster.connect"
        )
    raise ConfigError(f"unknown cluster config {cfg!r}")  # pragma: no cover - pydantic guards


@contextlib.contextmanager
def connect(
    cfg: ClusterConfig | None = None, *, wait_for_workers: int = 1, timeout: float = 300
) -> Iterator[Any]:
    """Start the configured cluster, yield a connected ``distributed.Client``, shut down after.

    Parameters
    ----------
    cfg : cluster config, optional
    wait_for_workers : int
        Block until this many workers have joined (SLURM jobs may queue).
    timeout : float
        Seconds to wait for them before failing.
    """
    from distributed import Client

    if isinstance(cfg, SchedulerClusterConfig):
        with _existing_scheduler(cfg, timeout) as client:
            _log_dashboard(client, "scheduler")
            _wait(client, cfg.wait_for_workers, timeout)
            yield client
        return
    cluster = make_cluster(cfg)
    try:
        with Client(cluster) as client:
            _log_dashboard(client, (cfg or LocalClusterConfig()).kind)
            _wait(client, wait_for_workers, timeout)
            yield client
    finally:
        cluster.close()


def _log_dashboard(client: Any, kind: str) -> None:
    """Log where the cluster's dashboard is (INFO), before waiting for workers, so that it
    can be watched while SLURM jobs queue."""
    try:
        link = client.dashboard_link
    except (KeyError, AttributeError):  # a scheduler without the dashboard service
        link = ""
    logger.debug("%s cluster: scheduler %s", kind, client.scheduler.address)
    if not link:
        logger.info("Dask %s cluster started; its scheduler serves no dashboard", kind)
        return
    where = "" if kind.startswith("local") else " (from your machine: an SSH tunnel to its host)"
    logger.info("Dask %s cluster started; dashboard %s%s", kind, link, where)


def _wait(client: Any, n: int, timeout: float) -> None:
    if not n:
        return
    logger.debug("waiting for %d worker(s), at most %.0f s", n, timeout)
    try:
        client.wait_for_workers(n, timeout=timeout)
    except TimeoutError:
        raise ConfigError(
            f"{n} worker(s) did not join within {timeout:.0f} s; check the queue (squeue) and "
            "the worker logs, or raise the timeout"
        ) from None


def _existing_scheduler(cfg: SchedulerClusterConfig, timeout: float) -> Any:
    """A client of a running scheduler (closed after use; the scheduler keeps running)."""
    from distributed import Client

    if cfg.scheduler_file is not None and not os.path.isfile(cfg.scheduler_file):
        raise ConfigError(
            f"scheduler file {cfg.scheduler_file} does not exist; start the scheduler with "
            "'dask scheduler --scheduler-file FILE' first (see deploy/bigpaint-gpu-nodes.sbatch)"
        )
    try:
        if cfg.scheduler_file is not None:
            return Client(scheduler_file=cfg.scheduler_file, timeout=timeout)
        return Client(cfg.address, timeout=timeout)
    except OSError as exc:
        where = cfg.scheduler_file or cfg.address
        raise ConfigError(
            f"cannot reach the scheduler of {where} ({exc}); is it still running?"
        ) from None


def worker_memory(cfg: ClusterConfig | None = None) -> int | None:
    """Memory in bytes one worker of the configured cluster may use, before it starts.

    ``local`` and ``local-cuda``: the memory limit, ``auto`` splitting this machine's memory
    over the workers as Dask does, 0 (no limit) the whole machine; ``slurm``: the job's memory
    over its worker processes; ``scheduler``: None (its workers are not known in advance).
    """
    import psutil

    from bigpaint.config import parse_size

    total = int(psutil.virtual_memory().total)
    cfg = cfg or LocalClusterConfig()
    if isinstance(cfg, SchedulerClusterConfig):
        return None
    if isinstance(cfg, SlurmClusterConfig):
        return parse_size(cfg.memory, "memory") // cfg.processes
    limit = cfg.memory_limit
    if isinstance(cfg, LocalClusterConfig):
        n = cfg.n_workers or max(1, (os.cpu_count() or 1) // cfg.threads_per_worker)
    else:  # one worker per GPU
        visible = cfg.CUDA_VISIBLE_DEVICES
        n = len(visible.split(",")) if visible else 1
    if limit == "auto":
        return max(1, total // n)
    if limit == 0:
        return total
    return min(total, parse_size(limit, "memory_limit"))


def task_memory() -> int:
    """Memory in bytes one task may use here and now: the smallest worker memory limit of
    the current Dask client's workers, else (no client, or no limits) this machine's memory."""
    import psutil

    total = int(psutil.virtual_memory().total)
    try:
        from distributed import get_client

        workers = get_client().scheduler_info()["workers"].values()
    except (ImportError, ValueError, KeyError):
        return total
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    limits = [m for m in limits if m > 0]
    return min(limits) if limits else total
