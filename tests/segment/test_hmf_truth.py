"""The mass function against a truth: Poisson errors on counts and N(>M), and the two truths
of a simulation (the connected truth, told from its metadata, and the FoF catalogue)."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.config import parse_config
from bigpaint.errors import ConfigError
from bigpaint.pipeline import PipelineConfig, plan_pipeline
from bigpaint.pipeline.stages import STAGE_KINDS, StageContext
from bigpaint.segment.catalog import write_catalog
from bigpaint.segment.hmf import compare_mass_functions, mass_bins, mass_function
from bigpaint.segment.hmf_truth import hmf_report
from bigpaint.sim.connected_truth import connected_truth, write_connected_truth
from bigpaint.sim.fof import write_catalogue
from tests.pipeline.conftest import tiny_config

MP = 1e12  # particle mass, Msun/h
BOX = 32.0  # Mpc/h


def test_poisson_errors_on_a_known_catalogue(tmp_path):
    edges = [1e12, 1e13, 1e14, 1e15]
    cat = np.array([2e12] * 9 + [5e13] * 4)  # counts 9, 4, 0
    truth = np.array([3e12] * 16 + [2e13] + [7e14])  # counts 16, 1, 1
    ds = compare_mass_functions(cat, truth, BOX**3, edges, min_count=1)
    np.testing.assert_array_equal(ds["count"].values, [9, 4, 0])
    np.testing.assert_array_equal(ds["count_err"].values, [3, 2, 0])
    np.testing.assert_array_equal(ds["count_above"].values, [13, 4, 0])
    np.testing.assert_allclose(ds["count_above_err"].values, np.sqrt([13, 4, 0]))
    np.testing.assert_array_equal(ds["count_truth"].values, [16, 1, 1])
    np.testing.assert_array_equal(ds["count_err_truth"].values, [4, 1, 1])
    np.testing.assert_array_equal(ds["count_above_truth"].values, [18, 2, 1])
    np.testing.assert_allclose(ds["count_above_err_truth"].values, np.sqrt([18, 2, 1]))
    np.testing.assert_allclose(ds["ratio"].values, [9 / 16, 4.0, 0.0])
    np.testing.assert_allclose(ds["ratio_err"].values[:2], [9 / 16 * 5 / 12, 4 * np.sqrt(1.25)])
    np.testing.assert_allclose(ds["ratio_above"].values, [13 / 18, 2.0, 0.0])
    np.testing.assert_allclose(
        ds["ratio_above_err"].values[:2], [13 / 18 * np.sqrt(1 / 13 + 1 / 18), 2 * np.sqrt(0.75)]
    )
    # densities are the counts over the volume (per dex for the differential one)
    np.testing.assert_allclose(ds["n_above_err"].values, np.sqrt([13, 4, 0]) / BOX**3)
    np.testing.assert_allclose(ds["dn_dlog10m_err"].values, [3, 2, 0] / np.float64(BOX**3))
    # the table written by hmf carries them, one column each
    for name, masses in (("cat", cat), ("truth", truth)):
        table = pa.table({"mass": masses}).replace_schema_metadata(
            {"bigpaint": f'{{"box_size": {BOX}}}'}
        )
        write_catalog(table, tmp_path / f"{name}.parquet")
    _, paths = hmf_report(
        tmp_path / "cat.parquet", truth=tmp_path / "truth.parquet", out=tmp_path / "h",
        bins=edges, min_count=1,
    )  # fmt: skip
    with open(paths[0]) as fh:
        rows = list(csv.reader(line for line in fh if not line.startswith("#")))
    col = {name.split(" [")[0]: i for i, name in enumerate(rows[0])}
    assert [float(r[col["count_above_err_truth"]]) for r in rows[1:]] == pytest.approx(
        np.sqrt([18, 2, 1])
    )
    assert [int(float(r[col["truth_complete"]])) for r in rows[1:]] == [1, 1, 1]


@pytest.mark.parametrize("lightest", [2e12, 3.7e13, 1e12 + 1.0])
def test_automatic_bins_hold_the_lightest_and_heaviest_halo(lightest):
    masses = np.r_[np.full(5, lightest), np.geomspace(lightest, 1e15, 50)[1:]]
    edges = mass_bins([masses], 5)
    assert edges[0] <= lightest and edges[-1] >= 1e15
    ds = mass_function(masses, BOX**3, 5)
    assert int(ds["count"].sum()) == ds["count_above"].values[0] == masses.size


@pytest.fixture
def simulation_truths(tmp_path):
    """A FoF catalogue, its connected truth (from a label image), and a perfect segmentation
    of the map (the connected regions' masses) plus light objects the truth does not hold."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(5)
    grid, n_halo = 16, 60
    # periodic Voronoi regions of random seeds (about 68 cells each), a tenth of cells empty
    cells = np.stack(np.indices((grid,) * 3), -1).reshape(-1, 3) + 0.5
    seeds = rng.uniform(0, grid, (n_halo, 3))
    nearest = cKDTree(seeds, boxsize=grid).query(cells)[1]
    raw = np.where(rng.random(grid**3) < 0.9, nearest + 1, 0)
    # FoF halos hold more particles than their connected region has cells; sorted by mass
    n_part = np.bincount(raw, minlength=n_halo + 1)[1:] + rng.integers(5, 60, n_halo)
    order = np.argsort(-n_part, kind="stable")
    rank = np.empty(n_halo, np.int64)
    rank[order] = np.arange(n_halo)
    raw = np.where(raw > 0, rank[raw - 1] + 1, 0).reshape((grid,) * 3)
    n_part = n_part[order]
    fof = pa.table({"halo_id": np.arange(n_halo), "n_particles": n_part, "mass": n_part * MP})
    write_catalogue(fof, tmp_path / "halos.parquet", {"box_size": BOX, "particle_mass": MP})
    table, _, _ = connected_truth(
        raw.astype(np.int32), fof, box_size=BOX, particle_mass=MP, particles=grid,
        min_mass=40 * MP,
    )  # fmt: skip
    write_connected_truth(table, tmp_path / "protohalos_connected.parquet")
    masses = np.r_[table["mass"].to_numpy(), np.full(30, 2 * MP)]
    seg = pa.table({"mass": masses}).replace_schema_metadata(
        {"bigpaint": f'{{"format": "bigpaint-catalog", "box_size": [{BOX}, {BOX}, {BOX}]}}'}
    )
    write_catalog(seg, tmp_path / "seg.parquet")
    return tmp_path, table


def test_connected_truth_is_told_from_its_metadata(simulation_truths):
    root, table = simulation_truths
    edges = np.geomspace(1 * MP, 1e3 * MP, 7)
    ds, _ = hmf_report(
        root / "seg.parquet", truth=root / "protohalos_connected.parquet", bins=edges, min_count=1
    )
    assert ds.attrs["truth_kind"] == "connected"
    assert ds.attrs["truth_complete_above"] == 40 * MP
    np.testing.assert_array_equal(ds["truth_complete"].values, edges[:-1] >= 40 * MP)
    np.testing.assert_array_equal(
        ds["count_truth"].values, np.histogram(table["mass"].to_numpy(), edges)[0]
    )
    # the segmentation matches the connected truth wherever the truth is complete; the light
    # objects (a bin the truth cannot hold) are not judged
    complete = ds["truth_complete"].values & (ds["count_truth"].values > 0)
    np.testing.assert_allclose(ds["ratio"].values[complete], 1.0)
    assert ds["ratio"].values[0] > 1 and ds.attrs["max_abs_deviation"] == 0.0
    # named explicitly, the same
    ds2, _ = hmf_report(
        root / "seg.parquet",
        truth=root / "protohalos_connected.parquet",
        bins=edges,
        min_count=1,
        truth_kind="connected",
    )
    np.testing.assert_array_equal(ds2["ratio"].values, ds["ratio"].values)


def test_a_fof_truth_still_works(simulation_truths):
    root, table = simulation_truths
    ds, _ = hmf_report(
        root / "seg.parquet", truth=root / "halos.parquet", bins=6, min_mass=40 * MP,
        min_count=1, truth_kind="fof",
    )  # fmt: skip
    assert ds.attrs["truth_kind"] == "fof" and ds.attrs["truth_complete_above"] == 0.0
    assert ds["truth_complete"].values.all()
    assert int(ds["count_truth"].sum()) == 60
    # FoF masses are out of a connected segmentation's reach: most objects weigh less
    assert np.median(table["mass_fraction"].to_numpy()) < 0.9


def test_cli_prints_counts_errors_and_the_truth_kind(simulation_truths):
    root, _ = simulation_truths
    res = CliRunner().invoke(
        cli,
        ["hmf", str(root / "seg.parquet"), "--truth", str(root / "protohalos_connected.parquet"),
         "--bins", "4", "--min-count", "1", "--out", str(root / "h")],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "N(>M)" in res.output and "(truth incomplete)" in res.output
    assert "truth: connected truth" in res.output
    assert "and M_lo >= 4.000e+13 Msun/h (truth complete)" in res.output
    assert (root / "h.csv").is_file() and (root / "h.png").is_file()


def test_pipeline_stage_takes_the_truth_kind(simulation_truths, tmp_path):
    root, _ = simulation_truths
    kind = STAGE_KINDS["hmf"]
    out = tmp_path / "hmf-stage"
    out.mkdir()
    ctx = StageContext("hmf", out, "stage 'hmf' (hmf)", lambda _m: None)
    params = {"catalog": str(root / "seg.parquet"), "bins": 4, "min_count": 1}
    cfg = kind.validate(
        {**params, "truth": str(root / "protohalos_connected.parquet"), "truth_kind": "connected"},
        ctx,
    )
    assert kind.run(cfg, ctx)["truth_kind"] == "connected"
    assert (out / "hmf.csv").is_file() and (out / "hmf.png").is_file()
    with pytest.raises(ConfigError, match="truth_kind"):
        kind.validate({**params, "truth_kind": "halos"}, ctx)
    # a simulation stage writes the connected truth, so a later stage can read it

    data = tiny_config(tmp_path / "run", hmf={"truth": "@truth/protohalos_connected.parquet",
                                              "truth_kind": "connected"})  # fmt: skip
    planned = plan_pipeline(parse_config(PipelineConfig, data, "test"), source="test")
    hmf = next(p for p in planned if p.name == "hmf")
    assert hmf.config.truth == str(tmp_path / "run" / "truth" / "protohalos_connected.parquet")


def test_a_bin_starting_at_the_completeness_mass_is_judged():
    """A catalogue's masses (rho_bar V) and the truth's cut (particle mass times cells) agree
    to rounding only; the bin that starts at the cut is complete and judged."""
    from bigpaint.segment.hmf import compare_mass_functions, mass_bins

    cut = 50 * 7.0494303320409836e11  # 3.524715166020492e13
    lightest = np.nextafter(cut, 0)  # the same mass, one rounding below
    masses = np.array([lightest, 2 * cut, 5 * cut, 20 * cut])
    edges = mass_bins([masses], 3)
    assert edges[0] < cut
    ds = compare_mass_functions(masses, masses, 1e6, edges, min_count=1,
                                truth_complete_above=cut)  # fmt: skip
    assert ds["truth_complete"].values.all()
