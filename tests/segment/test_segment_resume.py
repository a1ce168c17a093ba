"""Run control of ``bigpaint segment``: killed in its block pass, then in its flood pass,
it resumes without recomputing a finished block and equals an uninterrupted run; a
component too large to flood within the memory budget is refused before any flooding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.errors import ConfigError, FieldIncompleteError, FloodTooLargeError
from bigpaint.field import open_field, write_array
from bigpaint.segment.catalog import read_catalog
from bigpaint.segment.engine import FLOOD_BYTES_PER_VOXEL, SegmentParams, segment
from bigpaint.segment.job import segment_field

from ..test_cli import _not_logged
from .reference import blobs

JOB = Path(__file__).with_name("segment_resume_job.py")
SHAPE = (24, 24, 24)
META = {"box_size": 48.0, "kind": "distance", "units": "1", "redshift": 99.0,
        "cosmology": {"Omega_m": 0.3, "Omega_b": 0.05, "h": 0.7, "n_s": 0.96, "sigma_8": 0.8}}  # fmt: skip
THREADS = "cluster:\n  kind: local\n  n_workers: 1\n  processes: false\n"
BLOCKS = {f"{i},{j},{k}" for i in range(4) for j in range(4) for k in range(4)}


def _log(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text().split("\n") if path.exists() else []
    return [s[2:] for s in lines if s[:2] == "b "], [s[2:] for s in lines if s[:2] == "f "]


def _run(tmp: Path, log: Path, delay: float, **kw) -> subprocess.Popen:
    args = [tmp / "dist.zarr", tmp / "out.parquet", tmp / "labels.zarr", tmp / "cluster.yaml"]
    return subprocess.Popen([sys.executable, str(JOB), *map(str, args), str(log), str(delay)], **kw)


def _kill_when(proc: subprocess.Popen, log: Path, stage: int, count: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(_log(log)[stage]) < count:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def assert_same_outputs(tmp: Path, ref) -> None:
    """The catalogue ``out.parquet`` and ``labels.zarr`` in ``tmp`` equal the reference's."""
    got = read_catalog(tmp / "out.parquet")
    assert got.num_rows == ref.num_rows > 20
    for name in ref.column_names:
        if name != "threshold":  # NaN without a calibration
            assert got[name].equals(ref[name]), name
    np.testing.assert_array_equal(
        open_field(str(tmp / "labels.zarr"))["labels"].values,
        open_field(str(tmp / "ref-labels.zarr"))["labels"].values,
    )


def test_killed_segment_resumes_each_pass_and_is_identical(tmp_path, monkeypatch):
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)  # crosses seams and the wrap
    dist = write_array(str(tmp_path / "dist.zarr"), d, chunks=6, meta=META).url
    (tmp_path / "cluster.yaml").write_text(THREADS)
    # the uninterrupted run, in this process (threads, no cluster)
    params = SegmentParams(trajectory_thresholds=tuple(np.linspace(0.0, 1.0, 5)))
    ref = segment_field(
        dist, str(tmp_path / "ref.parquet"), params, labels=str(tmp_path / "ref-labels.zarr")
    )

    # run 1: killed in the block pass
    log1 = tmp_path / "run1.log"
    _kill_when(_run(tmp_path, log1, 0.05, start_new_session=True), log1, 0, 10)
    b1, f1 = _log(log1)
    assert 10 <= len(b1) < len(BLOCKS) and not f1, "the kill must land in the block pass"
    # run 2: finished blocks skipped; killed in the flood pass
    log2 = tmp_path / "run2.log"
    _kill_when(_run(tmp_path, log2, 0.05, start_new_session=True), log2, 1, 10)
    b2, f2 = _log(log2)
    assert set(b1[:-1]).isdisjoint(b2), "finished blocks were recomputed"
    assert set(b1) | set(b2) == BLOCKS
    assert 10 <= len(f2) < len(BLOCKS), "the kill must land in the flood pass"
    assert not (tmp_path / "out.parquet").exists()
    with pytest.raises(FieldIncompleteError):
        open_field(str(tmp_path / "labels.zarr"))
    # run 3: completes, recomputing no finished block of either pass
    log3 = tmp_path / "run3.log"
    proc = _run(tmp_path, log3, 0, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.wait(timeout=300) == 0, proc.stdout.read().decode()
    b3, f3 = _log(log3)
    assert not b3
    assert set(f2[:-1]).isdisjoint(f3), "finished flood blocks were recomputed"
    assert set(f2) | set(f3) == BLOCKS

    assert_same_outputs(tmp_path, ref)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "scratch left behind"

    # the same call on a finished catalogue returns it without work
    def no_work(*_a, **_k):
        raise AssertionError("a finished catalogue was segmented again")

    monkeypatch.setattr("bigpaint.segment.job.segment", no_work)
    again = segment_field(
        dist, str(tmp_path / "ref.parquet"), params, labels=str(tmp_path / "ref-labels.zarr")
    )
    done = read_catalog(tmp_path / "ref.parquet")
    assert again.drop_columns(["threshold"]).equals(done.drop_columns(["threshold"]))  # NaN


def test_a_percolating_component_above_the_flood_budget_is_refused_before_flooding(tmp_path):
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    free = segment(d, SegmentParams(), chunks=6, max_flood_gib=None)
    box = free.stats["largest_flood_box_voxels"]
    assert box > 6**3  # the tube across the wrap spans blocks
    fits = box * FLOOD_BYTES_PER_VOXEL / 2**30
    just = segment(d, SegmentParams(), chunks=6, max_flood_gib=fits)
    np.testing.assert_array_equal(just.id, free.id)
    np.testing.assert_array_equal(just.volume, free.volume)
    with pytest.raises(FloodTooLargeError, match=rf"{box} voxels .* raise the threshold"):
        segment(d, SegmentParams(), chunks=6, max_flood_gib=0.999 * fits)
    with pytest.raises(ConfigError, match="max_flood_gib"):
        segment(d, SegmentParams(), chunks=6, max_flood_gib=0)

    # the CLI: one line naming the fix, exit 2, nothing written; a higher threshold runs
    dist = write_array(str(tmp_path / "dist.zarr"), d, chunks=6, meta=META).url
    out = tmp_path / "cat.parquet"
    budget = f"{0.999 * fits:.6g}"
    cluster = tmp_path / "cluster.yaml"  # one in-process worker: no process start-up
    cluster.write_text(THREADS)
    res = CliRunner().invoke(cli, ["segment", dist, str(out), "--max-flood-gib", budget,
                                   "--labels", str(tmp_path / "l.zarr"), "--cluster", str(cluster)])  # fmt: skip
    assert res.exit_code == 2
    lines = _not_logged(res.output)  # block progress lines may come before the error
    assert len(lines) == 1 and "percolates" in lines[0] and "--threshold" in lines[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "scratch left behind"
    assert not (tmp_path / "l.zarr").exists()  # refused before any label block: removed
    high = segment(d, SegmentParams(threshold=0.6), chunks=6).stats["largest_flood_box_voxels"]
    assert high < box
    res = CliRunner().invoke(cli, ["segment", dist, str(out), "--max-flood-gib", budget,
                                   "--threshold", "0.6", "--cluster", str(cluster)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert read_catalog(out).num_rows > 0
