"""The CLI: help everywhere, real runs, and one clear line per bad input with nothing damaged."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.field import create_field, open_field, write_array

from .conftest import META, tree_digest


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _not_logged(text: str) -> list[str]:
    """The lines of ``text`` that are not time-stamped log lines (dashboard link, progress)."""
    import re

    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
    return [ln for ln in text.splitlines() if ln.strip() and not stamp.match(ln)]


def _one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    lines = _not_logged(result.output)
    assert len(lines) == 1, result.output
    assert lines[0].startswith("bigpaint: error: ")
    assert "Traceback" not in result.output
    import re

    assert re.search(pattern, lines[0]), lines[0]


def _all_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if hasattr(cmd, "commands"):
            yield from _all_commands(cmd, (*prefix, name))


def test_help_for_every_subcommand():
    assert run("--help").exit_code == 0
    names = list(_all_commands(cli))
    assert {("info",), ("smooth",), ("quickstart",)} <= set(names)
    for path in names:
        res = run(*path, "--help")
        assert res.exit_code == 0 and "Usage:" in res.output, path


def test_console_script_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "bigpaint", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "version" in out.stdout


def test_info_prints_metadata_chunks_state_size(field16):
    res = run("info", field16)
    assert res.exit_code == 0
    for text in (
        "state     complete",
        "chunks    (6, 5, 5)",
        "box       [100.0, 100.0, 100.0] Mpc/h",
        "16.0 KiB uncompressed",
        "delta",
    ):
        assert text in res.output
    meta = json.loads(run("info", "--json", field16).output)
    assert meta["blocks_total"] == 3 * 4 * 4 and meta["complete"] is True


def test_smooth_runs_and_matches_scipy(field16, box16, tmp_path):
    out = str(tmp_path / "s.zarr")
    res = run("smooth", field16, out, "--sigma-mpc", "9.375", "--workers", "1")
    assert res.exit_code == 0, res.output
    ds = open_field(out)
    ref = ndi.gaussian_filter(box16, 9.375 / 6.25, mode="wrap")
    np.testing.assert_array_equal(ds["delta"].values, ref)
    assert ds.attrs["provenance"]["operation"] == "smooth"
    assert ds.attrs["provenance"]["inputs"] == [field16]
    # the same command again: output complete, nothing to redo, nothing changed
    before = tree_digest(out)
    assert run("smooth", field16, out, "--sigma-mpc", "9.375", "--workers", "1").exit_code == 0
    assert tree_digest(out) == before


@pytest.fixture
def existing(tmp_path, field16):
    """An input and an unrelated finished output that must survive every bad call."""
    other = write_array(
        str(tmp_path / "other.zarr"), np.ones((8, 8, 8), "f4"), chunks=4, meta=META
    ).url
    return {"in": field16, "other": other, "digests": {p: tree_digest(p) for p in (field16, other)}}


def _untouched(existing) -> None:
    for p, d in existing["digests"].items():
        assert tree_digest(p) == d, f"{p} was modified"


def test_missing_input(existing, tmp_path):
    res = run("smooth", str(tmp_path / "nope.zarr"), str(tmp_path / "o.zarr"), "--sigma-mpc", "1")
    _one_line_error(res, r"no Field at .*nope\.zarr: the path does not exist")
    assert not (tmp_path / "o.zarr").exists()
    _untouched(existing)


def test_not_a_field(existing, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    res = run("smooth", str(tmp_path / "notes"), str(tmp_path / "o.zarr"), "--sigma-mpc", "1")
    _one_line_error(res, r"is not a Field")
    res = run("info", str(tmp_path / "notes"))
    _one_line_error(res, r"is not a Field")
    _untouched(existing)


def test_unfinished_input(existing, tmp_path):
    w = create_field(str(tmp_path / "half.zarr"), shape=(8, 8, 8), chunks=4, meta=META)
    w.write_block((0, 0, 0), np.zeros((4, 4, 4), "f4"))
    res = run("smooth", w.url, str(tmp_path / "o.zarr"), "--sigma-mpc", "1")
    _one_line_error(res, r"unfinished \(1/8 blocks written\) and cannot be an input")
    assert not (tmp_path / "o.zarr").exists()
    assert "UNFINISHED" in run("info", w.url).output
    _untouched(existing)


def test_nan_input_leaves_no_output(existing, tmp_path):
    a = np.zeros((8, 8, 8), "f4")
    a[5, 6, 7] = np.inf
    bad = write_array(str(tmp_path / "nan.zarr"), a, chunks=4, meta=META).url
    res = run("smooth", bad, str(tmp_path / "o.zarr"), "--sigma-mpc", "10", "--workers", "1")
    _one_line_error(res, r"1 NaN/inf values in block \(1, 1, 1\) \(first at voxel \(5, 6, 7\)\)")
    assert not (tmp_path / "o.zarr").exists()
    _untouched(existing)


def test_wrong_dimensionality(existing, tmp_path):
    url = str(tmp_path / "flat.zarr")
    write_array(url, np.zeros((4, 4, 4), "f4"), chunks=4, meta=META)
    g = zarr.open_group(url, mode="r+")
    del g["delta"]
    g.create_array("delta", shape=(4, 4), chunks=(4, 4), dtype="f4", dimension_names=("x", "y"))
    res = run("smooth", url, str(tmp_path / "o.zarr"), "--sigma-mpc", "1")
    _one_line_error(res, r"has 2 dimensions; a Field is 3-D")
    _untouched(existing)


def test_config_typo(existing, tmp_path):
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text("cluster:\n  kind: local\n  threads_per_wroker: 2\n")
    res = run(
        "smooth",
        existing["in"],
        str(tmp_path / "o.zarr"),
        "--sigma-mpc",
        "1",
        "--cluster",
        str(cfg),
    )
    _one_line_error(
        res, r"unknown key 'cluster.threads_per_wroker' \(did you mean 'threads_per_worker'\?\)"
    )
    assert not (tmp_path / "o.zarr").exists()
    _untouched(existing)


def test_negative_sigma(existing, tmp_path):
    res = run(
        "smooth", existing["in"], str(tmp_path / "o.zarr"), "--sigma-mpc", "-2", "--workers", "1"
    )
    _one_line_error(res, r"sigma \(Mpc/h\) must be finite and >= 0, got \(-2.0,\)")
    assert not (tmp_path / "o.zarr").exists()
    _untouched(existing)


def test_output_exists_refused_unless_overwrite(existing, tmp_path):
    res = run("smooth", existing["in"], existing["other"], "--sigma-mpc", "1", "--workers", "1")
    _one_line_error(res, r"output .*other\.zarr already exists .*pass --overwrite")
    _untouched(existing)
    res = run("smooth", existing["in"], existing["in"], "--sigma-mpc", "1", "--workers", "1")
    _one_line_error(res, r"is the same store as input")
    _untouched(existing)
    res = run(
        "smooth",
        existing["in"],
        existing["other"],
        "--sigma-mpc",
        "1",
        "--workers",
        "1",
        "--overwrite",
    )
    assert res.exit_code == 0
    assert open_field(existing["other"])["delta"].shape == (16, 16, 16)


def test_bad_chunks_option(existing, tmp_path):
    res = run(
        "smooth", existing["in"], str(tmp_path / "o.zarr"), "--sigma-mpc", "1", "--chunks", "4,x"
    )
    _one_line_error(res, r"--chunks must be")
    _untouched(existing)


def test_debug_shows_traceback(tmp_path):
    from bigpaint.errors import FieldNotFoundError

    with pytest.raises(FieldNotFoundError):
        CliRunner().invoke(
            cli, ["--debug", "info", str(tmp_path / "x.zarr")], catch_exceptions=False
        )


@pytest.mark.slow
def test_quickstart_small(tmp_path):
    """Every stage of the embedded quickstart on a 32^3 big box with 3 training steps
    (tests/pipeline runs every stage kind on tiny boxes in the fast suite)."""
    out = tmp_path / "qs"
    args = ("quickstart", "--out", str(out), "--grid", "32", "--chunks", "16", "--train-steps", "3")
    res = run(*args, "--workers", "1")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["stages"]["truth"]["n_halos"] > 0
    assert -1 <= summary["stages"]["power"]["mean r_c(k <= 0.2)"] <= 1
    for png in ("slices.png", "power-power.png", "bispectrum-bispectrum.png", "hmf-hmf.png"):
        assert (out / "report" / png).stat().st_size > 1000
    assert "bigpaint quickstart report" in (out / "report" / "index.html").read_text()
    again = run(*args, "--workers", "1")
    assert again.exit_code == 0 and "0 stages run" in again.output, again.output


def test_worker_side_error_is_one_line_on_real_stderr(tmp_path):
    """A block failing inside a worker process must not add worker tracebacks to stderr."""
    a = np.zeros((8, 8, 8), "f4")
    a[1, 2, 3] = np.nan
    bad = write_array(str(tmp_path / "n.zarr"), a, chunks=4, meta=META).url
    out = tmp_path / "o.zarr"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "bigpaint",
            "smooth",
            bad,
            str(out),
            "--sigma-mpc",
            "1",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert _not_logged(res.stderr) == [
        "bigpaint: error: input holds 1 NaN/inf values in block (0, 0, 0) (first at voxel (1, 2, 3)); "
        "clean the input field first"
    ]
    assert not out.exists()
