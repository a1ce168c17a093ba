"""Kill ``lpt_density`` inside its particle stage, then inside its deposit stage, run it again:
finished particle cubes and density blocks are not recomputed and the result is identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bigpaint.errors import FieldIncompleteError
from bigpaint.field import open_field
from bigpaint.ics.lpt import lpt_density
from bigpaint.ics.power import linear_power

from .lpt_resume_job import KW

JOB = Path(__file__).with_name("lpt_resume_job.py")
CUBES = BLOCKS = 64  # (16 / 4)^3 Lagrangian cubes and density blocks


def _run(out, log, delay, **kw):
    return subprocess.Popen([sys.executable, str(JOB), str(out), str(log), str(delay)], **kw)


def _log(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text().split("\n") if path.exists() else []
    return [s[2:] for s in lines if s[:2] == "p "], [s[2:] for s in lines if s[:2] == "d "]


def _kill_when(proc, log: Path, stage: int, count: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(_log(log)[stage]) >= count:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_killed_lpt_density_resumes_each_stage_and_is_identical(tmp_path):
    ref = tmp_path / "ref.zarr"  # the uninterrupted run, in this process
    lpt_density(str(ref), power=linear_power(), **KW)
    cubes = {str(i) for i in range(CUBES)}
    blocks = {f"{i},{j},{k}" for i in range(4) for j in range(4) for k in range(4)}

    out = tmp_path / "out.zarr"
    # run 1: killed while the particle cubes are written
    log1 = tmp_path / "run1.log"
    _kill_when(_run(out, log1, 0.05, start_new_session=True), log1, 0, 10)
    cubes1, blocks1 = _log(log1)
    assert 10 <= len(cubes1) < CUBES and not blocks1, "the kill must land in the particle stage"
    # run 2: finished cubes are skipped; killed while the density blocks are deposited
    log2 = tmp_path / "run2.log"
    _kill_when(_run(out, log2, 0.05, start_new_session=True), log2, 1, 10)
    cubes2, blocks2 = _log(log2)
    done1 = set(cubes1[:-1])  # the last logged cube may have died before its marker
    assert done1.isdisjoint(cubes2), "finished particle cubes were recomputed"
    assert set(cubes1) | set(cubes2) == cubes
    assert 10 <= len(blocks2) < BLOCKS, "the kill must land in the deposit stage"
    with pytest.raises(FieldIncompleteError):
        open_field(str(out))
    # run 3: completes without recomputing any particle cube or finished block
    log3 = tmp_path / "run3.log"
    assert _run(out, log3, 0).wait(timeout=300) == 0
    cubes3, blocks3 = _log(log3)
    assert not cubes3
    assert set(blocks2[:-1]).isdisjoint(blocks3), "finished density blocks were recomputed"
    assert set(blocks2) | set(blocks3) == blocks
    np.testing.assert_array_equal(
        open_field(str(out))["delta"].values, open_field(str(ref))["delta"].values
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith("zarr")) == [
        "out.zarr",
        "ref.zarr",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "scratch left behind"
