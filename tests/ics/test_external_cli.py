"""``bigpaint ics | lpt`` with ``initial_conditions``: the twin from the CLI, and each bad
input refused in one line before anything is written."""

from __future__ import annotations

import re

import numpy as np
import yaml
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.field import open_field
from bigpaint.ics.noise import white_noise, white_noise_array
from bigpaint.ics.power import linear_power

N, BOX = 16, 64.0


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def test_lpt_from_exported_white_noise_equals_the_seeded_twin(tmp_path):
    base = {"grid": N, "box_size": BOX, "tile": 8, "chunks": 8, "block": 8}
    np.save(tmp_path / "w.npy", white_noise_array((N,) * 3, (slice(0, N),) * 3, seed=2, tile=8))
    seeded = _write(tmp_path / "a.yaml", {**base, "output": str(tmp_path / "a.zarr"), "seed": 2})
    ext = _write(
        tmp_path / "b.yaml",
        {**base, "output": str(tmp_path / "b.zarr"),
         "initial_conditions": {"kind": "white_noise", "path": str(tmp_path / "w.npy"),
                                "lattice": "centres"}},
    )  # fmt: skip
    for cfg in (seeded, ext):
        res = _run("lpt", cfg, "--workers", "1")
        assert res.exit_code == 0, res.output
    assert "from white_noise" in res.output
    a = open_field(str(tmp_path / "a.zarr"))["delta"].values
    b = open_field(str(tmp_path / "b.zarr"))["delta"].values
    np.testing.assert_array_equal(a, b)
    prov = open_field(str(tmp_path / "b.zarr")).attrs["provenance"]["lpt"]
    assert prov["initial_conditions"]["kind"] == "white_noise"


def test_bad_initial_conditions_are_refused_in_one_line(tmp_path):
    np.save(tmp_path / "lin.npy", np.zeros((N,) * 3))
    np.save(tmp_path / "small.npy", np.zeros((8,) * 3))
    white_noise(str(tmp_path / "w.zarr"), grid=N, box_size=32.0, seed=1, tile=8, chunks=8)
    power = linear_power()
    assert power is not None
    out = tmp_path / "out.zarr"
    base = {"output": str(out), "grid": N, "box_size": BOX}
    lin = {"kind": "linear_density", "path": str(tmp_path / "lin.npy"), "lattice": "centres"}
    cases = [
        ({"kind": "white_noise", "path": str(tmp_path / "w.zarr")}, "box 32 Mpc/h but the config"),
        ({**lin, "path": str(tmp_path / "small.npy"), "redshift": 0}, "8\\^3 grid but the config"),
        ({"kind": "linear_density", "path": str(tmp_path / "w.zarr")}, "not a linear density"),
        ({**lin, "redshift": 20.0}, "state the growth normalisation"),
        ({**lin, "redshift": 0.0, "growth": -1.0}, "growth must be in"),
        ({"kind": "linear_density", "path": str(tmp_path / "nope.npy")}, "no initial conditions"),
    ]
    for cmd in ("lpt", "ics"):
        for i, (ics, match) in enumerate(cases):
            res = _run(
                cmd, _write(tmp_path / f"{cmd}{i}.yaml", {**base, "initial_conditions": ics})
            )
            assert res.exit_code == 2, res.output
            line = res.output.strip()
            assert "\n" not in line and line.startswith("bigpaint: error:"), line
            assert re.search(match, line), line
    res = _run(
        "lpt", _write(tmp_path / "both.yaml", {**base, "seed": 1, "initial_conditions": lin})
    )
    assert res.exit_code == 2 and "not both" in res.output
    res = _run("lpt", _write(tmp_path / "none.yaml", base))
    assert res.exit_code == 2 and "seed is required" in res.output
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith((".yaml", ".npy")))
    assert left == ["w.zarr"]  # nothing written: no output, no scratch
