"""Cluster factory: configs, the SLURM job script, and a real SLURM round trip with stand-ins.

The stand-in ``sbatch`` copies the job script and starts it as a local process in its own
session (so a real dask worker from the script joins the scheduler), ``squeue`` lists the
jobs still alive, and ``scancel`` kills a job's process group.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from bigpaint.cluster import connect, job_script, make_cluster
from bigpaint.config import (
    LocalClusterConfig,
    LocalCudaClusterConfig,
    SlurmClusterConfig,
    load_config,
    parse_config,
)
from bigpaint.errors import ConfigError, MissingDependencyError

SBATCH = r"""#!/usr/bin/env bash
# stand-in sbatch: run the job script as a local process
set -eu
dir="$FAKE_SLURM_DIR"
id=$(( $(ls "$dir" | grep -c '\.sh$' || true) + 1000 ))
cp "$1" "$dir/job-$id.sh"
echo "$@" > "$dir/job-$id.args"
setsid bash "$dir/job-$id.sh" > "$dir/job-$id.out" 2>&1 < /dev/null &
echo $! > "$dir/job-$id.pid"
echo "Submitted batch job $id"
"""
SQUEUE = r"""#!/usr/bin/env bash
# stand-in squeue: one line per job whose process is alive
dir="$FAKE_SLURM_DIR"
echo "JOBID STATE"
for f in "$dir"/job-*.pid; do
  [ -e "$f" ] || continue
  id=$(basename "$f" .pid); id=${id#job-}
  kill -0 "$(cat "$f")" 2>/dev/null && echo "$id RUNNING"
done
exit 0
"""
SCANCEL = r"""#!/usr/bin/env bash
# stand-in scancel: kill the job's whole process group
dir="$FAKE_SLURM_DIR"
for id in "$@"; do
  pid=$(cat "$dir/job-$id.pid" 2>/dev/null) || continue
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
done
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir, jobs = tmp_path / "bin", tmp_path / "jobs"
    bin_dir.mkdir()
    jobs.mkdir()
    for name, text in (("sbatch", SBATCH), ("squeue", SQUEUE), ("scancel", SCANCEL)):
        p = bin_dir / name
        p.write_text(text)
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(jobs))
    return jobs


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


def test_slurm_round_trip_with_stand_in_scheduler(fake_slurm):
    cfg = parse_config(SlurmClusterConfig, SLURM)
    with connect(cfg, timeout=120) as client:
        assert len(client.scheduler_info()["workers"]) == 1
        out = subprocess.run(["squeue"], capture_output=True, text=True, check=True).stdout
        assert "RUNNING" in out
        import dask.array as da

        x = da.arange(1000, chunks=100)
        assert int(client.compute(x.sum()).result()) == 499500
        job = next(fake_slurm.glob("job-*.sh")).read_text()
        assert "#SBATCH --mem=3G" in job and "distributed.cli.dask_worker" in job
    # closing the cluster ran scancel: the job process is gone
    import time

    for _ in range(50):
        out = subprocess.run(["squeue"], capture_output=True, text=True, check=True).stdout
        if "RUNNING" not in out:
            break
        time.sleep(0.2)
    assert "RUNNING" not in out


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
