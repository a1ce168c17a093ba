"""Catalogues (Parquet, physical units), halo mass functions, and the segment/hmf commands."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.errors import ConfigError, FieldExistsError, MetadataError
from bigpaint.field import open_field, write_array
from bigpaint.segment.calibration import Calibration
from bigpaint.segment.catalog import (
    RHO_CRIT,
    build_catalog,
    calibrate_catalog,
    catalog_meta,
    mean_density,
    read_catalog,
    write_catalog,
)
from bigpaint.segment.engine import SegmentParams, segment
from bigpaint.segment.hmf import compare_mass_functions, mass_function
from bigpaint.segment.hmf_truth import hmf_report
from bigpaint.segment.job import segment_field

from .reference import blobs

SHAPE = (24, 24, 24)
COSMO = {"Omega_m": 0.3, "Omega_b": 0.05, "h": 0.7, "n_s": 0.96, "sigma_8": 0.8}
DMETA = {"box_size": 48.0, "kind": "distance", "units": "1", "redshift": 99.0, "cosmology": COSMO}


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def dist_field(tmp_path):
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    url = str(tmp_path / "dist.zarr")
    write_array(url, d, chunks=(12, 8, 24), meta=DMETA)
    return url, d


def test_catalog_columns_units_and_round_trip(tmp_path):
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    seg = segment(d, SegmentParams(trajectory_thresholds=(0.0, 0.5)), chunks=10)
    rho = mean_density(0.3)
    assert rho == pytest.approx(0.3 * 2.775e11, rel=1e-3)
    table = build_catalog(seg, box_size=(48.0,) * 3, rho_bar=rho)
    cell = 2.0  # 48 Mpc/h over 24 cells
    np.testing.assert_allclose(table["mass"].to_numpy(), rho * cell**3 * seg.volume)
    np.testing.assert_allclose(table["x"].to_numpy(), seg.centre[:, 0] * cell)
    assert table["x"].to_numpy().max() < 48.0 and table["x"].to_numpy().min() >= 0
    np.testing.assert_array_equal(table["volume"].to_numpy(), table["volume_raw"].to_numpy())
    assert np.isnan(table["threshold"].to_numpy()).all()
    assert table["trajectory_volume"].type.list_size == 2
    path = write_catalog(table, tmp_path / "cat.parquet")
    back = read_catalog(path)
    assert back.drop_columns(["threshold"]).equals(table.drop_columns(["threshold"]))  # NaN != NaN
    assert np.isnan(back["threshold"].to_numpy()).all()
    meta = catalog_meta(back)
    assert meta["box_size"] == [48.0] * 3 and meta["rho_bar"] == rho
    assert meta["units"]["mass"] == "Msun/h" and meta["params"]["min_distance"] == 2
    with pytest.raises(FieldExistsError, match="already exists"):
        write_catalog(table, path)


def test_calibration_for_another_resolution_is_refused():
    _, d = blobs(shape=SHAPE, n=25, seed=1)
    seg = segment(d, SegmentParams(trajectory_thresholds=(0.0, 0.5)))
    cal = Calibration(
        log10_volume=(0.0, 2.0),
        mean_distance=(1.0, 2.0),
        thresholds=(0.0, 0.5),
        normalized=True,
        cell_size=(1.0, 1.0, 1.0),
        shape=(512,) * 3,
        box_size=(512.0,) * 3,
    )
    with pytest.raises(MetadataError, match=r"cells of 1 Mpc/h .* this map has cells of 2 Mpc/h"):
        build_catalog(seg, box_size=(48.0,) * 3, rho_bar=1.0, calibration=cal)
    table = build_catalog(seg, box_size=(24.0,) * 3, rho_bar=1.0, calibration=cal)
    assert (table["volume"].to_numpy() <= table["volume_raw"].to_numpy()).all()


def _calibration(tmp_path, url, truth_rows=None):
    """A calibration from segmenting ``url`` with trajectories, against its own catalogue."""
    cat = str(tmp_path / "cal-cat.parquet")
    segment_field(url, cat, SegmentParams(trajectory_thresholds=tuple(np.linspace(0, 0.9, 10))))
    return calibrate_catalog(cat, cat, tmp_path / "cal.json", volume_bins=3, min_count=1)


def test_calibration_for_maps_of_another_source_is_refused(tmp_path):
    """A calibration fitted on one painter's maps is refused on true maps and on another
    painter's (and vice versa); the same source is accepted. Nothing is written."""
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    painted = {"operation": "paint", "config": {"checkpoint_hash": "a" * 64, "checkpoint": "p1"}}
    sources = {
        "painted": painted,
        "other": {**painted, "config": {"checkpoint_hash": "b" * 64, "checkpoint": "p2"}},
        "true": {"operation": "simulate"},
    }
    urls = {}
    for name, prov in sources.items():
        urls[name] = str(tmp_path / f"{name}.zarr")
        write_array(urls[name], d, chunks=12, meta={**DMETA, "provenance": prov})
    cal = _calibration(tmp_path, urls["painted"])
    assert cal.info["map"]["checkpoint_hash"] == "a" * 64
    ok = segment_field(urls["painted"], str(tmp_path / "ok.parquet"), calibration=cal)
    assert catalog_meta(ok)["params"]["h"] == cal.segment_params["h"]
    for name, text in (("other", r"painted by p2 \(checkpoint bbbbbbbbbbbb\)"),
                       ("true", r"true distance maps")):  # fmt: skip
        out = tmp_path / f"{name}.parquet"
        with pytest.raises(MetadataError, match=r"made for distance maps painted by p1 .*" + text):
            segment_field(urls[name], str(out), calibration=str(tmp_path / "cal.json"))
        assert not out.exists()
    res = run("segment", urls["true"], str(tmp_path / "t.parquet"), "--calibration",
              str(tmp_path / "cal.json"), "--workers", "1")  # fmt: skip
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and "calibrate for these maps" in lines[0]


