"""Faults: a worker killed mid-run, or the whole process killed and the command run again;
either way the output is bit for bit that of the same job run without interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bigpaint.field import field_info, open_field
from bigpaint.paint import paint_field
from bigpaint.painters import load_checkpoint, paint_array
from bigpaint.testing import assert_painted_close
from tests.done_markers import done_so_far

from .conftest import make_checkpoint, make_field, two_workers

JOB = Path(__file__).with_name("paint_job.py")


def _wait_for(out: Path, n: int, timeout: float = 120, alive=lambda: True) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline and alive():
        done = int(done_so_far(out).sum())
        if done >= n:
            return done
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} blocks done (job ended or {timeout} s passed)")


def _reference(ckpt: str, src: str) -> np.ndarray:
    painter, _ = load_checkpoint(ckpt)
    return paint_array(painter, open_field(src)["delta"].values)[0]


def test_killing_a_worker_mid_run_gives_the_identical_result(tmp_path):
    ck = make_checkpoint(tmp_path / "halo.painter", "halo-painter", grid=24, box=96.0)
    src = make_field(tmp_path / "in.zarr", (24, 24, 24), 12, box=96.0)
    out = tmp_path / "out.zarr"
    errors: list[BaseException] = []
    with two_workers() as client:

        def run() -> None:
            try:
                with client.as_current():
                    paint_field(ck, src, str(out), chunks=3, device="cpu")
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        done_at_kill = _wait_for(out, 8, alive=thread.is_alive)
        pids = client.run(os.getpid)
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        thread.join(timeout=300)
        assert not thread.is_alive()
        with client.as_current():  # the same job, uninterrupted
            paint_field(ck, src, str(tmp_path / "whole.zarr"), chunks=3, device="cpu")
    assert not errors, errors
    assert done_at_kill < 512, "the kill must land mid-run"
    assert field_info(str(out))["complete"]
    y = open_field(str(out))["painted_test"].values
    np.testing.assert_array_equal(
        y, open_field(str(tmp_path / "whole.zarr"))["painted_test"].values
    )
    assert_painted_close(y, _reference(ck, src))


def _chunk_mtimes(out: Path) -> dict[str, int]:
    root = out / "painted_test" / "c"
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_killed_process_resumes_from_finished_blocks(tmp_path):
    ck = make_checkpoint(tmp_path / "halo.painter", "halo-painter", grid=32, box=128.0)
    src = make_field(tmp_path / "in.zarr", (32, 32, 32), 16, box=128.0)
    out = tmp_path / "out.zarr"
    proc = subprocess.Popen([sys.executable, str(JOB), ck, src, str(out)], start_new_session=True)
    try:
        _wait_for(out, 40, alive=lambda: proc.poll() is None)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    mask = done_so_far(out)
    assert 40 <= mask.sum() < mask.size, "the kill must land mid-way"
    assert not field_info(str(out))["complete"]
    before = _chunk_mtimes(out)
    finished = {"/".join(map(str, idx)) for idx in np.argwhere(mask)}
    assert finished <= set(before)
    assert (
        subprocess.run([sys.executable, str(JOB), ck, src, str(out)], timeout=300).returncode == 0
    )
    after = _chunk_mtimes(out)
    assert all(after[k] == before[k] for k in finished), "finished blocks were rewritten"
    assert field_info(str(out))["complete"]
    whole = tmp_path / "whole.zarr"  # the same job, uninterrupted
    assert (
        subprocess.run([sys.executable, str(JOB), ck, src, str(whole)], timeout=300).returncode == 0
    )
    y = open_field(str(out))["painted_test"].values
    np.testing.assert_array_equal(y, open_field(str(whole))["painted_test"].values)
    assert_painted_close(y, _reference(ck, src))
