"""Halo catalogue readers: each format to Msun/h and Mpc/h, the mass column chosen by name in
file order, unit overrides, and the refusals."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bigpaint.catalogs import bin_halos, fof_memory_bytes, read_halos, snapshot_halos
from bigpaint.errors import MetadataError, TooLargeError
from bigpaint.field import data_var, field_meta, open_field
from bigpaint.io.open import open_particles


@pytest.fixture
def halos(rng):
    n = 50
    return 10 ** rng.uniform(12, 15, n), rng.uniform(0, 100.0, (n, 3))


def test_hdf5_with_a_position_array_and_unit_overrides(tmp_path, halos):
    mass, pos = halos
    path = tmp_path / "groups.h5"
    with h5py.File(path, "w") as f:
        f.attrs["BoxSize"] = 100_000.0
        g = f.create_group("Group")
        g.create_dataset("GroupPos", data=pos * 1000.0)  # kpc/h
        g.create_dataset("GroupMass", data=mass / 1e10)  # 10^10 Msun/h
        g.create_dataset("GroupLen", data=np.arange(len(mass)))
    t = read_halos(path, length_unit="kpc/h", mass_unit=1e10)
    np.testing.assert_allclose(t.mass, mass, rtol=1e-12)
    np.testing.assert_allclose(t.pos, pos, rtol=1e-12)
    assert t.info["mass_column"] == "Group/GroupMass" and t.info["format"] == "hdf5"
    assert t.info["position_columns"] == ["Group/GroupPos"]


def test_text_catalogues_pick_the_first_mass_in_file_order(tmp_path, halos):
    mass, pos = halos
    path = tmp_path / "tree_0_0_0.dat"  # consistent-trees style numbered names
    rows = [
        f"{i} {m:.17g} {2 * m:.17g} {x:.17g} {y:.17g} {z:.17g}"
        for i, (m, (x, y, z)) in enumerate(zip(mass, pos, strict=True))
    ]
    path.write_text("#id(1) M200c(2) mvir(3) x(4) y(5) z(6)\n#a = 0.5\n" + "\n".join(rows) + "\n")
    t = read_halos(path, fmt="rockstar")
    assert t.info["mass_column"] == "M200c" and t.redshift == pytest.approx(1.0)
    np.testing.assert_allclose(t.mass, mass)
    t = read_halos(path, fmt="rockstar", mass_column="mvir")
    np.testing.assert_allclose(t.mass, 2 * mass)
    # told by its header, an AHF file is in kpc/h
    assert read_halos(path).info["format"] == "ahf"
    np.testing.assert_allclose(read_halos(path).pos, pos / 1000.0)
    bad = tmp_path / "bad.list"
    bad.write_text("#ID Mvir X Y Z\n1 2 3 4\n")
    with pytest.raises(Exception, match="rows have 4 values but the header names 5 columns"):
        read_halos(bad)


def test_plain_parquet_and_missing_columns(tmp_path, halos):
    mass, pos = halos
    path = tmp_path / "h.parquet"
    pq.write_table(pa.table({"Mvir": mass, "X": pos[:, 0], "Y": pos[:, 1], "Z": pos[:, 2]}), path)
    t = read_halos(path)
    assert t.box_size is None and t.info["mass_column"] == "Mvir"
    out = tmp_path / "c.zarr"
    with pytest.raises(MetadataError, match="box size unknown"):
        bin_halos(t, str(out), grid=4, mass_bins=[1e12, 1e16])
    prov = bin_halos(t, str(out), grid=4, mass_bins=[1e12, 1e13, 1e16], box_size=100.0)
    ds = open_field(str(out))
    assert data_var(ds).values.sum() == prov["n_binned"] == len(mass)
    assert field_meta(ds).provenance["mass_bins"] == [1e12, 1e13, 1e16]
    pq.write_table(pa.table({"M": mass, "vmax": mass}), tmp_path / "nopos.parquet")
    with pytest.raises(MetadataError, match="no halo position columns"):
        read_halos(tmp_path / "nopos.parquet")
    pq.write_table(pa.table({"Vmax": mass, "x": mass}), tmp_path / "nomass.parquet")
    with pytest.raises(MetadataError, match=r"no mass column \(columns found: Vmax, x\)"):
        read_halos(tmp_path / "nomass.parquet")


def test_fof_memory_refusal_and_estimate(rng):
    assert fof_memory_bytes(2_000_000) == 2 * fof_memory_bytes(1_000_000)
    assert fof_memory_bytes(10**6, b=0.4) > fof_memory_bytes(10**6, b=0.2)
    src = open_particles(rng.uniform(0, 10.0, (1000, 3)), box_size=10.0)
    with pytest.raises(TooLargeError, match="FoF of 1000 particles needs about"):
        snapshot_halos(src, particle_mass=1e10, memory_limit=1000)
    table, meta = snapshot_halos(src, particle_mass=1e10, min_members=2, b=0.5)
    assert meta["velocities"].startswith("not in the snapshot")
    assert (
        np.isnan(table["vx"].to_numpy()).all() and meta["ids"] == "particle order in the snapshot"
    )


def test_a_box_recorded_as_three_sides_is_read_and_a_non_cubic_one_refused(tmp_path, halos):
    import json

    mass, pos = halos
    table = pa.table({"mass": mass, "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2]})
    for box, ok in (([100.0] * 3, True), ([100.0, 100.0, 50.0], False)):
        rec = {"box_size": box, "units": {"mass": "Msun/h", "x": "Mpc/h"}}
        path = tmp_path / f"h{len(set(box))}.parquet"
        pq.write_table(table.replace_schema_metadata({"bigpaint": json.dumps(rec)}), path)
        out = str(tmp_path / f"c{len(set(box))}.zarr")
        if ok:
            bin_halos(read_halos(path), out, grid=4, mass_bins=[1e12, 1e16])
            assert field_meta(open_field(out)).box_size == (100.0,) * 3
        else:
            with pytest.raises(MetadataError, match="counts halos on a cubic box only"):
                bin_halos(read_halos(path), out, grid=4, mass_bins=[1e12, 1e16])
