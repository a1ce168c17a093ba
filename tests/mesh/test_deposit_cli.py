"""``bigpaint deposit``: a real run, and one clear line per bad input with nothing written."""

from __future__ import annotations

import os
import re

import numpy as np
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.field import data_var, field_meta, open_field
from bigpaint.mesh.assign import deposit

from ..io.test_gadget import write_gadget
from ..test_cli import _not_logged


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    lines = _not_logged(result.output)  # progress lines may come before the error
    assert len(lines) == 1, result.output
    assert lines[0].startswith("bigpaint: error: ") and re.search(pattern, lines[0]), lines[0]


def test_deposit_npy_and_snapshot(tmp_path, rng):
    pos = rng.uniform(0, 100.0, (3000, 3)).astype("f4")
    np.save(tmp_path / "p.npy", pos)
    out = str(tmp_path / "d.zarr")
    res = run("deposit", str(tmp_path / "p.npy"), out, "--grid", "10", "--chunks", "4",
              "--scheme", "tsc", "--box-size", "100", "--workers", "1")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "from 3000 particles" in res.output
    m = deposit(pos, 10, 100.0, scheme="tsc", dtype="f8")
    np.testing.assert_allclose(data_var(open_field(out)).values, m / m.mean() - 1, atol=1e-6)
    assert field_meta(open_field(out)).provenance["config"]["scheme"] == "tsc"

    write_gadget(tmp_path / "snap", pos.astype(np.float64) * 1000.0, box=100_000.0, nfiles=2)
    out2 = str(tmp_path / "g.zarr")
    res = run("deposit", str(tmp_path / "snap.0.hdf5"), out2, "--grid", "10", "--quantity",
              "mass", "--interlace", "--workers", "1")  # fmt: skip
    assert res.exit_code == 0, res.output
    want = 0.65 * deposit(pos.astype(np.float64), 10, 100.0, interlaced=True, dtype="f8")
    np.testing.assert_allclose(data_var(open_field(out2)).values, want, rtol=1e-5, atol=1e-5)


def test_bad_inputs_print_one_line_and_write_nothing(tmp_path, rng):
    pos = rng.uniform(0, 100.0, (500, 3))
    bad = pos.copy()
    bad[42] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "p.npy", pos)
    np.save(tmp_path / "t.npy", pos.T.copy())
    write_gadget(tmp_path / "snap", pos * 1000.0, box=100_000.0)
    before = sorted(os.listdir(tmp_path))
    out = str(tmp_path / "o.zarr")
    common = ("--grid", "8", "--workers", "1")
    one_line_error(run("deposit", str(tmp_path / "nan.npy"), out, "--box-size", "100", *common),
                   r"1 of 500 particles have a NaN .* particle 42")  # fmt: skip
    one_line_error(run("deposit", str(tmp_path / "t.npy"), out, "--box-size", "100", *common),
                   r"shape \(N, 3\), got \(3, 500\); transpose")  # fmt: skip
    one_line_error(run("deposit", str(tmp_path / "p.npy"), out, *common), r"--box-size")
    one_line_error(run("deposit", str(tmp_path / "p.npy"), out, "--box-size", "50", *common),
                   r"outside the box \[0, 50\] .*--wrap")  # fmt: skip
    one_line_error(run("deposit", str(tmp_path / "snap.hdf5"), out, "--box-size", "1000",
                       *common), r"box size 1000 Mpc/h was given but the snapshot header")  # fmt: skip
    one_line_error(run("deposit", str(tmp_path / "p.npy"), out, "--box-size", "100",
                       "--chunks", "9", *common), r"chunk 9 along axis 0 is larger than the grid of 8 voxels; give chunks <= 8")  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == before
