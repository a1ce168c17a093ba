"""Cluster factory: configs, the SLURM job script, existing schedulers.

The SLURM round trips are in ``tests/deploy/``: on a real single-node SLURM
(``test_real_slurm.py``) and, for GPU recipes, under stand-in commands (``test_slurm.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bigpaint.cluster import connect, job_script, make_cluster, slurm_start_message
from bigpaint.config import (
    LocalClusterConfig,
    LocalCudaClusterConfig,
    SchedulerClusterConfig,
    SlurmClusterConfig,
    load_config,
    parse_config,
)
from bigpaint.errors import ConfigError, MissingDependencyError

SLURM = {
    "kind": "slurm",
    "cores": 2,
    "processes": 1,
    "memory": "3GiB",
    "walltime": "02:30:00",
    "queue": "gpu-short",
    "account": "cosmo42",
    "job_extra_directives": ["--gres=gpu:1"],
    "job_script_prologue": ["export OMP_NUM_THREADS=1"],
    "interface": "lo",
    "local_directory": "/tmp",
    "jobs": 1,
}


def test_job_script_has_resources():
    script = job_script(parse_config(SlurmClusterConfig, SLURM))
    assert "#SBATCH --mem=3G" in script
    assert "#SBATCH --cpus-per-task=2" in script
    assert "#SBATCH -t 02:30:00" in script
    assert "#SBATCH -p gpu-short" in script
    assert "#SBATCH -A cosmo42" in script
    assert "#SBATCH --gres=gpu:1" in script
    assert "export OMP_NUM_THREADS=1" in script
    assert "--nthreads 2" in script and "--memory-limit 3.00GiB" in script
    assert "--local-directory /tmp" in script


def test_local_cluster_from_config():
    cfg = LocalClusterConfig(n_workers=1, threads_per_worker=1, memory_limit="1GiB")
    with connect(cfg) as client:
        info = client.scheduler_info()["workers"]
        assert len(info) == 1
        assert next(iter(info.values()))["memory_limit"] == 2**30


def test_local_cuda_without_dask_cuda_is_a_clear_error():
    try:
        import dask_cuda  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"pip install 'bigpaint\[gpu\]'"):
            make_cluster(LocalCudaClusterConfig(kind="local-cuda"))
    else:  # pragma: no cover - GPU machines
        pytest.skip("dask-cuda is installed here; the missing-dependency path cannot be shown")


def test_local_cuda_workers_advertise_one_gpu_each(monkeypatch):
    import sys
    import types

    seen = {}
    fake = types.ModuleType("dask_cuda")
    fake.LocalCUDACluster = lambda **kw: seen.update(kw) or "cluster"
    monkeypatch.setitem(sys.modules, "dask_cuda", fake)
    assert make_cluster(LocalCudaClusterConfig(kind="local-cuda")) == "cluster"
    assert seen["resources"] == {"GPU": 1}


def test_config_typo_names_key_and_suggestion(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("cluster:\n  kind: local\n  n_wokers: 2\n")
    from bigpaint.cli._common import cluster_config

    with pytest.raises(
        ConfigError, match=r"unknown key 'cluster.n_wokers' \(did you mean 'n_workers'\?\)"
    ):
        cluster_config(str(p), None)
    p.write_text("cluster:\n  kind: pbs\n")
    with pytest.raises(ConfigError, match="kind must be one of"):
        cluster_config(str(p), None)
    p.write_text("cluster:\n  kind: slurm\n  cores: 0\n  memory: 1GB\n")
    with pytest.raises(ConfigError, match="cores"):
        cluster_config(str(p), None)
    p.write_text("cluster: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        cluster_config(str(p), None)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(SlurmClusterConfig, tmp_path / "missing.yaml")


def test_deploy_examples_parse():
    root = Path(__file__).resolve().parents[1]
    from bigpaint.cli._common import cluster_config

    cfg = cluster_config(str(root / "deploy" / "cluster-slurm.yaml"), None)
    assert isinstance(cfg, SlurmClusterConfig)
    for f in (root / "configs").glob("cluster-*.yaml"):
        cluster_config(str(f), None)
    text = (root / "deploy" / "bigpaint-batch.sbatch").read_text()
    assert "#SBATCH" in text and "bigpaint" in text


def test_existing_scheduler_by_file_and_address(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        info = tmp_path / "scheduler.json"
        info.write_text(json.dumps({"address": cluster.scheduler_address}))
        for cfg in (
            SchedulerClusterConfig(kind="scheduler", scheduler_file=str(info)),
            SchedulerClusterConfig(kind="scheduler", address=cluster.scheduler_address),
        ):
            with connect(cfg, timeout=30) as client:
                assert client.submit(sum, [1, 2, 3]).result() == 6
        # connecting and leaving does not stop the scheduler or its workers
        assert len(cluster.scheduler_info["workers"]) == 1


def test_existing_scheduler_errors(tmp_path):
    from bigpaint.cli._common import cluster_config

    p = tmp_path / "c.yaml"
    p.write_text("cluster:\n  kind: scheduler\n")
    with pytest.raises(ConfigError, match="exactly one of scheduler_file or address"):
        cluster_config(str(p), None)
    p.write_text("cluster:\n  kind: scheduler\n  scheduler_file: a.json\n  address: tcp://x:1\n")
    with pytest.raises(ConfigError, match="exactly one of scheduler_file or address"):
        cluster_config(str(p), None)
    missing = SchedulerClusterConfig(kind="scheduler", scheduler_file=str(tmp_path / "no.json"))
    with pytest.raises(ConfigError, match=r"no.json does not exist; start the scheduler"):
        with connect(missing):
            pass
    with pytest.raises(ConfigError, match="starts no cluster"):
        make_cluster(missing)


def test_busy_dashboard_port_gives_no_warning():
    """Two runs on one machine: the second's dashboard moves to a free port, silently (the
    multi-line warning would break the CLI's one-line output)."""
    import socket
    import warnings

    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 8787))
        sock.listen()
    except OSError:  # another process already holds it: the situation under test
        pass
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=r"Port \d+ is already in use")
            cfg = LocalClusterConfig(n_workers=1, processes=False, memory_limit="1GiB")
            with connect(cfg) as client:
                assert client.submit(sum, [1, 2]).result() == 3
    finally:
        sock.close()