def test_calibration_from_a_painter_directory_or_a_pretrained_name(tmp_path, monkeypatch):
    from bigpaint.errors import CheckpointError
    from bigpaint.segment.calibration import resolve_calibration

    url = str(tmp_path / "d.zarr")
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    write_array(url, d, chunks=12, meta=DMETA)
    cal = _calibration(tmp_path, url)
    painter = tmp_path / "mine.painter"
    painter.mkdir()
    with pytest.raises(ConfigError, match=r"ships no adaptive-threshold calibration"):
        resolve_calibration(painter)
    (painter / "calibration.json").write_text(cal.to_json())
    assert resolve_calibration(painter) == cal
    with pytest.raises(CheckpointError, match="no-such-painter"):
        resolve_calibration("pretrained:no-such-painter")


def test_maps_outside_the_unit_interval_are_refused(tmp_path):
    """A per-object normalized map lies in [0, 1]: a map in cells labelled as normalized is
    refused in one line before anything is written."""
    _, d = blobs(shape=SHAPE, n=25, seed=1, big=7.0, tube=2.5)
    url = str(tmp_path / "cells.zarr")
    write_array(url, d * 3.0, chunks=12, meta=DMETA)
    res = run("segment", url, str(tmp_path / "c.parquet"), "--workers", "1")
    # the range is a pass over the data, on the cluster: its start is logged before
    lines = [ln for ln in res.output.strip().splitlines() if "cluster started" not in ln]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "values up to 3" in lines[0] and "lies in [0, 1]" in lines[0]
    assert not (tmp_path / "c.parquet").exists()
    write_array(url, d * 3.0, chunks=12, meta={**DMETA, "units": "cells"}, overwrite=True)
    assert segment_field(url, str(tmp_path / "c.parquet")).num_rows > 0


