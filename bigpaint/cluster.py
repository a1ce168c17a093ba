"""A Dask cluster and client from one config section: local, slurm or local-cuda.

``local`` is a ``distributed.LocalCluster``; ``slurm`` submits worker jobs through
``dask_jobqueue.SLURMCluster`` (the scheduler runs where bigpaint runs: a login node or,
better, a batch job, see ``deploy/``); ``local-cuda`` starts one worker per GPU with
``dask_cuda.LocalCUDACluster`` and fails with the install command when dask-cuda is missing;
``scheduler`` connects to a scheduler that a batch script already started (its workers, e.g.
``dask cuda worker`` on every node of an allocation, are that script's business).

SLURM worker jobs can wait in the queue for ever (a partition with no room for them, e.g. a
driver job that holds the node they need), so :func:`connect` waits for the first worker at
most the cluster file's ``start_timeout`` and then fails with one line built from ``squeue``:
how many worker jobs run, the others' states and reasons, and what to change. It polls the
jobs meanwhile, so worker jobs that die at once fail the command at once. A SIGTERM while a
SLURM cluster is up (``scancel`` of the driver job, its wall time) becomes a
``KeyboardInterrupt``: the cluster then closes, which cancels its worker jobs, instead of
leaving them to hold nodes until their death timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from bigpaint.config import (
    ClusterConfig,
    LocalClusterConfig,
    LocalCudaClusterConfig,
    SchedulerClusterConfig,
    SlurmClusterConfig,
)
from bigpaint.errors import ConfigError, MissingDependencyError

__all__ = [
    "connect",
    "job_script",
    "make_cluster",
    "slurm_start_message",
    "task_memory",
    "worker_memory",
]

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


def _recording_job_cls() -> Any:
    """A SLURM job class that keeps what ``sbatch`` said when it refused a job (its
    ``refused`` list), which dask-jobqueue only logs as a traceback."""
    from dask_jobqueue.slurm import SLURMJob
    from distributed.core import Status

    refused: list[str] = []

    async def start(self: Any) -> None:
        try:
            await SLURMJob.start(self)
        except RuntimeError as exc:
            said = [ln.strip() for ln in str(exc).splitlines() if ln.startswith("sbatch:")]
            refused.append("; ".join(said) or str(exc).splitlines()[0])
            self.status = Status.failed  # else closing the cluster asserts on it
            raise

    return type("BigpaintSLURMJob", (SLURMJob,), {"start": start, "refused": refused})


def _slurm_cluster(cfg: SlurmClusterConfig) -> Any:
    from dask_jobqueue import SLURMCluster

    try:
        with _any_dashboard_port():
            return SLURMCluster(job_cls=_recording_job_cls(), **_slurm_kwargs(cfg))
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
    cfg: ClusterConfig | None = None, *, wait_for_workers: int = 1, timeout: float | None = None
) -> Iterator[Any]:
    """Start the configured cluster, yield a connected ``distributed.Client``, shut down after.

    Parameters
    ----------
    cfg : cluster config, optional
    wait_for_workers : int
        Block until this many workers have joined (SLURM jobs may queue).
    timeout : float, optional
        Seconds to wait for them before failing (a one-line :class:`ConfigError`; for SLURM
        it names the worker jobs' states). Default: the SLURM cluster's ``start_timeout``,
        else 300.
    """
    from distributed import Client

    if isinstance(cfg, SchedulerClusterConfig):
        with _existing_scheduler(cfg, timeout or 300) as client:
            _log_dashboard(client, "scheduler")
            _wait(client, cfg.wait_for_workers, timeout or 300)
            yield client
        return
    if isinstance(cfg, SlurmClusterConfig):
        with _sigterm_interrupts():
            cluster = make_cluster(cfg)
            try:
                with Client(cluster) as client:
                    _log_dashboard(client, cfg.kind)
                    _wait_for_jobs(client, cluster, cfg, wait_for_workers, timeout)
                    yield client
            finally:
                cluster.close()
        return
    cluster = make_cluster(cfg)
    try:
        with Client(cluster) as client:
            _log_dashboard(client, (cfg or LocalClusterConfig()).kind)
            _wait(client, wait_for_workers, timeout or 300)
            yield client
    finally:
        cluster.close()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` in the main thread, once, so that the cluster's
    ``close`` (which cancels its worker jobs) runs; a second SIGTERM during it is ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        logger.warning("SIGTERM: cancelling the worker jobs")
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


# squeue states of a job that will never run again
_ENDED = frozenset(
    {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL"}
    | {"OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "GONE"}
)
# pending reasons that mean "waiting for room": smaller jobs, or patience, get them started
_WAITING_FOR_ROOM = frozenset({"Resources", "Priority", "None"})
_POLL_S = 2.0


def _wait_for_jobs(
    client: Any, cluster: Any, cfg: SlurmClusterConfig, n: int, timeout: float | None
) -> None:
    """Wait for ``n`` workers of a SLURM cluster, polling its jobs' states meanwhile."""
    if not n:
        return
    timeout = cfg.start_timeout if timeout is None else timeout
    logger.debug("waiting for %d worker(s), at most %.0f s", n, timeout)
    start = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - start)
        try:
            client.wait_for_workers(n, timeout=max(0.1, min(_POLL_S, left)))
            return
        except TimeoutError:
            pass
        refused = getattr(cluster.job_cls, "refused", [])
        if refused:
            raise ConfigError(
                f"the worker job was refused: {refused[-1]}; ask for what a node of the "
                f"partition has (now {_asked(cfg)})"
            )
        states = _job_states(cluster)
        ended = bool(states) and all(s in _ENDED for s, _ in states.values())
        if ended or time.monotonic() - start >= timeout:
            waited = time.monotonic() - start
            raise ConfigError(
                slurm_start_message(states, waited, cfg, client.scheduler.address)
            ) from None


