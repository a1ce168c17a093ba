"""Kill a blockwise run mid-way, run it again: finished blocks are skipped, result identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from bigpaint.errors import FieldIncompleteError
from bigpaint.field import field_info, open_field, write_array
from tests.done_markers import done_so_far

from .conftest import META, tree_digest

JOB = Path(__file__).with_name("resume_job.py")


def _run(args, **kw):
    return subprocess.Popen([sys.executable, str(JOB), *map(str, args)], **kw)


def _chunk_digest(url: str) -> str:
    """Digest of the data chunks only (attrs carry timestamps)."""
    return tree_digest(Path(url) / "delta")


def _read_log(path: Path) -> list[tuple[int, ...]]:
    if not path.exists():
        return []
    return [tuple(int(v) for v in line.split(",")) for line in path.read_text().split()]


def test_kill_and_resume_skips_finished_blocks_and_is_identical(tmp_path):
    a = np.random.default_rng(5).standard_normal((16, 16, 16)).astype("f4")
    inp = write_array(str(tmp_path / "in.zarr"), a, chunks=8, meta=META).url

    # Reference: an uninterrupted run.
    ref_out, ref_log = tmp_path / "ref.zarr", tmp_path / "ref.log"
    assert _run([inp, ref_out, ref_log, 0]).wait(timeout=120) == 0
    assert len(_read_log(ref_log)) == 64

    # Interrupted run: SIGKILL once some blocks are marked done.
    out, log1 = tmp_path / "out.zarr", tmp_path / "run1.log"
    proc = _run([inp, out, log1, 0.15], start_new_session=True)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline:
        done = int(done_so_far(out).sum())
        if done >= 10:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    mask = np.asarray(zarr.open_array(str(out), path="_bigpaint/done", mode="r")[...]).astype(bool)
    finished = {tuple(int(i) for i in idx) for idx in np.argwhere(mask)}
    assert 10 <= len(finished) < 64, "the kill must land mid-way"
    assert not field_info(str(out))["complete"]
    with pytest.raises(FieldIncompleteError):
        open_field(str(out))

    # Same call again: resumes.
    log2 = tmp_path / "run2.log"
    assert _run([inp, out, log2, 0]).wait(timeout=120) == 0
    recomputed = set(_read_log(log2))
    assert recomputed.isdisjoint(finished), "finished blocks were recomputed"
    assert (
        recomputed == {(i, j, k) for i in range(4) for j in range(4) for k in range(4)} - finished
    )
    assert field_info(str(out))["complete"]
    np.testing.assert_array_equal(
        open_field(str(out))["delta"].values, open_field(str(ref_out))["delta"].values
    )
    assert _chunk_digest(str(out)) == _chunk_digest(str(ref_out)), "stores differ byte for byte"
