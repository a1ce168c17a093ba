"""Cluster factory: configs, the SLURM job script, existing schedulers.

The SLURM round trips with stand-in ``sbatch``/``squeue``/``scancel`` are in
``tests/deploy/test_slurm.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bigpaint.cluster import connect, job_script, make_cluster
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