def _job_states(cluster: Any) -> dict[str, tuple[str, str]]:
    """``{job id: (state, reason)}`` of the cluster's submitted worker jobs, from squeue
    (``GONE`` for a job squeue no longer knows)."""
    ids = [j.job_id for j in list(cluster.workers.values()) if getattr(j, "job_id", None)]
    if not ids:
        return {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {j: ("UNKNOWN", f"squeue failed: {exc}") for j in ids}
    if out.returncode != 0:  # e.g. the controller is busy: say so, never guess "ended"
        said = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        return {j: ("UNKNOWN", f"squeue: {said}") for j in ids}
    states: dict[str, tuple[str, str]] = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0] in ids:
            states[parts[0]] = (parts[1], parts[2])
    return {j: states.get(j, ("GONE", "None")) for j in ids}


def slurm_start_message(
    states: Mapping[str, tuple[str, str]], waited: float, cfg: SlurmClusterConfig, scheduler: str
) -> str:
    """The one line that says why no worker joined a SLURM cluster, and what to change.

    Parameters
    ----------
    states : mapping
        ``{job id: (state, reason)}`` as ``squeue -o '%i|%T|%r'`` prints them.
    waited : float
        Seconds waited.
    cfg : SlurmClusterConfig
    scheduler : str
        The scheduler's address, which the workers must reach.
    """
    logs = cfg.log_directory or "the directory bigpaint was started in"
    if not states:
        return (
            f"no worker job was submitted within {waited:.0f} s; run the job script by hand "
            "(bigpaint.cluster.job_script) with sbatch to see why it is refused"
        )
    counts = Counter(state for state, _ in states.values())
    reasons: dict[str, list[str]] = {}
    for state, reason in states.values():
        seen = reasons.setdefault(state, [])
        if reason not in ("", "None", *seen):
            seen.append(reason)
    summary = ", ".join(
        f"{count} {state}" + (f" ({', '.join(sorted(reasons[state]))})" if reasons[state] else "")
        for state, count in counts.most_common()
    )
    running = counts["RUNNING"]
    head = f"{running} of {len(states)} worker jobs running after {waited:.0f} s: {summary}"
    if all(state in _ENDED for state in counts):
        return f"worker jobs ended before any worker joined ({summary}); read their logs in {logs}"
    if running:
        return (
            f"{head}, but no worker joined the scheduler at {scheduler}; read the worker logs "
            f"in {logs}, and set interface to a network the nodes share"
        )
    if counts["PENDING"] and set(reasons["PENDING"]) <= _WAITING_FOR_ROOM:
        return (
            f"{head}; the partition has no room for them: ask for fewer cores or memory per "
            f"job (now {_asked(cfg)}), or raise start_timeout to wait longer in the queue"
        )
    return (
        f"{head}; 'scontrol show job {next(iter(states))}' says what the job lacks (check "
        "queue, account and limits in the cluster file)"
    )


def _asked(cfg: SlurmClusterConfig) -> str:
    queue = f", queue {cfg.queue}" if cfg.queue else ""
    return f"cores {cfg.cores}, memory {cfg.memory}{queue}"


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