def test_slurm_start_message_names_states_reasons_and_the_fix():
    cfg = parse_config(SlurmClusterConfig, {**SLURM, "log_directory": "logs"})
    sched = "tcp://10.0.0.1:8786"

    def msg(states, waited=300.0):
        return slurm_start_message(states, waited, cfg, sched)

    assert msg({"7": ("PENDING", "Resources"), "8": ("PENDING", "Priority")}) == (
        "0 of 2 worker jobs running after 300 s: 2 PENDING (Priority, Resources); the "
        "partition has no room for them: ask for fewer cores or memory per job (now cores 2, "
        "memory 3GiB, queue gpu-short), or raise start_timeout to wait longer in the queue"
    )
    assert msg({"7": ("PENDING", "PartitionTimeLimit")}).endswith(
        "1 PENDING (PartitionTimeLimit); 'scontrol show job 7' says what the job lacks (check "
        "queue, account and limits in the cluster file)"
    )
    running = msg({"7": ("RUNNING", "None"), "8": ("PENDING", "Resources")}, waited=12.4)
    assert running.startswith("1 of 2 worker jobs running after 12 s: 1 RUNNING, 1 PENDING")
    assert f"no worker joined the scheduler at {sched}" in running and "interface" in running
    assert msg({"7": ("FAILED", "NonZeroExitCode"), "8": ("GONE", "None")}) == (
        "worker jobs ended before any worker joined (1 FAILED (NonZeroExitCode), 1 GONE); "
        "read their logs in logs"
    )
    assert msg({}).startswith("no worker job was submitted within 300 s")
    unknown = msg({"7": ("UNKNOWN", "squeue: slurm_load_jobs error: Socket timed out")})
    assert unknown.startswith("0 of 1 worker jobs running after 300 s: 1 UNKNOWN (squeue: ")
    assert "no room" not in unknown and "'scontrol show job 7'" in unknown


def test_slurm_start_timeout_and_adapt_bounds_are_checked(tmp_path):
    from bigpaint.cli._common import cluster_config

    p = tmp_path / "c.yaml"
    base = "cluster:\n  kind: slurm\n  cores: 1\n  memory: 1GiB\n"
    p.write_text(base + "  start_timeout: 20\n")
    cfg = cluster_config(str(p), None)
    assert isinstance(cfg, SlurmClusterConfig) and cfg.start_timeout == 20
    assert "start_timeout" not in job_script(cfg)  # bigpaint's, not dask-jobqueue's
    p.write_text(base + "  start_timeout: 0\n")
    with pytest.raises(ConfigError, match="start_timeout: Input should be greater than 0"):
        cluster_config(str(p), None)
    p.write_text(base + "  adapt: {minimum_jobs: 0, maximum_jobs: 4}\n")
    with pytest.raises(ConfigError, match=r"minimum_jobs 0 leaves no worker .* at least 1"):
        cluster_config(str(p), None)
    p.write_text(base + "  adapt: {minimum_jobs: 3, maximum_jobs: 2}\n")
    with pytest.raises(ConfigError, match="maximum_jobs 2 is below minimum_jobs 3"):
        cluster_config(str(p), None)
