"""One spec per paint job: the library, the CLI and a pipeline stage build the same
:class:`PaintSpec` from the same inputs, and the CLI's plan is the one painted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import bigpaint.field
import bigpaint.paint
import bigpaint.paint.engine
import bigpaint.paint.plan
from bigpaint.cli import cli
from bigpaint.config import parse_config
from bigpaint.errors import ConfigError
from bigpaint.field import field_info, open_field
from bigpaint.paint import PaintConfig, PaintSpec, paint, paint_field, plan_spec
from bigpaint.pipeline.stages import STAGE_KINDS, StageContext


def _stage(tmp_path: Path) -> StageContext:
    d = tmp_path / "run" / "painted"
    d.mkdir(parents=True, exist_ok=True)
    return StageContext("painted", d, "stage 'painted' (paint)", lambda _m: None)


def _pipeline_spec(tmp_path: Path, params: dict) -> PaintSpec:
    return STAGE_KINDS["paint"].validate(params, _stage(tmp_path))


def test_cli_library_and_pipeline_build_one_spec_and_the_cli_plans_once(
    tmp_path, halo, src, monkeypatch
):
    out = str(_stage(tmp_path).dir / "painted.zarr")
    seen: list[tuple[PaintSpec, object]] = []
    real_paint, real_plan, real_open = (
        bigpaint.paint.engine.paint,
        bigpaint.paint.plan.plan_paint,
        bigpaint.field.open_field,
    )
    counts = {"plan": 0, "open": 0}

    def spy_paint(spec, **kw):
        seen.append((spec, kw.get("plan")))
        return real_paint(spec, **kw)

    def spy_plan(*a, **kw):
        counts["plan"] += 1
        return real_plan(*a, **kw)

    def spy_open(url, *a, **kw):
        counts["open"] += str(url) == src
        return real_open(url, *a, **kw)

    monkeypatch.setattr(bigpaint.paint, "paint", spy_paint)
    monkeypatch.setattr(bigpaint.paint.plan, "plan_paint", spy_plan)
    monkeypatch.setattr(bigpaint.field, "open_field", spy_open)
    threads = tmp_path / "cluster.yaml"  # in-process workers: no process start-up
    threads.write_text("cluster: {kind: local, n_workers: 1, processes: false}\n")
    res = CliRunner().invoke(
        cli,
        [
            "paint", "--checkpoint", halo, src, out, "--chunks", "8", "--device", "cpu",
            "--seed", "3", "--memory-budget", "64MiB", "--allow-mismatch", "redshift,cosmology",
            "--cluster", str(threads),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert field_info(out)["complete"]
    ((cli_spec, cli_plan),) = seen
    assert cli_plan is not None and cli_plan.spec == cli_spec, "the CLI's plan reaches paint"
    assert counts == {"plan": 1, "open": 1}, "the input is opened and planned once"

    lib: list[PaintSpec] = []
    monkeypatch.setattr(bigpaint.paint.engine, "paint", lambda spec, **kw: lib.append(spec))
    paint_field(
        Path(halo), src, out, chunks=(8, 8, 8), device="cpu", seed=3, memory_budget="64MiB",
        allow_mismatch=["cosmology", "redshift"],
    )  # fmt: skip
    pipe = _pipeline_spec(
        tmp_path,
        {"checkpoint": halo, "input": src, "chunks": 8, "device": "cpu", "seed": 3,
         "memory_budget": "64MiB", "allow_mismatch": ["redshift", "cosmology"]},
    )  # fmt: skip
    assert lib == [cli_spec]
    assert pipe == cli_spec
    assert cli_spec.allow_mismatch == ("cosmology", "redshift")
    assert cli_spec.chunks == (8, 8, 8) and cli_spec.output == out


def test_pipeline_takes_source_for_input_and_sets_output(tmp_path, halo, src):
    old = _pipeline_spec(tmp_path, {"checkpoint": halo, "source": src})
    assert old == _pipeline_spec(tmp_path, {"checkpoint": halo, "input": src})
    assert old.output == str(_stage(tmp_path).dir / "painted.zarr") and not old.overwrite
    with pytest.raises(ConfigError, match="input or its older name source, not both"):
        _pipeline_spec(tmp_path, {"checkpoint": halo, "input": src, "source": src})


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("seed", -1, "seed.*greater than or equal to 0"),
        ("device", "gpu", "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("memory_budget", "lots", "must be a positive size like 2GiB"),
        ("margin", -2, "margin.*greater than or equal to 0"),
    ],
)
def test_every_front_end_refuses_bad_keys_in_one_line(tmp_path, halo, src, key, value, match):
    out = tmp_path / "out.zarr"
    fronts = {
        "library": lambda: paint_field(halo, src, str(out), **{key: value}),
        "pipeline": lambda: _pipeline_spec(
            tmp_path, {"checkpoint": halo, "input": src, key: value}
        ),
        "config": lambda: parse_config(
            PaintConfig, {"checkpoint": halo, "input": src, "output": str(out), key: value}
        ),
    }
    for name, front in fronts.items():
        with pytest.raises(ConfigError, match=match) as info:
            front()
        assert "\n" not in str(info.value), name
    assert not out.exists()
    cfg = tmp_path / "paint.yaml"
    cfg.write_text(f"checkpoint: {halo}\ninput: {src}\noutput: {out}\n{key}: {value}\n")
    res = CliRunner().invoke(cli, ["paint", "--config", str(cfg)])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert not out.exists()


def test_paint_refuses_a_plan_of_another_spec(tmp_path, halo, src):
    spec = PaintSpec(checkpoint=halo, input=src, output=str(tmp_path / "a.zarr"), chunks=8)
    plan = plan_spec(spec)
    other = spec.model_copy(update={"seed": 5})
    with pytest.raises(ConfigError, match="plan was made for another paint spec"):
        paint(other, plan=plan)
    assert not (tmp_path / "a.zarr").exists()
    paint(spec, plan=plan)
    whole = tmp_path / "b.zarr"
    paint_field(halo, src, str(whole), chunks=8)
    np.testing.assert_array_equal(
        open_field(str(tmp_path / "a.zarr"))["painted_test"].values,
        open_field(str(whole))["painted_test"].values,
    )
