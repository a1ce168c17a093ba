"""The CPU recipes of ``deploy/`` on a real single-node SLURM (``real_slurm``).

slurmctld and slurmd schedule, start and cancel the jobs; dask-jobqueue submits the worker
jobs with ``sbatch``; the driver job is ``deploy/bigpaint-batch.sbatch`` as shipped. The
recipes are read from ``deploy/`` with the site facts (cores, memory, interface, directories)
replaced by what one small node has: worker jobs of one CPU and 1 GiB, the scheduler, the
workers and the dashboard on 127.0.0.1. Fields are 32³ in 4³ blocks (512 tasks), small
enough to be quick, numerous enough that a job can be killed while blocks are still being
written. What is covered: the job script sbatch receives, fixed scale, adaptive scaling up
and down, the batch driver, a worker job killed mid-run, a killed driver resumed, worker
jobs that never start (pending, refused), and the node-allocation script on one node.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import yaml

from bigpaint.chunked.apply import apply_blockwise
from bigpaint.cli._common import cluster_config
from bigpaint.cluster import connect, job_script, make_cluster
from bigpaint.config import SlurmClusterConfig
from bigpaint.context import gaussian_context
from bigpaint.errors import ConfigError
from bigpaint.field import create_field, field_info, open_field, write_array
from bigpaint.filters import smooth
from tests.deploy.conftest import ROOT
from tests.deploy.slurm import (
    SingleNodeSlurm,
    alive,
    free_port,
    node_cpus,
    node_memory_mb,
    slurm_conf,
)

pytestmark = pytest.mark.slurm

DEPLOY = ROOT / "deploy"
N = 32
BLOCK = 4
META = {"box_size": 64.0, "kind": "delta", "units": "1", "redshift": 0.0}
SIGMA_MPC = 2.0  # one voxel
TOTAL = (N // BLOCK) ** 3
WORKER = "bigpaint-worker"


def recipe(tmp: Path, **cluster: object) -> Path:
    """deploy/cluster-slurm.yaml with this node's site facts, as a cluster file in ``tmp``."""
    data = yaml.safe_load((DEPLOY / "cluster-slurm.yaml").read_text())
    data["cluster"].update(
        cores=1,
        processes=1,
        memory="1GiB",
        interface="lo",
        local_directory=str(tmp / "spill"),
        log_directory=str(tmp / "logs"),
        scheduler_options={"dashboard_address": "127.0.0.1:0"},
    )
    data["cluster"].update(cluster)
    path = tmp / "cluster.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def slurm_recipe(tmp: Path, **cluster: object) -> SlurmClusterConfig:
    cfg = cluster_config(str(recipe(tmp, **cluster)), None)
    assert isinstance(cfg, SlurmClusterConfig)
    return cfg


