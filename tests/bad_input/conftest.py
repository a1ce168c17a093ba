"""A workspace of real inputs for the bad-input suite, and the one assertion every case makes.

Every case runs in a fresh copy of one workspace: Fields, particles, a checkpoint, a cluster
file and an unrelated file. :func:`refused` hashes every file under the workspace before and
after the call, so a refusal that deletes, truncates or half-writes anything fails, whatever
path the command was given.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.errors import BigpaintError

from ..conftest import tree_digest
from ..paint.conftest import make_checkpoint

#: Box side of the workspace Fields in Mpc/h (16^3 cells of 4 Mpc/h).
BOX = 64.0
META = {"box_size": BOX, "kind": "delta", "units": "1", "redshift": 0.0}


def _build(root: Path) -> None:
    from bigpaint.field import write_array

    rng = np.random.default_rng(7)
    write_array(
        str(root / "in.zarr"), rng.standard_normal((16,) * 3).astype("f4"), chunks=8, meta=META
    )
    write_array(str(root / "other.zarr"), np.ones((8,) * 3, "f4"), chunks=4, meta=META)
    write_array(
        str(root / "ints.zarr"),
        rng.integers(0, 5, (16,) * 3).astype("i4"),
        chunks=8,
        meta={**META, "kind": "halo_count"},
    )
    write_array(
        str(root / "bools.zarr"),
        rng.random((16,) * 3) > 0.5,
        chunks=8,
        meta={**META, "kind": "mask"},
    )
    dist = np.clip(rng.standard_normal((16,) * 3), 0, None).astype("f4")
    write_array(
        str(root / "dist.zarr"),
        dist,
        chunks=8,
        meta={**META, "kind": "distance", "cosmology": {}, "mass_assignment": {"scheme": None}},
    )
    np.save(root / "particles.npy", rng.random((4096, 3)) * BOX)
    make_checkpoint(root / "halo.pt", "halo-painter", grid=16, box=BOX)
    (root / "cluster.yaml").write_text("cluster:\n  kind: local\n  n_workers: 1\n")
    (root / "notes").mkdir()
    (root / "notes" / "keep.txt").write_text("a file bigpaint must never touch\n")


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-input-template")
    _build(root)
    return root


@pytest.fixture
def ws(_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the workspace, also the working directory (for relative spellings)."""
    root = tmp_path / "ws"
    shutil.copytree(_template, root)
    monkeypatch.chdir(root)
    return root


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def _one_line(output: str, pattern: str, *, after_start: bool = False) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    if after_start:  # found while reading the data: the cluster's start line may come first
        lines = [ln for ln in lines if not _LOG_LINE.match(ln)]
    assert len(lines) == 1, f"expected one line, got:\n{output}"
    line = lines[0]
    assert line.startswith("bigpaint: error: "), line
    assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    return line


def refused(ws: Path, argv: list[str], pattern: str, *, after_start: bool = False) -> str:
    """Run ``bigpaint *argv`` in ``ws``: one error line matching ``pattern``, exit 2, and not
    one byte changed under ``ws``. Returns the line.

    Refusals come before any work starts, so the error is the only line, unless
    ``after_start``: a fault only reading the data shows (NaN in a block, a particle outside
    the box) may follow the log lines of the cluster that read it."""
    before = tree_digest(ws)
    res = CliRunner().invoke(cli, [str(a) for a in argv], catch_exceptions=False)
    assert res.exit_code == 2, f"exit {res.exit_code}:\n{res.output}"
    line = _one_line(res.output, pattern, after_start=after_start)
    assert tree_digest(ws) == before, f"{argv} changed files under the workspace"
    return line


def refused_api(
    ws: Path, call: Callable[[], Any], pattern: str, exc: type[BaseException] = BigpaintError
) -> BaseException:
    """Call a library function in ``ws``: raises ``exc`` (a BigpaintError) whose one-line
    message matches ``pattern``, and not one byte changed under ``ws``."""
    before = tree_digest(ws)
    with pytest.raises(exc) as info:
        call()
    assert isinstance(info.value, BigpaintError), type(info.value)
    msg = str(info.value)
    assert "\n" not in msg and re.search(pattern, msg), msg
    assert tree_digest(ws) == before, "the call changed files under the workspace"
    return info.value


def ok(argv: list[str]) -> str:
    """Run ``bigpaint *argv`` expecting success; returns its output."""
    res = CliRunner().invoke(cli, [str(a) for a in argv], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output
