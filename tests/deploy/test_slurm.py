"""The GPU recipes of ``deploy/`` in a round trip under a stand-in scheduler.

A single CPU node has no GPUs to give (``--gres=gpu:1``), so these run under the stand-in
``sbatch`` (``tests/deploy/bin``), which really runs each job script as a local process: the
dask workers, scheduler and ``bigpaint`` commands are the real ones; only SLURM's placement
of jobs on nodes is missing. Everything a CPU node can host runs on a real single-node SLURM
in ``test_real_slurm.py``. The recipes are read from ``deploy/`` itself, with the site facts
(cores, memory, interface, directories) overridden to fit this machine.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bigpaint.chunked.apply import apply_blockwise
from bigpaint.cluster import job_script, make_cluster
from bigpaint.config import SlurmClusterConfig, load_config
from bigpaint.context import gaussian_context
from bigpaint.field import create_field, open_field, write_array
from bigpaint.testing import regular_chunks
from tests.deploy.conftest import ROOT, FakeSlurm

DEPLOY = ROOT / "deploy"
META = {"box_size": 100.0, "kind": "delta", "units": "1", "redshift": 0.0}
N = 16
SIGMA = 1.0  # voxels: 6.25 Mpc/h in a 100 Mpc/h box of 16 voxels


def local_overrides(tmp: Path, jobs: int) -> dict[str, object]:
    """Site facts of a recipe replaced by what this machine has (one core, loopback)."""
    return {
        "cluster.cores": 1,
        "cluster.memory": "2GiB",
        "cluster.interface": "lo",
        "cluster.local_directory": str(tmp / "spill"),
        "cluster.log_directory": str(tmp / "logs"),
        "cluster.jobs": jobs,
        "cluster.scheduler_options": {"dashboard_address": ":0"},  # 8787 may be taken
    }


def gpu_recipe(tmp: Path, jobs: int) -> SlurmClusterConfig:
    from bigpaint.cli._common import cluster_config

    path = tmp / "cluster.yaml"
    data = yaml.safe_load((DEPLOY / "cluster-slurm-gpu.yaml").read_text())
    for key, value in local_overrides(tmp, jobs).items():
        data["cluster"][key.split(".", 1)[1]] = value
    path.write_text(yaml.safe_dump(data))
    cfg = cluster_config(str(path), None)
    assert isinstance(cfg, SlurmClusterConfig)
    return cfg


def expected(data: np.ndarray) -> np.ndarray:
    return ndi.gaussian_filter(data, SIGMA, mode="wrap", truncate=4.0)


class _ClusterFile(BaseModel):
    cluster: SlurmClusterConfig


def test_gpu_recipe_is_one_worker_per_gpu():
    cfg = load_config(_ClusterFile, DEPLOY / "cluster-slurm-gpu.yaml").cluster
    script = job_script(cfg.model_copy(update={"scheduler_options": {"dashboard_address": ":0"}}))
    assert "#SBATCH --gres=gpu:1" in script
    assert "--resources GPU=1" in script
    assert cfg.processes == 1 and "--nworkers" not in script
    assert f"--nthreads {cfg.cores}" in script
    assert "#SBATCH --cpus-per-task=8" in script and "#SBATCH --mem=64G" in script


def test_gpu_recipe_round_trip(fake_slurm: FakeSlurm, tmp_path: Path):
    """Scale to 2 GPU-worker jobs, paint-like GPU=1 tasks on a Field, scale down, close."""
    from distributed import Client

    rng = np.random.default_rng(7)
    cfg = gpu_recipe(tmp_path, jobs=2)
    cluster = make_cluster(cfg)
    try:
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            assert [w["resources"] for w in workers] == [{"GPU": 1}, {"GPU": 1}]
            assert len(fake_slurm.alive()) == 2
            assert {fake_slurm.name(j) for j in fake_slurm.ids()} == {"bigpaint-gpu-worker"}

            context = gaussian_context((SIGMA,) * 3, 4.0)
            block = functools.partial(ndi.gaussian_filter, sigma=SIGMA, mode="wrap", truncate=4.0)

            @settings(max_examples=3, deadline=None)
            @given(st.data())
            def chunked_equals_whole(data):
                src_chunks = data.draw(regular_chunks((N, N, N), min_size=2))
                out_chunks = data.draw(regular_chunks((N, N, N), min_size=2))
                case = tmp_path / f"case-{rng.integers(1 << 30)}"
                box = rng.standard_normal((N, N, N)).astype("f4")
                write_array(str(case / "in.zarr"), box, chunks=src_chunks, meta=META)
                out = create_field(
                    str(case / "out.zarr"), shape=box.shape, chunks=out_chunks, meta=META
                )
                apply_blockwise(
                    block, open_field(str(case / "in.zarr")), out, context, resources={"GPU": 1}
                )
                got = open_field(str(case / "out.zarr"))
                np.testing.assert_allclose(
                    got[next(iter(got.data_vars))].values, expected(box), rtol=1e-6, atol=1e-6
                )

            chunked_equals_whole()

            first, second = fake_slurm.ids()
            cluster.scale(jobs=1)
            assert fake_slurm.wait_until(lambda: len(fake_slurm.alive()) == 1)
            assert fake_slurm.wait_until(
                lambda: len(client.scheduler_info(n_workers=-1)["workers"]) == 1
            )
            assert sorted(fake_slurm.state(j) for j in (first, second)) == [
                "CANCELLED",
                "RUNNING",
            ]
    finally:
        cluster.close()
    assert fake_slurm.wait_until(lambda: not fake_slurm.alive())
    assert {fake_slurm.state(j) for j in fake_slurm.ids()} == {"CANCELLED"}


def driver_env(**extra: str) -> dict[str, str]:
    return {"BIGPAINT_VENV": sys.prefix, **extra}


def _deploy_pipeline(tmp_path: Path, **density: object) -> tuple[Path, Path]:
    """deploy/pipeline-2048.yaml with its checkpoint replaced by a small saved halo painter
    (2 Mpc/h, as the pipeline's box needs) and, optionally, a smaller density stage."""
    from bigpaint.painters import build_painter, save_checkpoint

    painter = build_painter("halo-painter", {"out_channels": 3, "filters": 4})
    ckpt = save_checkpoint(painter, tmp_path / "best.painter", provenance={"cell_size": 2.0})
    data = yaml.safe_load((DEPLOY / "pipeline-2048.yaml").read_text())
    stages = {s["name"]: s for s in data["stages"]}
    stages["density"]["params"].update(density)
    stages["painted"]["params"]["checkpoint"] = str(ckpt)
    if "chunks" in density:
        stages["painted"]["params"]["chunks"] = density["chunks"]
    data["out"] = str(tmp_path / "run")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, ckpt


def test_deploy_pipeline_plans(tmp_path: Path):
    from bigpaint.pipeline.runner import load_pipeline, plan_pipeline

    path, _ = _deploy_pipeline(tmp_path)
    planned = plan_pipeline(load_pipeline(path), source=str(path))
    assert [(p.name, p.kind.kind) for p in planned] == [
        ("density", "lpt"),
        ("painted", "paint"),
        ("power", "power"),
        ("report", "report"),
    ]
    lpt = yaml.safe_load((DEPLOY / "pipeline-2048.yaml").read_text())["stages"][0]["params"]
    assert lpt["grid"] == 2048 and lpt["box_size"] / lpt["grid"] == 2.0


def test_deploy_pipeline_runs_in_the_driver_job_on_gpu_worker_jobs(
    fake_slurm: FakeSlurm, tmp_path: Path
):
    """The whole deploy pipeline, scaled to 32^3, as the walkthrough submits it: driver job,
    GPU-recipe worker job, GPU=1 paint tasks; the painted Field equals whole-box painting."""
    from bigpaint.painters import load_checkpoint, paint_array

    path, ckpt = _deploy_pipeline(tmp_path, grid=32, box_size=64.0, chunks=16, block=16)
    gpu_recipe(tmp_path, jobs=1)
    job = fake_slurm.sbatch(
        str(DEPLOY / "bigpaint-batch.sbatch"),
        "run",
        str(path),
        cwd=tmp_path,
        env=driver_env(BIGPAINT_CLUSTER=str(tmp_path / "cluster.yaml")),
    )
    rc = fake_slurm.wait(job, timeout=600)
    log = (tmp_path / f"bigpaint-driver-{job}.out").read_text()
    assert rc == 0, log
    assert fake_slurm.name(job) == "bigpaint-driver"
    workers = [j for j in fake_slurm.ids() if j != job]
    assert [fake_slurm.name(j) for j in workers] == ["bigpaint-gpu-worker"]
    assert fake_slurm.wait_until(lambda: not fake_slurm.alive())
    assert fake_slurm.state(workers[0]) == "CANCELLED"  # the driver cancelled its worker
    run = tmp_path / "run"
    density = open_field(str(run / "density" / "density.zarr"))
    painted = open_field(str(run / "painted" / "painted.zarr"))
    painter, _ = load_checkpoint(ckpt)
    want = paint_array(painter, density[next(iter(density.data_vars))].values)
    np.testing.assert_allclose(
        painted[next(iter(painted.data_vars))].values, want, rtol=1e-5, atol=1e-5
    )
    assert (run / "power" / "power.csv").exists() and (run / "report" / "index.html").exists()
