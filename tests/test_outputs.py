"""Output safety: path identity, writer locks (live, stale, re-entrant), scratch ownership,
and two real writers on one output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi

from bigpaint.errors import OutputLockedError, PathConflictError
from bigpaint.field import open_field, write_array
from bigpaint.outputs import (
    OWNER_MARK,
    canonical,
    check_apart,
    output_lock,
    owned_dir,
    remove_owned,
    writing,
)

from .conftest import META


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _lock_path(url: Path) -> Path:
    return url.parent / f".{url.name}.lock"


def test_canonical_spellings_agree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.zarr").mkdir()
    os.symlink(tmp_path / "a.zarr", tmp_path / "b.zarr")
    want = canonical(tmp_path / "a.zarr")
    for s in ("a.zarr", "./a.zarr/", "a.zarr//", "sub/../a.zarr", "b.zarr", f"file://{want}"):
        assert canonical(s) == want, s
    assert canonical("s3://bucket//x/y/") == "s3://bucket/x/y"


def test_outputs_apart_from_each_other_and_from_inputs(tmp_path):
    with pytest.raises(PathConflictError, match="holds input"):
        check_apart({"output": tmp_path}, {"input": tmp_path / "x.zarr"})
    with pytest.raises(PathConflictError, match="two outputs need two separate paths"):
        check_apart({"output": tmp_path / "a", "--labels": tmp_path / "a/b"}, {})
    with pytest.raises(PathConflictError, match="is the same store as"):
        check_apart({"output": "s3://b/x/"}, {"input": "s3://b//x"})
    check_apart({"output": tmp_path / "ab"}, {"input": tmp_path / "a"})
    check_apart({"output": "s3://b/x"}, {"input": str(tmp_path / "x")})


def test_lock_refuses_a_live_holder_and_names_it(tmp_path):
    out = tmp_path / "o.zarr"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from bigpaint.outputs import output_lock\n"
         "with output_lock(sys.argv[1]):\n"
         "    print('held', flush=True); time.sleep(60)\n", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError) as info, output_lock(out):
            pass
        msg = str(info.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in msg
        assert "\n" not in msg and "wait for it to finish" in msg
    finally:
        holder.kill()
        holder.wait()
    with output_lock(out):  # the kernel let go of the dead holder's flock: taken over
        info = json.loads(_lock_path(out).read_text())
        assert info["pid"] == os.getpid()
    assert not _lock_path(out).exists()


def test_stale_lock_file_is_taken_over_with_a_warning(tmp_path, caplog):
    out = tmp_path / "o.zarr"
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "command": "bigpaint smooth"}
    _lock_path(out).write_text(json.dumps(stale))
    with caplog.at_level("WARNING", logger="bigpaint.outputs"), output_lock(out):
        pass
    assert f"pid {stale['pid']}" in caplog.text and "no longer running" in caplog.text
    assert not _lock_path(out).exists()


def test_lock_is_reentrant_in_one_thread_and_refused_in_another(tmp_path):
    import threading

    out = tmp_path / "o.zarr"
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with output_lock(out):
                pass
        except BaseException as exc:
            errors.append(exc)

    with output_lock(out), output_lock(out):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], OutputLockedError)
    assert not _lock_path(out).exists()


@pytest.fixture
def no_flock(monkeypatch):
    """A file system without flock (some Lustre mounts): the lock file is the lock."""
    import errno
    import fcntl

    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)


def test_without_flock_a_dead_holder_is_taken_over(tmp_path, no_flock):
    out = tmp_path / "o.zarr"
    _lock_path(out).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with output_lock(out):
        assert json.loads(_lock_path(out).read_text())["pid"] == os.getpid()
    assert not _lock_path(out).exists()


def test_without_flock_a_live_or_remote_holder_is_refused(tmp_path, no_flock):
    out = tmp_path / "o.zarr"
    _lock_path(out).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(OutputLockedError, match=f"pid {os.getppid()}"), output_lock(out):
        pass
    _lock_path(out).write_text(json.dumps({"pid": 1, "host": "node-elsewhere"}))
    with pytest.raises(
        OutputLockedError, match=r"if that process is gone, delete .*\.o\.zarr\.lock"
    ):
        with output_lock(out):
            pass
    assert _lock_path(out).exists()  # not ours to remove


def test_object_store_urls_are_not_locked(tmp_path):
    with output_lock("memory://bucket/o.zarr"), output_lock("memory://bucket/o.zarr"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_owned_dir_marks_and_removes_only_its_own(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "data.txt").write_text("keep")
    with pytest.raises(PathConflictError, match="bigpaint did not make it"):
        owned_dir(user, purpose="spill files")
    assert remove_owned(user) is False and (user / "data.txt").read_text() == "keep"
    ours = owned_dir(user / "bigpaint-x", purpose="spill files")
    assert (ours / OWNER_MARK).is_file()
    assert owned_dir(ours, purpose="spill files") == ours  # reused on resume
    assert remove_owned(ours) is True and not ours.exists()
    assert (user / "data.txt").read_text() == "keep"


def test_writing_removes_an_untouched_new_field_on_failure_and_keeps_the_rest(tmp_path):
    from bigpaint.field import create_field

    new, old = tmp_path / "new.zarr", tmp_path / "old.zarr"
    write_array(str(old), np.zeros((4, 4, 4), "f4"), chunks=4, meta=META)
    with pytest.raises(RuntimeError), writing({"a": new, "b": old}):
        create_field(str(new), shape=(8, 8, 8), chunks=4, meta=META)
        raise RuntimeError("checkpoint failed to load")
    assert not new.exists() and open_field(str(old)).attrs["bigpaint_complete"]
    with pytest.raises(RuntimeError), writing({"a": new}):  # a finished block is kept: resume
        w = create_field(str(new), shape=(8, 8, 8), chunks=4, meta=META)
        w.write_block((0, 0, 0), np.ones((4, 4, 4), "f4"))
        raise RuntimeError("killed")
    assert int(w.done_mask().sum()) == 1


def test_two_writers_on_one_output_one_is_refused_the_survivor_is_correct(tmp_path):
    """Two `bigpaint smooth --overwrite` onto one path: the second is refused with one line
    naming the first, which finishes a complete and correct Field."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((48, 48, 48)).astype("f4")
    inp = write_array(str(tmp_path / "in.zarr"), data, chunks=8, meta=META).url
    out = tmp_path / "out.zarr"
    args = [sys.executable, "-m", "bigpaint", "smooth", inp, str(out), "--sigma-mpc", "6",
            "--workers", "1", "--overwrite"]  # fmt: skip
    first = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _lock_path(out).exists():  # the first holds the lock before it starts workers
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.05)
    second = subprocess.run(args, capture_output=True, text=True, timeout=120)
    first_err = first.communicate(timeout=300)[1]
    assert first.returncode == 0, first_err
    assert second.returncode == 2, second.stderr
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith("bigpaint: error: output ")
    assert f"being written by another bigpaint process (pid {first.pid} " in lines[0]
    ds = open_field(str(out))
    assert ds.attrs["bigpaint_complete"]
    ref = ndi.gaussian_filter(data, 6 / (100 / 48), mode="wrap")
    np.testing.assert_array_equal(ds["delta"].values, ref)
    assert not _lock_path(out).exists()


