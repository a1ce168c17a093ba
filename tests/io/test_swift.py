"""SWIFT HDF5 snapshots written by the test with SWIFT's layout: units from the Units group
(Mpc, 10^10 Msun, no h) converted to Mpc/h and Msun/h, and the missing-type refusal."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.errors import MetadataError, ShapeError
from bigpaint.field import field_meta, open_field
from bigpaint.io.open import open_particles
from bigpaint.io.swift import SwiftSnapshot
from bigpaint.mesh.deposit import deposit_to_field
from tests.io.snapshot_writers import write_swift

H = 0.7


@pytest.fixture
def snap(tmp_path, rng):
    pos = rng.uniform(0, 50.0, (400, 3))  # comoving Mpc, no h
    vel = rng.normal(0, 200.0, (400, 3))
    ids = np.arange(400) + 1
    path = write_swift(tmp_path / "snapshot_0007.hdf5", pos, vel, ids, box_mpc=50.0, h=H,
                       redshift=1.0, mass_1e10_msun=0.5)  # fmt: skip
    return path, pos, vel, ids


def test_positions_masses_and_velocities_in_engine_units(snap):
    path, pos, vel, ids = snap
    src = open_particles(str(path))
    assert isinstance(src, SwiftSnapshot)
    # 50 Mpc is 35 Mpc/h for h = 0.7
    assert src.box_size == pytest.approx((50.0 * H,) * 3, rel=1e-12)
    (b,) = src.batches()
    got, mass = src.load(b)
    np.testing.assert_allclose(got, pos * H, rtol=1e-12)
    np.testing.assert_allclose(mass, 0.5e10 * H, rtol=1e-12)  # Msun/h
    assert src.mass_units == "Msun/h" and src.redshift == pytest.approx(1.0)
    np.testing.assert_allclose(src.extra(b, "velocities"), vel, rtol=1e-6)
    np.testing.assert_array_equal(src.extra(b, "ids"), ids)
    prov = src.provenance()
    assert prov["format"] == "swift" and prov["length_to_mpc_h"] == pytest.approx(H)
    assert prov["cosmology"]["Omega_b"] == 0.049 and prov["cosmology_missing"] == ["n_s", "sigma_8"]
    with pytest.raises(ShapeError, match=r"SWIFT snapshot.*drop the length unit"):
        open_particles(str(path), length_unit="kpc/h")


def test_told_by_content_not_name(snap, tmp_path):
    path = snap[0]
    renamed = tmp_path / "my_run_output"
    renamed.write_bytes(path.read_bytes())
    assert isinstance(open_particles(str(renamed)), SwiftSnapshot)


def test_deposit_records_the_header(snap, tmp_path):
    path = snap[0]
    out = tmp_path / "d.zarr"
    deposit_to_field(str(path), str(out), nmesh=8)
    meta = field_meta(open_field(str(out)))
    assert meta.redshift == pytest.approx(1.0) and meta.box_size == pytest.approx((35.0,) * 3)
    assert meta.cosmology is None  # n_s and sigma_8 are not in a SWIFT header: no guess
    snapshot = meta.provenance["snapshot"]
    assert snapshot["cosmology_missing"] == ["n_s", "sigma_8"]


def test_missing_particle_type_is_refused_in_one_line(tmp_path, rng):
    path = write_swift(tmp_path / "gas_only.hdf5", rng.uniform(0, 10, (20, 3)),
                       np.zeros((20, 3)), np.arange(20), box_mpc=10.0, h=H, redshift=0.0,
                       mass_1e10_msun=0.1, ptypes=(0,))  # fmt: skip
    with pytest.raises(
        MetadataError, match=r"holds no particles of type 1 \(PartType1\); it holds types 0"
    ):
        open_particles(str(path))
    out = tmp_path / "d.zarr"
    res = CliRunner().invoke(cli, ["deposit", str(path), str(out), "--grid", "8", "--workers", "1"])
    assert res.exit_code == 2
    line = res.output.strip()
    assert "\n" not in line and "no particles of type 1" in line and not out.exists()


@pytest.mark.parametrize("dataset", ["Coordinates", "Masses"])
def test_a_dataset_gone_after_opening_is_named(snap, dataset):
    """A file that loses a dataset between opening and reading is named in one line, where
    the missing read used to surface as an AttributeError on None."""
    import h5py

    path = snap[0]
    src = open_particles(str(path))
    with h5py.File(path, "r+") as f:
        del f["PartType1"][dataset]
    with pytest.raises(MetadataError, match=rf"PartType1/{dataset} is gone since the snapshot"):
        src.load(src.batches()[0])
