"""A small simulate run handed over as a user would: a Gadget binary snapshot (formats 1 and
2, one file and split over two) and Rockstar/AHF text catalogues written by the test. Through
`bigpaint fof`, `bigpaint bin` and deposit they give back simulate's own catalogue, count
Fields and density."""

from __future__ import annotations

import re

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.field import data_var, field_meta, open_field
from bigpaint.mass_bins import mass_bins_of
from bigpaint.mesh.deposit import deposit_to_field
from bigpaint.sim.fof import read_catalogue
from bigpaint.sim.simulate import simulate
from tests.conftest import tree_digest
from tests.io.snapshot_writers import write_ahf, write_gadget_binary, write_rockstar

BOX = 64.0
BINS = [1e12, 1e13, 1e14, 1e16]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    cfg = {"output": str(root / "run"), "particles": 32, "box_size": BOX, "tile": 16, "seed": 3,
           "z_init": 19.0, "steps": 8, "device": "cpu", "fof": {"min_members": 10},
           "halo_counts": {"grid": 16, "mass_bins": BINS}, "protohalo": {"min_particles": 20},
           "chunks": 12}  # fmt: skip
    simulate(cfg)
    g = zarr.open_group(str(root / "run" / "particles.zarr"), mode="r")
    parts = g["positions"][:], g["velocities"][:], g["ids"][:]
    cat, meta = read_catalogue(root / "run" / "halos.parquet")
    return root, parts, cat, meta


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _snapshot(root, parts, meta, *, fmt, nfiles, endian):
    pos, vel, ids = parts
    stem = root / f"snap_{fmt}_{nfiles}_{'big' if endian == '>' else 'little'}"
    write_gadget_binary(stem, pos, vel, ids, box=BOX, redshift=0.0, nfiles=nfiles, fmt=fmt,
                        endian=endian, particle_mass=meta["particle_mass"] / 1e10)  # fmt: skip
    return stem


@pytest.mark.parametrize(("fmt", "nfiles", "endian"), [(1, 1, "<"), (2, 2, ">")])
def test_fof_of_the_snapshot_equals_simulate_catalogue(run, fmt, nfiles, endian):
    root, parts, cat, meta = run
    stem = _snapshot(root, parts, meta, fmt=fmt, nfiles=nfiles, endian=endian)
    out = root / f"fof_{fmt}.parquet"
    res = _cli("fof", stem if nfiles == 1 else f"{stem}.1", out, "--length-unit", "Mpc/h",
               "--min-members", 10)  # fmt: skip
    assert res.exit_code == 0, res.output
    mine, mine_meta = read_catalogue(out)
    assert mine.column_names == cat.column_names and mine.num_rows == cat.num_rows > 20
    exact = [c for c in cat.column_names if c in ("id", "halo_id", "n_particles", "members")]
    assert len(exact) == 3
    for col in exact:
        assert mine[col].to_pylist() == cat[col].to_pylist(), col
    np.testing.assert_allclose(mine["mass"].to_numpy(), cat["mass"].to_numpy(), rtol=1e-12)
    for col in ("x", "y", "z"):  # the snapshot holds simulate's float32 particles
        np.testing.assert_allclose(mine[col].to_numpy(), cat[col].to_numpy(), atol=1e-5)
    for col in ("vx", "vy", "vz"):
        np.testing.assert_allclose(mine[col].to_numpy(), cat[col].to_numpy(), rtol=1e-5, atol=1e-3)
    for key in ("box_size", "particle_mass", "redshift", "linking_length_b", "min_members",
                "n_particles"):  # fmt: skip
        assert mine_meta[key] == pytest.approx(meta[key], rel=1e-12), key
    assert mine_meta["header_cosmology"]["Omega_m"] == pytest.approx(0.3175)


def test_bin_of_rockstar_and_ahf_equals_simulate_counts(run):
    root, _, cat, _ = run
    want = open_field(str(root / "run" / "halo_counts.zarr"))
    rock = write_rockstar(root / "out_0.list", cat, box=BOX, scale=1.0)
    ahf = write_ahf(root / "snap.z0.000.AHF_halos", cat)
    for name, path, extra in (("rock", rock, []), ("ahf", ahf, ["--box", BOX])):
        out = root / f"{name}_counts.zarr"
        res = _cli("bin", path, out, "--grid", 16, "--mass-bins", ",".join(map(str, BINS)), *extra)
        assert res.exit_code == 0, res.output
        got = open_field(str(out))
        np.testing.assert_array_equal(data_var(got).values, data_var(want).values)
        gm, wm = field_meta(got), field_meta(want)
        assert (gm.kind, gm.units, gm.box_size) == (wm.kind, wm.units, wm.box_size)
        assert gm.mass_assignment == wm.mass_assignment
        np.testing.assert_array_equal(mass_bins_of(gm), mass_bins_of(wm))
        assert gm.provenance["format"] == ("rockstar" if name == "rock" else "ahf")
    assert "mass column 'Mvir'" in res.output or "Mvir" in field_meta(got).provenance["mass_column"]
    assert field_meta(open_field(str(root / "rock_counts.zarr"))).redshift == 0.0


def test_deposit_of_the_binary_snapshot_equals_the_npy(run):
    root, parts, _, meta = run
    stem = _snapshot(root, parts, meta, fmt=2, nfiles=2, endian="<")
    np.save(root / "pos.npy", parts[0])
    a = deposit_to_field(f"{stem}.0", str(root / "bin.zarr"), nmesh=16, length_unit="Mpc/h")
    b = deposit_to_field(str(root / "pos.npy"), str(root / "npy.zarr"), nmesh=16, box_size=BOX)
    np.testing.assert_allclose(data_var(a.open()).values, data_var(b.open()).values, atol=1e-6)
    gm = field_meta(a.open())
    assert gm.redshift == 0.0 and gm.provenance["snapshot"]["format"] == "gadget-binary"


