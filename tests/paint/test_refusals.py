"""Incompatible checkpoints and inputs are refused before any work, with one clear line."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.errors import (
    CheckpointError,
    ChunkingError,
    ConfigError,
    FieldExistsError,
)
from bigpaint.field import field_info, open_field
from bigpaint.paint import paint_field

from .conftest import make_checkpoint, make_field


def _refused(tmp_path, exc, match, *args, **kw):
    out = tmp_path / "out.zarr"
    with pytest.raises(exc, match=match) as info:
        paint_field(*args, str(out), **kw)
    assert "\n" not in str(info.value)
    assert not out.exists(), "a refused job must not create its output"


def test_wrong_resolution_is_refused_before_work(tmp_path, halo):
    coarse = make_field(tmp_path / "coarse.zarr", (8, 8, 8), 8)  # 8 Mpc/h voxels, trained at 4
    _refused(
        tmp_path, CheckpointError, r"8 Mpc/h per voxel.*trained at 4 Mpc/h.*16 voxels", halo, coarse
    )


def test_wrong_checkpoint_family_kind_and_channels_are_refused(tmp_path, src):
    ember = make_checkpoint(tmp_path / "ember.painter", "ember", noise=False)
    with pytest.raises(ConfigError, match="projection depth"):
        paint_field(ember, src, str(tmp_path / "o1.zarr"))
    halo = make_checkpoint(tmp_path / "h.painter", "halo-painter")
    _refused(
        tmp_path,
        CheckpointError,
        "3-D 'halo-painter' painter; slabs are for 2-D",
        halo,
        src,
        slab={"thickness": 2},
    )
    wrong_kind = make_checkpoint(tmp_path / "k.painter", "halo-painter", kind="density")
    _refused(tmp_path, CheckpointError, "trained on 'density' fields", wrong_kind, src)
    dm2gal = make_checkpoint(tmp_path / "d.painter", "dm2gal")  # 2 input channels
    _refused(tmp_path, CheckpointError, "2 input channel", dm2gal, src)
    _refused(tmp_path, CheckpointError, "no painter checkpoint", tmp_path / "missing", src)
    _refused(tmp_path, ConfigError, "margin is fixed at 4", halo, src, margin=2)
    ember2 = make_checkpoint(tmp_path / "e2.painter", "ember", noise=False, depth=3)
    _refused(tmp_path, ChunkingError, "thickness 3 does not divide", ember2, src)
    _refused(tmp_path, CheckpointError, "trained on slabs of 3", ember2, src, slab={"thickness": 4})


def test_existing_output_of_another_job_is_refused_and_untouched(tmp_path, halo, src):
    out = str(tmp_path / "out.zarr")
    paint_field(halo, src, out, chunks=8)
    before = open_field(out)["painted_test"].values
    other = make_checkpoint(tmp_path / "other.painter", "halo-painter", seed=5)
    with pytest.raises(FieldExistsError, match="different job"):
        paint_field(other, src, out, chunks=8)
    np.testing.assert_array_equal(open_field(out)["painted_test"].values, before)
    paint_field(other, src, out, chunks=8, overwrite=True)
    assert not np.array_equal(open_field(out)["painted_test"].values, before)


def test_nan_input_is_refused_and_leaves_no_output(tmp_path, halo):
    from bigpaint.errors import NonFiniteError
    from bigpaint.field import write_array

    a = np.zeros((16, 16, 16), "f4")
    a[3, 4, 5] = np.nan
    bad = write_array(
        str(tmp_path / "nan.zarr"),
        a,
        chunks=8,
        meta={"box_size": 64.0, "kind": "delta", "units": "1"},
    ).url
    with pytest.raises(NonFiniteError, match="NaN"):
        paint_field(halo, bad, str(tmp_path / "out.zarr"))
    assert not (tmp_path / "out.zarr").exists()


def test_cli_paints_and_refuses_with_one_line(tmp_path, halo, src):
    runner = CliRunner()
    threads = tmp_path / "cluster.yaml"  # in-process workers: no process start-up per test
    threads.write_text("cluster: {kind: local, n_workers: 1, processes: false}\n")
    out = str(tmp_path / "cli.zarr")
    res = runner.invoke(
        cli,
        [
            "paint",
            "--checkpoint",
            halo,
            src,
            out,
            "--chunks",
            "8",
            "--device",
            "cpu",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "painted" in res.output and field_info(out)["complete"]
    coarse = make_field(tmp_path / "coarse.zarr", (8, 8, 8), 8)
    res = runner.invoke(cli, ["paint", "--checkpoint", halo, coarse, str(tmp_path / "x.zarr")])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "trained at 4 Mpc/h per voxel" in res.output
    assert not (tmp_path / "x.zarr").exists()
    cfg = tmp_path / "paint.yaml"
    cfg.write_text(
        f"checkpoint: {halo}\ninput: {src}\noutput: {tmp_path / 'cfg.zarr'}\nchunks: 8\n"
        "device: cpu\ncluster: {kind: local, n_workers: 1, processes: false}\n"
    )
    res = runner.invoke(cli, ["paint", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(
        open_field(str(tmp_path / "cfg.zarr"))["painted_test"].values,
        open_field(out)["painted_test"].values,
    )
    cfg.write_text(f"checkpoint: {halo}\ninput: {src}\noutput: o.zarr\nmargn: 3\n")
    res = runner.invoke(cli, ["paint", "--config", str(cfg)])
    assert res.exit_code == 2 and "margn" in res.output and "margin" in res.output
