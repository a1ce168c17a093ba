"""Fields, tables and catalogues read by tools that know nothing of bigpaint.

Every kind of Field opens with ``xarray.open_zarr`` without a warning and goes through
netCDF with its values and metadata; ``bigpaint export`` writes netCDF, HDF5 and numpy;
every statistics table loads with ``numpy.genfromtxt(names=True)``; catalogues carry their
units in the Parquet schema.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr
from click.testing import CliRunner

from bigpaint.catalog_units import column_units
from bigpaint.cli import cli
from bigpaint.field import (
    field_meta,
    netcdf_ready,
    open_field,
    update_attrs,
    write_array,
)
from bigpaint.field_meta import decode_attrs
from bigpaint.filters import smooth
from bigpaint.ics.noise import white_noise
from bigpaint.mesh.deposit import deposit_to_field
from bigpaint.sim.fof import write_catalogue
from bigpaint.stats import compare_spectra, pixel_pdf, power_spectrum, read_table, write_table
from bigpaint.stats.evaluate_output import flatten

from .conftest import tree_digest

BOX = 64.0
BINS = [1e12, 1e13, 1e14, 1e15]
COUNTS = {
    "box_size": BOX,
    "kind": "halo_count",
    "units": "1",
    "redshift": 0.5,
    "cosmology": {},
    "mass_assignment": {"scheme": "NGP"},
    "provenance": {"operation": "bin", "mass_bins": BINS, "mass_units": "Msun/h",
                   "config": {"grid": 8, "flag": True, "none": None}},
}  # fmt: skip


def _fields(root: Path) -> dict[str, str]:
    """One Field of each kind bigpaint writes: written whole, block by block by a command
    (smooth, white noise, a particle deposit), sharded, integer labels, 4-D counts with mass
    bins, and one annotated after the fact."""
    rng = np.random.default_rng(0)
    delta = rng.standard_normal((8, 8, 8)).astype("f4")
    meta = {"box_size": BOX, "kind": "delta", "units": "1", "redshift": 0.0,
            "mass_assignment": {"scheme": None}}  # fmt: skip
    out = {
        "delta": write_array(str(root / "d.zarr"), delta, chunks=(3, 4, 8), meta=meta).url,
        "sharded": write_array(
            str(root / "s.zarr"), delta, chunks=4, meta=meta, shards=True, inner_chunks=2
        ).url,
        "labels": write_array(
            str(root / "l.zarr"),
            rng.integers(0, 5, (8, 8, 8), dtype="i4"),
            chunks=4,
            meta={**meta, "kind": "protohalo_label"},
        ).url,
        "counts": write_array(
            str(root / "c.zarr"),
            rng.poisson(1.0, (3, 8, 8, 8)).astype("f4"),
            chunks=4,
            meta=COUNTS,
        ).url,
    }
    out["smoothed"] = smooth(out["delta"], str(root / "sm.zarr"), 4.0).url
    np.save(root / "parts.npy", rng.random((2000, 3)) * BOX)
    out["deposit"] = deposit_to_field(
        str(root / "parts.npy"), str(root / "dep.zarr"), nmesh=8, chunks=4, box_size=BOX,
        scheme="tsc", redshift=1.0,
        cosmology={"Omega_m": 0.3, "Omega_b": 0.05, "h": 0.7, "n_s": 0.96, "sigma_8": 0.8},
    ).url  # fmt: skip
    out["noise"] = white_noise(
        str(root / "n.zarr"), grid=8, box_size=BOX, seed=3, chunks=4, tile=8
    ).url
    from bigpaint.ics.lpt import lpt_density
    from bigpaint.ics.power import linear_power

    out["lpt"] = lpt_density(
        str(root / "lpt.zarr"), grid=8, box_size=BOX, seed=3, tile=8, chunks=4, block=4,
        power=linear_power(),
    ).density.url  # fmt: skip
    annotated = write_array(str(root / "a.zarr"), delta, chunks=4, meta=meta).url
    update_attrs(annotated, provenance={"clip": [0.1, 0.2]}, cosmology={"h": 0.7})
    out["annotated"] = annotated
    return out


@pytest.fixture(scope="module")
def fields(tmp_path_factory) -> dict[str, str]:
    return _fields(tmp_path_factory.mktemp("fields"))


def test_every_field_opens_with_xarray_without_a_warning(fields):
    for name, url in fields.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds = xr.open_zarr(url)
        var = ds[ds.attrs["bigpaint_variable"]]
        assert var.attrs["units"] and var.attrs["long_name"], name
        assert ds["x"].attrs["units"] == "Mpc/h" and ds["x"].attrs["axis"] == "X", name
        np.testing.assert_array_equal(var.values, open_field(url)[var.name].values)


def test_netcdf_round_trips_values_and_metadata(fields, tmp_path):
    for name, url in fields.items():
        path = tmp_path / f"{name}.nc"
        xr.open_zarr(url).to_netcdf(path, engine="scipy")
        back = xr.open_dataset(path, engine="scipy")
        ds = open_field(url)
        var = ds.encoding["bigpaint_variable"]
        np.testing.assert_array_equal(back[var].values, ds[var].values)
        np.testing.assert_array_equal(back["x"].values, ds["x"].values)
        assert back[var].attrs["units"] == ds[var].attrs["units"]
        assert field_meta(ds) == field_meta(_as_attrs(back)), name
        assert decode_attrs(back.attrs)["provenance"] == ds.attrs["provenance"], name
        # the Dataset bigpaint hands out, with nested records, gets there through netcdf_ready
        netcdf_ready(ds).to_netcdf(tmp_path / f"{name}-ready.nc", engine="scipy")


def _as_attrs(ds: xr.Dataset) -> xr.Dataset:
    ds.attrs = decode_attrs(ds.attrs)
    return ds


def test_the_lpt_record_reads_back_with_the_deposit_it_came_from(fields):
    prov = open_field(fields["lpt"]).attrs["provenance"]
    assert prov["operation"] == "lpt" and prov["deposit_operation"] == "deposit", prov
    assert field_meta(open_field(fields["lpt"])).cosmology is not None


def test_annotations_stay_netcdf_safe_and_read_back_nested(fields):
    ds = open_field(fields["annotated"])
    assert ds.attrs["provenance"]["clip"] == [0.1, 0.2]
    assert ds.attrs["cosmology"]["h"] == 0.7 and ds.attrs["cosmology"]["Omega_m"] == 0.3175
    stored = xr.open_zarr(fields["annotated"]).attrs
    assert all(not isinstance(v, dict) for v in stored.values())
    assert stored["cosmology_h"] == 0.7


def test_channel_coordinate_records_the_mass_bins(fields):
    ds = xr.open_zarr(fields["counts"])
    np.testing.assert_array_equal(ds["channel"].values, [0, 1, 2])
    np.testing.assert_array_equal(ds["mass_lo"].values, BINS[:-1])
    np.testing.assert_array_equal(ds["mass_hi"].values, BINS[1:])
    assert ds["mass_lo"].attrs["units"] == "Msun/h"
    assert ds["halo_count"].sel(channel=1).shape == (8, 8, 8)
    cfg = open_field(fields["counts"]).attrs["provenance"]["config"]
    assert cfg == {"grid": 8, "flag": True, "none": None}  # booleans and None come back exact


@pytest.mark.parametrize("suffix", [".nc", ".h5", ".npy"])
def test_export_writes_each_format(fields, tmp_path, suffix):
    url = fields["counts"]
    out = tmp_path / f"c{suffix}"
    res = CliRunner().invoke(cli, ["export", url, str(out)])
    assert res.exit_code == 0, res.output
    want = open_field(url)["halo_count"].values
    if suffix == ".nc":
        back = xr.open_dataset(out)
        np.testing.assert_array_equal(back["halo_count"].values, want)
        np.testing.assert_array_equal(back["mass_hi"].values, BINS[1:])
        assert decode_attrs(back.attrs)["provenance"]["mass_bins"] == BINS
    elif suffix == ".h5":
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(f["halo_count"][...], want)
            assert f["halo_count"].attrs["units"] == "1"
            assert f["halo_count"].dims[1][0].name == "/x"
            np.testing.assert_array_equal(f["x"][...], open_field(url)["x"].values)
            assert json.loads(f.attrs["provenance_mass_bins"]) == BINS
    else:
        np.testing.assert_array_equal(np.load(out, mmap_mode="r"), want)
        side = json.loads(Path(f"{out}.json").read_text())
        assert side["dims"] == ["channel", "x", "y", "z"]
        assert side["attrs"]["provenance"]["mass_bins"] == BINS
        assert side["coords"]["mass_lo"]["values"] == BINS[:-1]


def test_export_refuses_bad_output_in_one_line(fields, tmp_path):
    runner = CliRunner()
    for args, match in (
        ([fields["delta"], str(tmp_path / "d.tiff")], "export writes .nc, .h5, .npy"),
        ([str(tmp_path / "none.zarr"), str(tmp_path / "d.nc")], "no Field at"),
        ([fields["delta"], fields["delta"] + "/inside.nc"], "inside"),
    ):
        before = tree_digest(tmp_path)
        res = runner.invoke(cli, ["export", *args])
        assert res.exit_code == 2 and match in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
        assert tree_digest(tmp_path) == before
    (tmp_path / "e.npy").write_text("mine")
    res = runner.invoke(cli, ["export", fields["delta"], str(tmp_path / "e.npy")])
    assert res.exit_code == 2 and "already exists" in res.output
    assert (tmp_path / "e.npy").read_text() == "mine"


def test_every_table_loads_with_genfromtxt(fields, tmp_path):
    delta, smoothed = fields["delta"], fields["smoothed"]
    cmp = compare_spectra(smoothed, delta)
    verdict = xr.Dataset(
        {"name": ("criterion", ["power", "abundance"]),
         "value": ("criterion", [0.1, np.nan]),
         "detail": ("criterion", ["r_c > 0.9, up to k = 0.5", "no halos, nothing judged"])},
    )  # fmt: skip
    levels = xr.Dataset(
        {"ratio": (("level", "model"), [[1.0, 0.9], [1.1, 1.2]], {"units": "1"})},
        coords={"level": ["bin0", "total"], "model": ["painted", "baseline: linear"]},
    )
    tables = {
        "pk": power_spectrum(delta),
        "cmp": cmp,
        "pdf": pixel_pdf(delta, 10),
        "verdict": verdict,
        "levels": flatten(levels, "level"),
    }
    for name, ds in tables.items():
        path = write_table(ds, tmp_path / f"{name}.csv")
        arr = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
        frame = pd.read_csv(path, comment="#")
        assert list(arr.dtype.names) == list(frame.columns), name
        assert len(arr) == ds.sizes[next(iter(ds.dims))], name
        back = read_table(path)
        for var in ds.data_vars:
            assert var in back, (name, var)
    pk = np.genfromtxt(tmp_path / "pk.csv", delimiter=",", names=True)
    assert pk.dtype.names[0] == "k" and {"P0", "n_modes"} <= set(pk.dtype.names)
    np.testing.assert_allclose(pk["P0"], tables["pk"].P0.values, rtol=1e-9)
    plain = np.loadtxt(tmp_path / "cmp.csv", delimiter=",", skiprows=1)
    assert plain.shape[0] == cmp.sizes["bin"]
    names = np.genfromtxt(tmp_path / "levels.csv", delimiter=",", names=True, dtype=None,
                          encoding="utf-8").dtype.names  # fmt: skip
    assert "ratio_baseline_linear" in names
    assert "ratio:baseline: linear" in read_table(tmp_path / "levels.csv")
    assert read_table(tmp_path / "verdict.csv").detail.values[0] == "r_c > 0.9; up to k = 0.5"


def test_halo_catalogue_units_in_the_parquet_schema(tmp_path):
    table = pa.table(
        {"id": [0, 1], "n_particles": [30, 20], "mass": [3e12, 2e12], "x": [1.0, 2.0],
         "y": [1.0, 2.0], "z": [1.0, 2.0], "vx": [0.0, 1.0], "vy": [0.0, 1.0], "vz": [0.0, 1.0]}
    )  # fmt: skip
    path = tmp_path / "halos.parquet"
    write_catalogue(table, path, {"box_size": BOX, "particle_mass": 1e11})
    schema = pq.read_schema(path)
    assert schema.field("mass").metadata[b"units"] == b"Msun/h"
    assert schema.field("vz").metadata[b"units"] == b"km/s"
    assert column_units(schema)["y"] == "Mpc/h"
    assert json.loads(schema.metadata[b"bigpaint"])["units"]["vz"] == "km/s"


def test_a_record_added_as_a_dict_before_finishing_is_stored_flat(tmp_path):
    import zarr

    from bigpaint.field import create_field

    w = create_field(str(tmp_path / "f.zarr"), shape=(4, 4, 4), chunks=4,
                     meta={"box_size": BOX, "kind": "delta", "units": "1"})  # fmt: skip
    g = zarr.open_group(w.url, mode="r+")
    g.attrs["provenance"] = {"clip": {"rescale": [1.0, 2.0]}}  # a writer's own annotation
    w.write_block((0, 0, 0), np.zeros((4, 4, 4), "f4"))
    w.finalize()
    stored = xr.open_zarr(w.url).attrs
    assert "provenance" not in stored and json.loads(stored["provenance_clip"])["rescale"] == [1, 2]
    assert open_field(w.url).attrs["provenance"]["clip"] == {"rescale": [1.0, 2.0]}
    assert open_field(w.url).attrs["provenance"]["bigpaint_version"]
    xr.open_zarr(w.url).to_netcdf(tmp_path / "f.nc", engine="scipy")