def test_bad_catalogues_and_jobs_are_refused_in_one_line(run, tmp_path):
    _, parts, cat, meta = run
    nomass = tmp_path / "nomass.list"
    nomass.write_text("#ID X Y Z Vmax\n1 1.0 2.0 3.0 100\n")
    stem = _snapshot(tmp_path, parts, meta, fmt=1, nfiles=1, endian="<")
    np.save(tmp_path / "pos.npy", 2.0 * parts[0].astype(np.float64))
    rock = write_rockstar(tmp_path / "out_0.list", cat, box=BOX, scale=1.0)
    before = tree_digest(tmp_path)
    cases = [
        (("bin", nomass, tmp_path / "c.zarr", "--grid", 8, "--box", BOX, "--mass-bins", "1e12,1e14"),
         r"has no mass column \(columns found: ID, X, Y, Z, Vmax\)"),
        (("fof", stem, tmp_path / "f.parquet", "--length-unit", "Mpc/h", "--memory-limit", "1MB"),
         r"FoF of 32768 particles needs about .* GiB in memory, more than the .* --memory-limit"),
        (("fof", tmp_path / "pos.npy", tmp_path / "f.parquet", "--box-size", BOX),
         r"pos.npy records no particle mass; give --particle-mass in Msun/h"),
        (("fof", tmp_path / "pos.npy", tmp_path / "f.parquet", "--box-size", 0.5 * BOX,
          "--particle-mass", meta["particle_mass"]),
         r"positions reach .* far outside the 32 Mpc/h box: check the length unit"),
        (("bin", rock, tmp_path / "c.zarr", "--grid", 8, "--box", 100,
          "--mass-bins", "1e12,1e14"), r"box size 100 Mpc/h was given but"),
    ]  # fmt: skip
    for args, match in cases:
        res = _cli(*args)
        assert res.exit_code == 2, res.output
        line = res.output.strip()
        assert "\n" not in line and line.startswith("bigpaint: error:"), line
        assert re.search(match, line), line
    assert tree_digest(tmp_path) == before


def test_fof_of_simulate_particle_store_needs_and_takes_the_particle_mass(run):
    root, _, cat, meta = run
    out = root / "fof_zarr.parquet"
    store = root / "run" / "particles.zarr"
    res = _cli("fof", store, out, "--min-members", 10, "--particle-mass", meta["particle_mass"])
    assert res.exit_code == 0, res.output
    mine, _ = read_catalogue(out)
    assert mine["members"].to_pylist() == cat["members"].to_pylist()
    np.testing.assert_allclose(mine["mass"].to_numpy(), cat["mass"].to_numpy(), rtol=1e-12)
    res = _cli("fof", store, out, "--min-members", 10, "--particle-mass", meta["particle_mass"])
    assert res.exit_code == 2 and "already exists" in res.output


def test_lpt_twin_from_the_run_gadget_ic_file_equals_simulate_twin(run):
    """The run's ICs handed over as a Gadget binary IC file (kpc/h, float32, the ids shuffled
    as a parallel IC code writes them) give, through ``bigpaint lpt``, simulate's own 2LPT
    density to the precision of float32 positions."""
    import yaml

    from bigpaint.ics.lpt import lpt_particles_array
    from bigpaint.ics.power import linear_power
    from bigpaint.sim.simulate import SimulateConfig

    root, _, _, meta = run
    cfg = SimulateConfig.model_validate(
        {"output": str(root / "run"), "particles": 32, "box_size": BOX, "tile": 16, "seed": 3,
         "z_init": 19.0})  # fmt: skip
    lp = linear_power(cfg.cosmology, cfg.power)
    pos, vel, ids = lpt_particles_array(32, BOX, seed=3, power=lp, redshift=19.0, tile=16)
    order = np.random.default_rng(1).permutation(len(ids))
    stem = root / "ics_gadget"
    write_gadget_binary(stem, 1000.0 * pos[order], vel[order], ids[order] + 1, box=1000.0 * BOX,
                        redshift=19.0, particle_mass=meta["particle_mass"] / 1e10)  # fmt: skip
    spec = {
        "output": str(root / "twin.zarr"), "grid": 32, "box_size": BOX, "redshift": 0.0,
        "chunks": 16, "block": 16, "cosmology": cfg.cosmology.model_dump(),
        "initial_conditions": {"kind": "particles", "path": str(stem), "growth": "engine"},
    }  # fmt: skip
    (root / "twin.yaml").write_text(yaml.safe_dump(spec))
    res = _cli("lpt", root / "twin.yaml")
    assert res.exit_code == 0, res.output
    got = data_var(open_field(str(root / "twin.zarr"))).values
    want = data_var(open_field(str(root / "run" / "lpt_density.zarr"))).values
    r = np.corrcoef(got.ravel(), want.ravel())[0, 1]
    print(f"twin from the IC file: r = {r:.7f}, max |diff| / max = "
          f"{np.abs(got - want).max() / np.abs(want).max():.2e}")  # fmt: skip
    assert r > 0.99999, r  # measured 0.9999955: float32 kpc/h positions, 8 Nyquist-only modes
    assert np.abs(got - want).max() < 0.01 * np.abs(want).max()  # measured 2.6e-3