@pytest.fixture(scope="module")
def field_in(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The input every command here reads (none writes it)."""
    box = np.random.default_rng(5).standard_normal((N, N, N)).astype("f4")
    path = tmp_path_factory.mktemp("input") / "in.zarr"
    write_array(str(path), box, chunks=(BLOCK,) * 3, meta=META)
    return path, box


def values(path: Path) -> np.ndarray:
    ds = open_field(str(path))
    return ds[next(iter(ds.data_vars))].values


def clean_run(src: Path, tmp: Path) -> np.ndarray:
    """The same smoothing, undisturbed, in this process (local threads, no SLURM)."""
    out = tmp / "clean.zarr"
    smooth(str(src), str(out), SIGMA_MPC)
    return values(out)


def blocks_done(path: Path) -> int:
    try:
        return field_info(str(path))["blocks_done"]
    except Exception:  # not created yet, or caught between two writes of its metadata
        return 0


def worker_jobs(slurm: SingleNodeSlurm, states: tuple[str, ...] = ("RUNNING",)) -> list[str]:
    return sorted(
        (j for j, (name, state, _) in slurm.jobs().items() if name == WORKER and state in states),
        key=int,
    )


def worker_processes(scheduler: str) -> str:
    """Worker processes still connected to ``scheduler`` on this machine (pgrep lines)."""
    out = subprocess.run(["pgrep", "-af", f"dask_worker {scheduler}"], capture_output=True)
    return out.stdout.decode().strip()


def submit_driver(slurm: SingleNodeSlurm, tmp: Path, *args: str, sbatch=(), **env: str) -> str:
    return slurm.sbatch(
        *sbatch,
        str(DEPLOY / "bigpaint-batch.sbatch"),
        *args,
        cwd=tmp,
        env={"BIGPAINT_VENV": sys.prefix, "BIGPAINT_CLUSTER": str(tmp / "cluster.yaml"), **env},
    )


def driver_log(tmp: Path, job: str) -> str:
    return (tmp / f"bigpaint-driver-{job}.out").read_text()


def _normalise(script: str) -> str:
    """A job script without what differs between two clusters of one config: the
    scheduler's address and the worker's name."""
    script = re.sub(r"tcp://[\d.]+:\d+", "tcp://SCHEDULER", script)
    return re.sub(r"--name \S+", "--name NAME", script)


def test_fixed_scale_jobs_run_what_job_script_shows(real_slurm: SingleNodeSlurm, tmp_path: Path):
    """Two worker jobs: sbatch receives the script job_script(cfg) prints, the workers join
    on loopback, a chunked smoothing on them equals the whole-box one, and closing the
    cluster cancels both jobs and ends their processes."""
    from distributed import Client

    cfg = slurm_recipe(tmp_path, jobs=2)
    box = np.random.default_rng(1).standard_normal((N, N, N)).astype("f4")
    write_array(str(tmp_path / "in.zarr"), box, chunks=(6, 5, 8), meta=META)
    out = create_field(str(tmp_path / "out.zarr"), shape=box.shape, chunks=(7, 16, 9), meta=META)
    cluster = make_cluster(cfg)
    try:
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            scheduler = client.scheduler.address
            jobs = worker_jobs(real_slurm)
            assert len(jobs) == 2
            expected = _normalise(job_script(cfg))
            for job in jobs:
                received = real_slurm.batch_script(job)
                assert f" {scheduler} " in received
                assert _normalise(received) == expected
            assert "#SBATCH --cpus-per-task=1" in expected and "#SBATCH --mem=1G" in expected
            assert "#SBATCH -p compute" in expected and "--interface lo" in expected
            workers = client.scheduler_info(n_workers=-1)["workers"]
            assert scheduler.startswith("tcp://127.0.0.1:")
            assert all(w.startswith("tcp://127.0.0.1:") for w in workers)

            apply_blockwise(
                lambda b: ndi.gaussian_filter(b, 1.0, mode="wrap", truncate=4.0),
                open_field(str(tmp_path / "in.zarr")),
                out,
                gaussian_context((1.0,) * 3, 4.0),
            )
            want = ndi.gaussian_filter(box, 1.0, mode="wrap", truncate=4.0)
            np.testing.assert_allclose(values(tmp_path / "out.zarr"), want, rtol=1e-6, atol=1e-6)
    finally:
        cluster.close()
    assert real_slurm.wait_until(lambda: not worker_jobs(real_slurm, ("RUNNING", "COMPLETING")))
    assert {real_slurm.state(j) for j in jobs} == {"CANCELLED"}
    assert real_slurm.wait_until(lambda: not worker_processes(scheduler), timeout=30)


def test_adapt_scales_up_with_work_and_back_down(real_slurm: SingleNodeSlurm, tmp_path: Path):
    cfg = slurm_recipe(tmp_path, jobs=1, adapt={"minimum_jobs": 1, "maximum_jobs": 2})
    with connect(cfg) as client:
        scheduler = client.scheduler.address
        assert len(worker_jobs(real_slurm)) == 1
        futures = client.map(time.sleep, [0.25] * 60, pure=False)
        assert real_slurm.wait_until(lambda: len(worker_jobs(real_slurm)) == 2, timeout=90)
        assert real_slurm.wait_until(
            lambda: len(client.scheduler_info(n_workers=-1)["workers"]) == 2, timeout=90
        )
        client.gather(futures)
        del futures
        assert real_slurm.wait_until(lambda: len(worker_jobs(real_slurm)) == 1, timeout=90)
        assert len(worker_jobs(real_slurm, ("PENDING",))) == 0
    assert real_slurm.wait_until(lambda: not worker_jobs(real_slurm, ("RUNNING", "COMPLETING")))
    assert real_slurm.wait_until(lambda: not worker_processes(scheduler), timeout=30)


def test_driver_job_finishes_when_a_worker_job_is_killed(
    real_slurm: SingleNodeSlurm, tmp_path: Path, field_in
):
    """The batch driver as shipped, with two worker jobs; one is scancelled while blocks are
    being written. The other (on a 2-CPU node: the one that was waiting for the freed CPU)
    finishes the run, and the output is the clean run's, bit for bit."""
    src, _ = field_in
    out = tmp_path / "out.zarr"
    recipe(tmp_path, jobs=2)
    driver = submit_driver(real_slurm, tmp_path, "smooth", str(src), str(out), "--sigma-mpc", "2")
    assert real_slurm.wait_until(
        lambda: blocks_done(out) >= 16 and worker_jobs(real_slurm), timeout=120, every=0.05
    ), driver_log(tmp_path, driver)
    victim = worker_jobs(real_slurm)[0]
    real_slurm.run("scancel", victim)
    done_at_kill = blocks_done(out)
    assert done_at_kill < TOTAL, "the run ended before a worker job could be killed"

    assert real_slurm.wait(driver, timeout=180) == "COMPLETED", driver_log(tmp_path, driver)
    assert real_slurm.exit_code(driver) == 0
    assert f"wrote {out}" in driver_log(tmp_path, driver)
    assert real_slurm.state(victim) == "CANCELLED"
    assert np.array_equal(values(out), clean_run(src, tmp_path))
    # the driver cancelled its remaining worker job when the command ended
    assert real_slurm.wait_until(lambda: not worker_jobs(real_slurm, ("RUNNING", "PENDING")))


def test_killed_driver_cancels_its_workers_and_the_rerun_resumes(
    real_slurm: SingleNodeSlurm, tmp_path: Path, field_in
):
    src, _ = field_in
    out = tmp_path / "out.zarr"
    recipe(tmp_path, jobs=1)
    cmd = ("smooth", str(src), str(out), "--sigma-mpc", "2")
    first = submit_driver(real_slurm, tmp_path, *cmd)
    assert real_slurm.wait_until(lambda: blocks_done(out) >= 16, timeout=120, every=0.05)
    real_slurm.run("scancel", first)
    done_at_kill = blocks_done(out)
    assert done_at_kill < TOTAL, "the run ended before the driver could be killed"
    assert real_slurm.wait(first, timeout=60) == "CANCELLED"
    # SIGTERM reached bigpaint, which cancelled its worker job rather than leave it to its
    # death timeout
    assert real_slurm.wait_until(
        lambda: not worker_jobs(real_slurm, ("RUNNING", "PENDING", "COMPLETING")), timeout=20
    )
    assert "interrupted; re-run the same command to resume" in driver_log(tmp_path, first)
    assert not field_info(str(out))["complete"]

    again = submit_driver(real_slurm, tmp_path, *cmd)
    assert real_slurm.wait(again, timeout=180) == "COMPLETED", driver_log(tmp_path, again)
    counts = re.findall(r"smooth: (\d+)/(\d+) blocks done", driver_log(tmp_path, again))
    assert counts and int(counts[-1][1]) < TOTAL, "the rerun computed every block again"
    assert np.array_equal(values(out), clean_run(src, tmp_path))
    assert real_slurm.wait_until(lambda: not worker_jobs(real_slurm, ("RUNNING", "PENDING")))


def test_pending_worker_jobs_end_the_driver_with_their_reason(
    real_slurm: SingleNodeSlurm, tmp_path: Path, field_in
):
    """The deadlock of a driver that holds the whole node: its worker jobs can never start.
    bigpaint gives up after start_timeout with the jobs' state and reason from squeue, exits
    2 and cancels them."""
    src, _ = field_in
    out = tmp_path / "out.zarr"
    recipe(tmp_path, jobs=2, start_timeout=5)
    driver = submit_driver(
        real_slurm,
        tmp_path,
        "smooth",
        str(src),
        str(out),
        "--sigma-mpc",
        "2",
        sbatch=("--exclusive",),
    )
    t0 = time.monotonic()
    assert real_slurm.wait(driver, timeout=120) == "FAILED", driver_log(tmp_path, driver)
    assert time.monotonic() - t0 < 60
    assert real_slurm.exit_code(driver) == 2
    last = driver_log(tmp_path, driver).strip().splitlines()[-1]
    assert re.fullmatch(
        r"bigpaint: error: 0 of 2 worker jobs running after [5-9] s: 2 PENDING \((Priority, )?"
        r"Resources\); the partition has no room for them: ask for fewer cores or memory "
        r"per job \(now cores 1, memory 1GiB, queue compute\), or raise start_timeout to wait "
        r"longer in the "
        r"queue",
        last,
    ), last
    assert real_slurm.wait_until(lambda: not worker_jobs(real_slurm, ("RUNNING", "PENDING")))
    assert not out.exists() or not field_info(str(out))["complete"]


def test_refused_worker_job_fails_at_once_with_sbatchs_reason(
    real_slurm: SingleNodeSlurm, tmp_path: Path
):
    too_much = f"{real_slurm.memory_mb * 2}MiB"
    cfg = slurm_recipe(tmp_path, jobs=1, memory=too_much, start_timeout=120)
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as err:
        with connect(cfg):
            pass
    assert time.monotonic() - t0 < 30
    assert str(err.value).startswith(
        "the worker job was refused: sbatch: error: Memory specification can not be satisfied"
    )
    assert f"memory {too_much}" in str(err.value) and "\n" not in str(err.value)


def test_driver_refuses_bad_input_before_submitting_workers(
    real_slurm: SingleNodeSlurm, tmp_path: Path
):
    recipe(tmp_path, jobs=2)
    before = set(real_slurm.jobs())
    missing = str(tmp_path / "missing.zarr")
    job = submit_driver(
        real_slurm, tmp_path, "smooth", missing, str(tmp_path / "out.zarr"), "--sigma-mpc", "1"
    )
    assert real_slurm.wait(job, timeout=120) == "FAILED"
    assert real_slurm.exit_code(job) == 2
    last = driver_log(tmp_path, job).strip().splitlines()[-1]
    assert last.startswith("bigpaint: error: ") and "missing.zarr" in last
    assert set(real_slurm.jobs()) - before == {job}  # no worker job was submitted
    assert not (tmp_path / "out.zarr").exists()

    empty = submit_driver(real_slurm, tmp_path)
    assert real_slurm.wait(empty) == "FAILED" and real_slurm.exit_code(empty) == 2
    assert "usage: sbatch" in driver_log(tmp_path, empty)


def test_node_allocation_script_on_one_node(real_slurm: SingleNodeSlurm, tmp_path: Path, field_in):
    """deploy/bigpaint-gpu-nodes.sbatch on the one node there is: the scheduler and the
    command in the batch step, the workers started by srun as a job step. ``dask cuda
    worker`` needs GPUs, so the workers are the CPU command the script documents for CPU
    nodes, and the node and GPU counts are overridden on the sbatch line."""
    src, box = field_in
    out = tmp_path / "out.zarr"
    cpus = str(real_slurm.cpus)
    job = real_slurm.sbatch(
        "-N",
        "1",
        f"--cpus-per-task={cpus}",
        "--gpus-per-node=0",
        str(DEPLOY / "bigpaint-gpu-nodes.sbatch"),
        "smooth",
        str(src),
        str(out),
        "--sigma-mpc",
        str(SIGMA_MPC),
        cwd=tmp_path,
        env={
            "BIGPAINT_VENV": sys.prefix,
            "BIGPAINT_WORKER": f"dask worker --nworkers 1 --nthreads {cpus}",
            "BIGPAINT_MIN_WORKERS": "1",
            "BIGPAINT_INTERFACE": "lo",
        },
    )
    state = real_slurm.wait(job, timeout=180)
    work = tmp_path / f"bigpaint-job-{job}"
    log = (tmp_path / f"bigpaint-gpu-nodes-{job}.out").read_text()
    assert state == "COMPLETED", log + (work / "workers.log").read_text()
    assert "kind: scheduler" in (work / "cluster.yaml").read_text()
    scheduler_log = (work / "scheduler.log").read_text()
    assert re.search(r"Scheduler at: +tcp://127\.0\.0\.1:", scheduler_log)
    workers = re.findall(r"Register worker addr: (\S+)", scheduler_log)
    assert workers and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    want = ndi.gaussian_filter(box, SIGMA_MPC * N / META["box_size"], mode="wrap", truncate=4.0)
    np.testing.assert_allclose(values(out), want, rtol=1e-6, atol=1e-6)
    # the job ended its scheduler and its worker step: nothing of it is left running
    ps = subprocess.run(["pgrep", "-f", str(work)], capture_output=True, text=True)
    assert ps.stdout.strip() == ""


def test_stopping_slurm_leaves_no_process_behind(slurm_can_start: None, tmp_path: Path):
    """What the real_slurm fixture does at the end of the run, on a cluster of this test's
    own: with a job running, stop() ends munged, slurmctld, slurmd and the job's processes,
    and nothing that carries the cluster's SLURM_CONF is left."""
    slurm = SingleNodeSlurm(tmp_path / "own").start()
    try:
        daemons = slurm.daemon_pids()
        job = slurm.sbatch("--wrap", "sleep 600", cwd=tmp_path)
        assert slurm.wait_until(lambda: slurm.state(job) == "RUNNING", timeout=30)
        assert slurm.wait_until(lambda: "sleep 600" in slurm.processes().values(), timeout=30)
        running = slurm.processes()
        assert set(daemons.values()) <= set(running)
        assert any(cmd.startswith("slurmstepd") for cmd in running.values())
    finally:
        slurm.stop()
    assert slurm.processes() == {}
    assert not [pid for pid in running if alive(pid)]


def _doc_block(text: str, marker: str) -> str:
    return re.search(rf"<!-- {marker} -->\n```bash\n(.*?)```", text, re.S).group(1)


def test_docs_single_node_setup_is_the_tests_and_runs(slurm_can_start: None, tmp_path: Path):
    """docs/deploy.md's single-node SLURM: its slurm.conf is what the tests write, and its
    start and stop commands, run on this machine with a config for it, bring the node up
    idle and leave no daemon behind."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    head, conf = re.search(r"<!-- slurm.conf: (.*?) -->\n```text\n(.*?)```", text, re.S).groups()
    args = dict(kv.split("=") for kv in head.split())
    root = args.pop("root")
    assert conf == slurm_conf(root, **{k: int(v) for k, v in args.items()})

    here = tmp_path / "slurm"
    here.mkdir()
    (here / "slurm.conf").write_text(
        slurm_conf(
            here,
            cpus=node_cpus(),
            memory_mb=node_memory_mb(),
            ctld_port=free_port(),
            slurmd_port=free_port(),
        )
    )
    env = {**os.environ, "SLURM_CONF": str(here / "slurm.conf")}
    pids = [here / "slurmd.pid", here / "slurmctld.pid", here / "munge" / "munged.pid"]

    def node_state() -> str:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
        return out.stdout.strip()

    try:
        start = _doc_block(text, "single-node start").replace(root, str(here))
        subprocess.run(["bash", "-ec", start], env=env, check=True, capture_output=True)
        assert SingleNodeSlurm.wait_until(lambda: node_state() == "idle", timeout=60)
        assert SingleNodeSlurm.wait_until(lambda: all(p.exists() for p in pids), timeout=10)
        started = [int(p.read_text()) for p in pids]
        assert all(alive(pid) for pid in started)
    finally:
        stop = _doc_block(text, "single-node stop").replace(root, str(here))
        subprocess.run(["bash", "-c", stop], env=env, capture_output=True, timeout=60)
    assert SingleNodeSlurm.wait_until(lambda: not [p for p in started if alive(p)], timeout=30)