def test_mass_function_counts_and_poisson_errors():
    rng = np.random.default_rng(0)
    m = 10 ** rng.uniform(12, 15, 5000)
    edges = np.logspace(12, 15, 7)
    ds = mass_function(m, 1e6, edges)
    counts, _ = np.histogram(m, edges)
    np.testing.assert_array_equal(ds["count"].values, counts)
    np.testing.assert_allclose(ds["dn_dlog10m"].values, counts / 1e6 / 0.5)
    np.testing.assert_allclose(ds["dn_dlog10m_err"].values, np.sqrt(counts) / 1e6 / 0.5)
    above = [np.sum(m >= e) for e in edges[:-1]]
    np.testing.assert_allclose(ds["n_above"].values, np.array(above) / 1e6)
    np.testing.assert_allclose(ds["n_above_err"].values, np.sqrt(above) / 1e6)
    np.testing.assert_allclose(ds["m_centre"].values, np.sqrt(edges[:-1] * edges[1:]))
    assert ds["dn_dlog10m"].attrs["units"] == "(Mpc/h)^-3 dex^-1"


def test_comparison_ratios_and_well_sampled_bins():
    rng = np.random.default_rng(1)
    truth = 10 ** rng.uniform(12, 14, 400)
    cat = truth * 1.03  # every mass 3% high
    ds = compare_mass_functions(cat, truth, 1e6, np.logspace(11.9, 14.2, 6), min_count=20)
    na = np.histogram(cat, np.logspace(11.9, 14.2, 6))[0]
    nb = np.histogram(truth, np.logspace(11.9, 14.2, 6))[0]
    np.testing.assert_allclose(ds["ratio"].values, na / nb)
    np.testing.assert_allclose(ds["ratio_err"].values, na / nb * np.sqrt(1 / na + 1 / nb))
    np.testing.assert_array_equal(ds["well_sampled"].values, nb >= 20)
    good = nb >= 20
    assert ds.attrs["max_abs_deviation"] == pytest.approx(np.abs(na / nb - 1)[good].max())


def test_segment_field_end_to_end(dist_field, tmp_path):
    url, d = dist_field
    out = tmp_path / "cat.parquet"
    table = segment_field(
        url, str(out), labels=str(tmp_path / "labels.zarr"), workdir=str(tmp_path)
    )
    labels = open_field(str(tmp_path / "labels.zarr"))["labels"].values
    assert table.num_rows == len(np.unique(labels)) - 1
    assert read_catalog(out).num_rows == table.num_rows
    rho = 0.3 * RHO_CRIT
    assert table["mass"].to_numpy().sum() == pytest.approx(rho * 8.0 * np.count_nonzero(d > 0))
    ds, paths = hmf_report(out, truth=out, out=tmp_path / "hmf", bins=4, min_count=1)
    np.testing.assert_allclose(ds["ratio"].values[ds["count"].values > 0], 1.0)
    assert [p.suffix for p in paths] == [".csv", ".png"] and all(p.stat().st_size for p in paths)
    with pytest.raises(FieldExistsError):
        segment_field(url, str(out))


def test_no_cosmology_and_empty_maps(tmp_path):
    url = str(tmp_path / "d.zarr")
    write_array(url, np.zeros(SHAPE, np.float32), chunks=12, meta={**DMETA, "cosmology": None})
    with pytest.raises(MetadataError, match="no cosmology"):
        segment_field(url, str(tmp_path / "c.parquet"))
    with pytest.raises(ConfigError, match=r"no voxel above the foreground threshold 0 .*"
                       r"nothing to segment; lower --threshold"):  # fmt: skip
        segment_field(url, str(tmp_path / "c.parquet"), rho_bar=1e11)
    assert not (tmp_path / "c.parquet").exists()
    # a foreground with no voxel above the marker threshold: no regions, an empty catalogue
    d = np.zeros(SHAPE, np.float32)
    d[2:5, 2:5, 2:5] = 0.2
    url = str(tmp_path / "e.zarr")
    write_array(url, d, chunks=12, meta={**DMETA, "cosmology": None})
    params = SegmentParams(marker_threshold=0.5)
    table = segment_field(url, str(tmp_path / "c.parquet"), params, rho_bar=1e11)
    assert table.num_rows == 0 and "mass" in table.column_names
    ds, paths = hmf_report(tmp_path / "c.parquet", out=tmp_path / "h")
    assert int(ds["count"].sum()) == 0 and all(p.exists() for p in paths)