def test_rerun_spelling_the_input_otherwise_is_the_same_job(tmp_path, monkeypatch):
    """Job tokens hash resolved paths: a finished smooth run again with an absolute (or
    ./-prefixed) input is recognised as done, not refused as a different job."""
    from click.testing import CliRunner

    from bigpaint.cli import cli

    from .conftest import tree_digest

    monkeypatch.chdir(tmp_path)
    write_array("in.zarr", np.ones((8, 8, 8), "f4"), chunks=4, meta=META)
    run = ["--sigma-mpc", "5", "--workers", "1"]
    assert CliRunner().invoke(cli, ["smooth", "in.zarr", "o.zarr", *run]).exit_code == 0
    before = tree_digest(tmp_path / "o.zarr")
    for spelling in (str(tmp_path / "in.zarr"), "./in.zarr/"):
        res = CliRunner().invoke(cli, ["smooth", spelling, "o.zarr", *run])
        assert res.exit_code == 0, res.output
    assert tree_digest(tmp_path / "o.zarr") == before


def test_a_checkpoint_that_fails_to_load_leaves_nothing_and_a_good_one_then_paints(tmp_path):
    from click.testing import CliRunner

    from bigpaint.cli import cli

    from .paint.conftest import make_checkpoint, make_field

    good = make_checkpoint(tmp_path / "good.painter", "halo-painter", grid=16)
    bad = make_checkpoint(tmp_path / "bad.painter", "halo-painter", grid=16)
    weights = Path(bad) / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:100])
    inp = make_field(tmp_path / "in.zarr", (16, 16, 16), 8)
    out = tmp_path / "o.zarr"
    res = CliRunner().invoke(cli, ["paint", "--checkpoint", bad, inp, str(out), "--workers", "1"])
    assert res.exit_code == 2, res.output
    assert "weights.pt" in res.output and not out.exists()
    res = CliRunner().invoke(cli, ["paint", "--checkpoint", good, inp, str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert open_field(str(out)).attrs["bigpaint_complete"]
