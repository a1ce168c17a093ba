"""Pipeline configs: the embedded quickstart plans cleanly; every bad config is one line,
non-zero exit, nothing written or damaged."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.config import parse_config
from bigpaint.errors import ConfigError, FieldExistsError
from bigpaint.pipeline import STAGE_KINDS, PipelineConfig, default_config, plan_pipeline
from bigpaint.quickstart import quickstart_config

from ..test_cli import _one_line_error
from .conftest import tiny_config, write_config


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _plan(data, **kw):
    return plan_pipeline(parse_config(PipelineConfig, data, "test"), source="test", **kw)


def test_embedded_quickstart_plans_every_stage_kind(tmp_path):
    planned = plan_pipeline(quickstart_config(tmp_path / "qs"), source="quickstart")
    kinds = [p.kind.kind for p in planned]
    assert set(kinds) == set(STAGE_KINDS) - {"ics"}
    assert [p.status for p in planned] == ["run"] * len(planned)
    assert not (tmp_path / "qs").exists(), "planning must not write"
    # options reach the stages they describe
    cfg = quickstart_config(tmp_path / "qs", grid=64, chunks=16, train_steps=7)
    by = {s.name: s.params for s in cfg.stages}
    assert by["big-2lpt"]["grid"] == by["truth"]["particles"] == 64
    assert by["big-2lpt"]["box_size"] == by["truth"]["box_size"] == 128.0
    assert by["painted"]["chunks"] == by["big-2lpt"]["chunks"] == 16
    assert by["painter"]["run"]["max_steps"] == 7
    assert default_config()["stages"][1]["params"]["run"]["max_steps"] != 7


def test_hash_follows_params_and_upstream(tmp_path):
    a = {p.name: p.hash for p in _plan(tiny_config(tmp_path))}
    b = {p.name: p.hash for p in _plan(tiny_config(tmp_path, **{"big-2lpt": {"seed": 8}}))}
    changed = {n for n in a if a[n] != b[n]}
    # the 2LPT box, what reads it, and the report (which reads everything)
    assert changed == {"big-2lpt", "painted", "power", "bispectrum", "report"}


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (
            lambda d: d["stages"][2].update(kind="lpd"),
            r"unknown kind 'lpd' \(did you mean 'lpt'\?\)",
        ),
        (
            lambda d: d["stages"][0]["params"].update(partcles=8),
            r"stage 'train-box' \(simulate\): unknown key 'partcles' \(did you mean 'particles'\?\)",
        ),
        (
            lambda d: d["stages"][3]["params"].update(source="@truth/lpt_density.zarr"),
            r"reads @truth/lpt_density.zarr but stage 'truth' runs later; move 'truth' before",
        ),
        (
            lambda d: d["stages"][3]["params"].update(source="@big-2lpt/densty.zarr"),
            r"stage 'big-2lpt' writes no 'densty.zarr' \(did you mean 'density.zarr'\?\)",
        ),
        (
            lambda d: d["stages"][3]["params"].update(checkpoint="@paintr/last.painter"),
            r"refers to stage 'paintr', which does not exist \(did you mean 'painter'\?\)",
        ),
        (
            lambda d: d["stages"][3]["params"].update(checkpoint="no/such.painter"),
            r"input 'no/such.painter' \(params.checkpoint\) does not exist",
        ),
        (
            lambda d: d["stages"][2]["params"].update(output="x.zarr"),
            r"params.output is set by the pipeline",
        ),
        (lambda d: d["stages"][4].update(name="painter"), r"two stages are named 'painter'"),
        (lambda d: d.update(stges=[]), r"unknown key 'stges' \(did you mean 'stages'\?\)"),
        (lambda d: d["stages"][5]["params"].update(a="@big-2lpt"), r"write '@stage/output'"),
        (
            lambda d: d["stages"][3]["params"].update(device="@big-2lpt/density.zarr"),
            r"params.device is '@big-2lpt/density.zarr', but a paint stage reads "
            r"'@stage/output' only in checkpoint, input, source; give a path",
        ),
    ],
)
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, edit, pattern):
    data = tiny_config(tmp_path / "run")
    edit(data)
    path = write_config(tmp_path / "bad.yaml", data)
    _one_line_error(_cli("run", str(path)), pattern)
    assert not (tmp_path / "run").exists()


def test_missing_config_and_bad_yaml(tmp_path):
    _one_line_error(_cli("run", str(tmp_path / "nope.yaml")), "does not exist")
    bad = tmp_path / "bad.yaml"
    bad.write_text("out: x\nstages: [\n")
    _one_line_error(_cli("run", str(bad)), "not valid YAML")


def test_foreign_folder_is_refused_and_left_alone(tmp_path):
    data = tiny_config(tmp_path / "run")
    mine = tmp_path / "run" / "power" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("keep me")
    for overwrite in (False, True):  # bigpaint never deletes a folder it did not make
        with pytest.raises(FieldExistsError, match=r"'power'.*did not write.*move them away"):
            _plan(data, overwrite=overwrite)
    cfg = str(write_config(tmp_path / "c.yaml", data))
    _one_line_error(_cli("run", cfg), "did not write")
    _one_line_error(_cli("run", cfg, "--overwrite"), "did not write")
    assert mine.read_text() == "keep me"
    mine.unlink()  # an empty folder is free to use
    assert [p.status for p in _plan(data)].count("run") == len(data["stages"])


def test_dry_run_lists_stages(tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "run"))
    res = _cli("run", str(path), "--dry-run")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == "train-box (simulate): run"
    assert len(res.output.splitlines()) == 10
    assert not (tmp_path / "run").exists()


def test_quickstart_options_checked_before_work(tmp_path):
    _one_line_error(
        _cli("quickstart", "--out", str(tmp_path / "q"), "--grid", "48"), "multiple of 32"
    )
    res = _cli("quickstart", "--out", str(tmp_path / "q"), "--dry-run")
    assert res.exit_code == 0 and "painted (paint): run" in res.output, res.output
    assert not (tmp_path / "q").exists()
    with pytest.raises(ConfigError):
        quickstart_config(tmp_path, grid=40)


def test_example_configs_validate(tmp_path):
    root = Path(__file__).parents[2] / "configs"
    examples = sorted(root.glob("pipeline-*.yaml"))
    assert examples
    for path in examples:
        res = _cli("run", str(path), "--out", str(tmp_path / path.stem), "--dry-run")
        assert res.exit_code == 0, (path, res.output)


def test_external_inputs_are_fingerprinted(tmp_path):
    cat, ckpt = tmp_path / "cat.parquet", tmp_path / "p.painter"
    ckpt.mkdir()
    cat.write_bytes(b"one")
    (ckpt / "weights").write_bytes(b"w1")
    data = {
        "out": str(tmp_path / "run"),
        "stages": [
            {"name": "hmf", "kind": "hmf", "params": {"catalog": str(cat)}},
            {"name": "p", "kind": "paint", "params": {"checkpoint": str(ckpt), "source": str(cat)}},
        ],
    }
    first = [p.hash for p in _plan(data)]
    assert [p.hash for p in _plan(data)] == first
    (ckpt / "weights").write_bytes(b"w2-longer")  # a retrained checkpoint
    second = [p.hash for p in _plan(data)]
    assert second[0] == first[0] and second[1] != first[1]
    cat.write_bytes(b"three")
    assert all(a != b for a, b in zip(second, (p.hash for p in _plan(data)), strict=True))
