"""``bigpaint ics | lpt | simulate``: thin commands over typed YAML configs, one-line errors."""

from __future__ import annotations

import re

import numpy as np
import yaml
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.field import open_field
from bigpaint.ics.grf import gaussian_field_array
from bigpaint.ics.power import linear_power


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def test_ics_command_writes_the_seeded_field(tmp_path):
    cfg = _write(
        tmp_path / "ics.yaml",
        {"output": str(tmp_path / "a.zarr"), "grid": 32, "box_size": 100.0, "seed": 5,
         "tile": 16, "chunks": 12, "redshift": 1.0, "precision": "double"},
    )  # fmt: skip
    res = _run("ics", cfg, "--workers", "1")
    assert res.exit_code == 0, res.output
    got = open_field(str(tmp_path / "a.zarr"))["delta"].values
    want = gaussian_field_array(32, 100.0, seed=5, power=linear_power(), tile=16, redshift=1.0)
    np.testing.assert_allclose(got, want, atol=1e-6 * want.std())
    # --seed and --output override the file; a finished output is refused without --overwrite
    res = _run("ics", cfg, "--workers", "1", "--seed", "6", "--output", str(tmp_path / "b.zarr"))
    assert res.exit_code == 0, res.output
    assert not np.array_equal(open_field(str(tmp_path / "b.zarr"))["delta"].values, got)
    res = _run("ics", cfg, "--workers", "1", "--seed", "7")
    assert res.exit_code == 2 and "already exists" in res.output


def test_lpt_command(tmp_path):
    cfg = _write(
        tmp_path / "lpt.yaml",
        {"output": str(tmp_path / "l.zarr"), "grid": 32, "box_size": 100.0, "seed": 5,
         "tile": 16, "chunks": 16, "block": 16, "particles": str(tmp_path / "p.zarr")},
    )  # fmt: skip
    res = _run("lpt", cfg, "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "2LPT density" in res.output and (tmp_path / "p.zarr").exists()
    ds = open_field(str(tmp_path / "l.zarr"))
    assert ds.attrs["provenance"]["operation"] == "lpt"


def test_bad_configs_give_one_line_errors(tmp_path):
    base = {"output": str(tmp_path / "x.zarr"), "grid": 48, "box_size": 100.0, "seed": 1}
    cases = [
        ({**base}, "not divisible by the noise tile 32"),
        ({**base, "grid": 32, "cosmology": {"Omega_m": -0.3}}, "Omega_m must be in"),
        ({**base, "grid": 32, "cosmology": {"sigma_8": 0}}, "sigma_8 must be positive"),
        ({**base, "grid": 32, "sead": 3}, "unknown key 'sead'.*did you mean 'seed'"),
        ({**base, "grid": 32, "power": {"source": "table"}}, "needs power.table"),
    ]
    for i, (data, match) in enumerate(cases):
        res = _run("ics", _write(tmp_path / f"c{i}.yaml", data), "--workers", "1")
        assert res.exit_code == 2, res.output
        line = res.output.strip()
        assert "\n" not in line and line.startswith("bigpaint: error:")
        assert re.search(match, line), line
    table = tmp_path / "pk.txt"
    table.write_text("0.1 1\n0.05 2\n0.3 3\n0.4 4\n")
    data = {**base, "grid": 32, "power": {"source": "table", "table": str(table)}}
    res = _run("lpt", _write(tmp_path / "t.yaml", data), "--workers", "1")
    assert res.exit_code == 2 and "not strictly increasing" in res.output
    assert not (tmp_path / "x.zarr").exists()


def test_simulate_command(tmp_path):
    cfg = _write(
        tmp_path / "sim.yaml",
        {"output": str(tmp_path / "run"), "particles": 16, "box_size": 32.0, "tile": 16,
         "steps": 3, "device": "cpu", "halo_counts": {"grid": 8}, "chunks": 8},
    )  # fmt: skip
    res = _run("simulate", cfg, "--quiet")
    assert res.exit_code == 0, res.output
    assert "PM steps/s" in res.output and (tmp_path / "run" / "halos.parquet").exists()
    res = _run("simulate", cfg, "--quiet")
    assert res.exit_code == 2 and "overwrite" in res.output
    res = _run("simulate", _write(tmp_path / "bad.yaml", {"output": "x", "particles": 40}))
    assert res.exit_code == 2 and "not divisible by the noise tile" in res.output


def test_example_configs_parse():
    from pathlib import Path

    from bigpaint.config import load_config
    from bigpaint.ics.config import IcsConfig, LptConfig
    from bigpaint.sim.simulate import SimulateConfig

    root = Path(__file__).resolve().parents[2] / "configs"
    load_config(IcsConfig, root / "ics-example.yaml").check_tile()
    load_config(LptConfig, root / "lpt-example.yaml").check_tile()
    sim = load_config(SimulateConfig, root / "simulate-small.yaml")
    assert sim.particles == 128 and sim.force_mesh_factor == 2
