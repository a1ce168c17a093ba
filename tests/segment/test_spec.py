"""One spec per segmentation job: ``bigpaint segment`` (flags or ``--config``) and a
pipeline's ``segment`` stage build the same :class:`SegmentSpec` from the same inputs, and
its ``params`` are the one conversion of ``trajectories`` into thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import bigpaint.segment.spec
from bigpaint.cli import cli
from bigpaint.errors import ConfigError
from bigpaint.field import write_array
from bigpaint.pipeline.stages import STAGE_KINDS, StageContext
from bigpaint.segment.catalog import read_catalog
from bigpaint.segment.spec import SegmentSpec

from .reference import blobs
from .test_catalog import DMETA, SHAPE

#: The same job as flags and as pipeline params (rho_bar in (Msun/h)/(Mpc/h)^3).
FLAGS = ["--min-distance", "3", "--merge-h", "0.5", "--sigma", "1", "--truncate", "3",
         "--trajectories", "5", "--rho-bar", "8.5e10", "--chunks", "12"]  # fmt: skip
PARAMS = {"min_distance": 3, "h": 0.5, "sigma": 1.0, "truncate": 3.0, "trajectories": 5,
          "rho_bar": 8.5e10, "chunks": 12}  # fmt: skip


@pytest.fixture
def dist(tmp_path) -> str:
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    url = str(tmp_path / "dist.zarr")
    write_array(url, d, chunks=(12, 8, 24), meta=DMETA)
    return url


@pytest.fixture
def seen(monkeypatch) -> list[SegmentSpec]:
    """The specs ``run_segment`` is called with (it still runs)."""
    specs: list[SegmentSpec] = []
    real = bigpaint.segment.spec.run_segment

    def spy(spec, **kw):
        specs.append(spec)
        return real(spec, **kw)

    monkeypatch.setattr(bigpaint.segment.spec, "run_segment", spy)
    return specs


@pytest.fixture
def threads(tmp_path) -> str:
    path = tmp_path / "cluster.yaml"  # in-process workers: no process start-up
    path.write_text("cluster: {kind: local, n_workers: 1, processes: false}\n")
    return str(path)


def _stage(tmp_path) -> StageContext:
    d = tmp_path / "run" / "protohalos"
    d.mkdir(parents=True, exist_ok=True)
    return StageContext("protohalos", d, "stage 'protohalos' (segment)", lambda _m: None)


def test_cli_and_pipeline_build_one_spec(tmp_path, dist, seen, threads):
    ctx = _stage(tmp_path)
    out, work = str(ctx.dir / "catalog.parquet"), str(ctx.dir / "work")
    res = CliRunner().invoke(
        cli, ["segment", dist, out, *FLAGS, "--workdir", work, "--cluster", threads]
    )
    assert res.exit_code == 0, res.output
    assert read_catalog(out).num_rows > 0
    pipe = STAGE_KINDS["segment"].validate({"distance": dist, **PARAMS}, ctx)
    (cli_spec,) = seen
    assert cli_spec == pipe
    assert cli_spec.chunks == (12, 12, 12) and cli_spec.truncate == 3.0
    params = pipe.params()
    assert params.trajectory_thresholds == tuple(np.linspace(0.0, 1.0, 5))
    assert params.truncate == 3.0 and params.h == 0.5 and params.min_distance == 3


def test_config_file_with_flags_over_it(tmp_path, dist, seen, threads):
    out = str(tmp_path / "c.parquet")
    cfg = tmp_path / "segment.yaml"
    keys = "\n".join(f"{k}: {v}" for k, v in PARAMS.items())
    cfg.write_text(f"distance: {dist}\noutput: {out}\n{keys}\n")
    res = CliRunner().invoke(
        cli, ["segment", "--config", str(cfg), "--min-distance", "2", "--cluster", threads]
    )
    assert res.exit_code == 0, res.output
    (spec,) = seen
    assert spec.min_distance == 2 and spec.truncate == 3.0 and spec.output == out
    assert spec.model_fields_set == {"distance", "output", *PARAMS}, "what calibrations see"
    cfg.write_text(f"distance: {dist}\noutput: {out}\nmin_distanse: 2\n")
    res = CliRunner().invoke(cli, ["segment", "--config", str(cfg)])
    assert res.exit_code == 2 and "min_distanse" in res.output and "min_distance" in res.output
    res = CliRunner().invoke(cli, ["segment"])
    assert res.exit_code == 2 and "--config FILE" in res.output


def test_pipeline_refuses_what_it_sets_and_bad_ladders(tmp_path, dist):
    ctx = _stage(tmp_path)
    spec = STAGE_KINDS["segment"].validate({"distance": dist}, ctx)
    assert spec.output == str(ctx.dir / "catalog.parquet") and not spec.overwrite
    assert STAGE_KINDS["segment"].written == ("output", "workdir", "overwrite", "labels")
    bad = STAGE_KINDS["segment"].validate({"distance": dist, "trajectories": 1}, ctx)
    with pytest.raises(ConfigError, match="records one threshold"):
        bad.params()
    with pytest.raises(ConfigError, match="truncate"):
        STAGE_KINDS["segment"].validate({"distance": dist, "truncate": 0}, ctx)