def test_cli_segment_and_hmf(dist_field, tmp_path):
    url, _ = dist_field
    cat = str(tmp_path / "cat.parquet")
    res = run("segment", url, cat, "--trajectories", "11", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "protohalos" in res.output
    res = run(
        "hmf", cat, "--truth", cat, "--bins", "3", "--min-count", "1", "--out", str(tmp_path / "h")
    )
    assert res.exit_code == 0 and "max |ratio - 1|" in res.output and (tmp_path / "h.png").exists()
    res = run(
        "calibrate-threshold",
        cat,
        cat,
        str(tmp_path / "cal.json"),
        "--volume-bins",
        "3",
        "--min-count",
        "1",
    )
    assert res.exit_code == 0, res.output
    res = run(
        "segment",
        url,
        str(tmp_path / "c2.parquet"),
        "--calibration",
        str(tmp_path / "cal.json"),
        "--workers",
        "1",
    )
    assert res.exit_code == 0, res.output
    c2 = read_catalog(tmp_path / "c2.parquet")
    assert c2.num_rows == read_catalog(cat).num_rows  # the calibration's own markers
    assert catalog_meta(c2)["params"]["h"] == 0.0
    # an option that differs from the calibration's is refused before any work
    res = run("segment", url, str(tmp_path / "c3.parquet"), "--calibration",
              str(tmp_path / "cal.json"), "--merge-h", "0.5", "--workers", "1")  # fmt: skip
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "h 0.5 (calibrated with 0.0)" in lines[0] and "recalibrate" in lines[0]
    assert not (tmp_path / "c3.parquet").exists()


def test_cli_bad_inputs(tmp_path):
    d = np.random.default_rng(0).random(SHAPE).astype(np.float32) - 0.5
    url = str(tmp_path / "neg.zarr")
    write_array(url, d, chunks=12, meta=DMETA)
    res = CliRunner().invoke(cli, ["segment", url, str(tmp_path / "c.parquet"), "--workers", "1"])
    assert res.exit_code == 2 and "not a distance map" in res.output
    assert not (tmp_path / "c.parquet").exists()
    res = CliRunner().invoke(cli, ["hmf", str(tmp_path / "missing.parquet")])
    assert res.exit_code == 2 and "no catalogue" in res.output
    res = CliRunner().invoke(cli, ["segment", url, str(tmp_path / "c.parquet"), "--merge-h", "-1"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "--merge-h" in lines[0] and "not in the range" in lines[0]
    assert not (tmp_path / "c.parquet").exists()


def test_hmf_against_a_fof_catalogue_with_a_mass_cut(tmp_path):
    """The truth may be the simulator's FoF catalogue (box size in its metadata, all haloes
    down to 20 particles): ``min_mass`` applies the protohalo cut to both."""
    import pyarrow as pa

    from bigpaint.sim.fof import write_catalogue

    rng = np.random.default_rng(3)
    fof = 10 ** rng.uniform(11, 14, 3000)
    write_catalogue(
        pa.table({"mass": fof}),
        tmp_path / "halos.parquet",
        {"box_size": 100.0, "particle_mass": 1e9},
    )
    kept = fof[fof >= 1e12]
    seg = pa.table({"mass": kept * 1.01}).replace_schema_metadata(
        {"bigpaint": '{"box_size": [100.0, 100.0, 100.0]}'}
    )
    write_catalog(seg, tmp_path / "seg.parquet")
    ds, _ = hmf_report(
        tmp_path / "seg.parquet",
        truth=tmp_path / "halos.parquet",
        bins=np.logspace(12, 14, 5),
        min_mass=1e12,
    )
    np.testing.assert_array_equal(
        ds["count_truth"].values, np.histogram(kept, np.logspace(12, 14, 5))[0]
    )
    assert ds.attrs["volume"] == pytest.approx(1e6)
    assert ds.attrs["max_abs_deviation"] < 0.1
