"""Gadget HDF5 snapshots written by the test itself: single and multi-file, units, checks."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from bigpaint.errors import FieldNotFoundError, MetadataError, ShapeError
from bigpaint.field import data_var, field_meta, open_field
from bigpaint.io.gadget import GadgetSnapshot, gadget_files
from bigpaint.io.open import open_particles
from bigpaint.mesh.assign import deposit
from bigpaint.mesh.deposit import deposit_to_field


def write_gadget(
    stem: Path,
    pos: np.ndarray,
    *,
    box: float,
    nfiles: int = 1,
    masses: np.ndarray | None = None,
    mass_table: float = 0.65,
    redshift: float = 0.5,
    unit_length_cm: float | None = None,
    total_override: int | None = None,
    dtype: str = "f4",
) -> list[Path]:
    """Write ``pos`` (snapshot length units) as PartType1 of a Gadget HDF5 snapshot.

    One file is ``stem.hdf5``; several are ``stem.0.hdf5`` ... with the particles split
    unevenly (the first file gets the remainder) and a gas type with a few particles so the
    counts per type differ.
    """
    n = len(pos)
    splits = np.array_split(np.arange(n), nfiles)
    paths = []
    for i, idx in enumerate(splits):
        path = stem.with_name(stem.name + (".hdf5" if nfiles == 1 else f".{i}.hdf5"))
        with h5py.File(path, "w") as f:
            h = f.create_group("Header")
            this = np.zeros(6, np.uint32)
            this[1] = len(idx)
            this[0] = 3
            total = np.zeros(6, np.uint32)
            total[1] = n if total_override is None else total_override
            total[0] = 3 * nfiles
            h.attrs["NumPart_ThisFile"] = this
            h.attrs["NumPart_Total"] = total
            h.attrs["NumPart_Total_HighWord"] = np.zeros(6, np.uint32)
            table = np.zeros(6)
            table[1] = 0.0 if masses is not None else mass_table
            h.attrs["MassTable"] = table
            h.attrs["BoxSize"] = box
            h.attrs["Redshift"] = redshift
            h.attrs["Time"] = 1 / (1 + redshift)
            h.attrs["NumFilesPerSnapshot"] = nfiles
            h.attrs["Omega0"] = 0.3175
            h.attrs["HubbleParam"] = 0.6711
            if unit_length_cm is not None:
                f.create_group("Parameters").attrs["UnitLength_in_cm"] = unit_length_cm
            f.create_group("PartType0").create_dataset("Coordinates", data=np.zeros((3, 3), dtype))
            g = f.create_group("PartType1")
            g.create_dataset("Coordinates", data=pos[idx].astype(dtype))
            g.create_dataset("ParticleIDs", data=idx.astype(np.uint64))
            if masses is not None:
                g.create_dataset("Masses", data=masses[idx].astype(dtype))
        paths.append(path)
    return paths


@pytest.fixture
def kpc_positions(rng: np.random.Generator) -> np.ndarray:
    pos = rng.uniform(0, 100_000.0, (5000, 3)).astype("f4")  # kpc/h in a 100 Mpc/h box
    pos[0] = 100_000.0  # exactly BoxSize: wraps to 0
    pos[1] = 0.0
    return pos


def test_single_file_snapshot_reads_in_mpc(tmp_path, kpc_positions):
    write_gadget(tmp_path / "snap_004", kpc_positions, box=100_000.0)
    snap = GadgetSnapshot(str(tmp_path / "snap_004.hdf5"), batch_size=1234)
    assert snap.n_particles == 5000
    assert snap.box_size == (100.0, 100.0, 100.0)
    assert snap.redshift == 0.5
    assert snap.particle_mass == 0.65 and not snap.has_masses
    assert snap.mass_units == "1e+10 Msun/h"
    batches = snap.batches()
    assert [b.count for b in batches] == [1234, 1234, 1234, 1234, 64]
    got = np.concatenate([snap.load(b)[0] for b in batches])
    np.testing.assert_array_equal(got, kpc_positions.astype(np.float64) * 1e-3)
    assert snap.provenance()["header"]["HubbleParam"] == 0.6711


@pytest.mark.parametrize("form", ["file0", "file2", "stem", "directory"])
def test_multi_file_snapshot_in_any_form(tmp_path, kpc_positions, form):
    d = tmp_path / "snapdir_004"
    d.mkdir()
    write_gadget(d / "snap_004", kpc_positions, box=100_000.0, nfiles=4)
    path = {
        "file0": d / "snap_004.0.hdf5",
        "file2": d / "snap_004.2.hdf5",
        "stem": d / "snap_004",
        "directory": d,
    }[form]
    snap = open_particles(str(path), batch_size=700)
    assert isinstance(snap, GadgetSnapshot)
    assert len(snap.files) == 4 and snap.counts == (1250, 1250, 1250, 1250)
    batches = snap.batches()
    assert all(b.count <= 700 for b in batches)  # batches never span files
    assert [b.start for b in batches] == list(np.cumsum([0] + [b.count for b in batches])[:-1])
    got = np.concatenate([snap.load(b)[0] for b in batches])
    np.testing.assert_array_equal(got, kpc_positions.astype(np.float64) * 1e-3)


def test_per_particle_masses_and_mpc_units(tmp_path, rng):
    pos = rng.uniform(0, 50.0, (800, 3))
    m = rng.uniform(1, 2, 800)
    write_gadget(tmp_path / "s", pos, box=50.0, nfiles=2, masses=m, unit_length_cm=3.085678e24,
                 dtype="f8")  # fmt: skip
    snap = open_particles(str(tmp_path / "s.0.hdf5"))
    assert snap.box_size == (50.0,) * 3 and snap.has_masses and snap.particle_mass is None
    loaded = [snap.load(b) for b in snap.batches()]
    np.testing.assert_array_equal(np.concatenate([p for p, _ in loaded]), pos)
    np.testing.assert_array_equal(np.concatenate([w for _, w in loaded]), m)
    with pytest.raises(MetadataError, match=r"disagrees with .*UnitLength_in_cm"):
        open_particles(str(tmp_path / "s.0.hdf5"), length_unit="kpc/h")


def test_deposit_from_multi_file_snapshot_equals_in_memory(tmp_path, kpc_positions):
    write_gadget(tmp_path / "snap", kpc_positions, box=100_000.0, nfiles=3)
    url = str(tmp_path / "out.zarr")
    deposit_to_field(str(tmp_path / "snap.1.hdf5"), url, nmesh=12, chunks=5, quantity="mass",
                     batch_size=600)  # fmt: skip
    ds = open_field(url)
    want = 0.65 * deposit(kpc_positions.astype(np.float64) * 1e-3, 12, 100.0, dtype="f8")
    np.testing.assert_allclose(data_var(ds).values, want, rtol=1e-6, atol=1e-6)
    meta = field_meta(ds)
    assert meta.units == "1e+10 Msun/h" and meta.redshift == 0.5 and meta.box_size == (100.0,) * 3
    assert meta.provenance["snapshot"]["n_files"] == 3


def test_box_size_must_agree_with_the_header(tmp_path, kpc_positions):
    write_gadget(tmp_path / "snap", kpc_positions, box=100_000.0)
    out = tmp_path / "o.zarr"
    with pytest.raises(MetadataError, match=r"box size 1e\+06 Mpc/h was given but the snapshot"):
        deposit_to_field(str(tmp_path / "snap.hdf5"), str(out), nmesh=8, box_size=1e6)
    # the same box in Mpc/h is accepted
    deposit_to_field(str(tmp_path / "snap.hdf5"), str(out), nmesh=8, box_size=100.0)
    assert open_field(str(out)).attrs["box_size"] == [100.0, 100.0, 100.0]


def test_wrong_units_are_caught_as_out_of_box(tmp_path, kpc_positions):
    write_gadget(tmp_path / "snap", kpc_positions, box=100_000.0)
    # a kpc/h snapshot read as Mpc/h: positions up to 1e5 in a 1e5 box pass, but telling it
    # the box is 100 disagrees with the header first
    with pytest.raises(MetadataError):
        open_particles(str(tmp_path / "snap.hdf5"), length_unit="Mpc/h", box_size=100.0)


def test_broken_snapshot_sets_are_refused(tmp_path, kpc_positions):
    d = tmp_path / "a"
    d.mkdir()
    files = write_gadget(d / "snap", kpc_positions, box=100_000.0, nfiles=3)
    os.remove(files[1])
    with pytest.raises(MetadataError, match=r"missing file numbers \[1\]"):
        gadget_files(files[0])
    os.remove(files[2])
    with pytest.raises(MetadataError, match="NumFilesPerSnapshot = 3 but 1 files"):
        GadgetSnapshot(str(files[0]))
    d = tmp_path / "b"
    d.mkdir()
    write_gadget(d / "snap", kpc_positions, box=100_000.0, nfiles=2, total_override=4999)
    with pytest.raises(MetadataError, match="NumPart_Total says 4999"):
        GadgetSnapshot(str(d / "snap.0.hdf5"))
    with pytest.raises(FieldNotFoundError, match="no snapshot"):
        gadget_files(tmp_path / "nothing.hdf5")
    with h5py.File(tmp_path / "plain.hdf5", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(MetadataError, match="no 'Header' group"):
        GadgetSnapshot(str(tmp_path / "plain.hdf5"))
    with pytest.raises(ShapeError, match="masses come from the snapshot"):
        open_particles(str(d / "snap.0.hdf5"), masses=np.ones(5000))
