"""bigpaint sample: painted counts to halos, checked against the painted expectation.

The catalogue re-binned on the painted grid must give back the expectation within Poisson
errors (a chi-square per channel that a 15 % wrong expectation fails), any chunk layout
must give the identical catalogue, and a killed run resumes to that same catalogue.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from scipy import stats

import bigpaint.sample.run as sample_run
from bigpaint.catalog_units import column_units
from bigpaint.field import write_array
from bigpaint.sample import sample_catalogue
from bigpaint.testing import chunk_layouts

BOX = 48.0
GRID = (12, 10, 8)
BINS = [1e12, 1e13, 1e14]
META = {
    "box_size": BOX,
    "kind": "halo_count",
    "units": "1",
    "redshift": 0.0,
    "cosmology": {},
    "provenance": {"mass_bins": BINS, "mass_units": "Msun/h"},
}


def _expected(grid=GRID, mean=(0.6, 0.3), seed=5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.gamma(2.0, m / 2.0, grid) for m in mean]).astype("f4")


def _painted(path: Path, lam: np.ndarray, chunks=(5, 4, 8), **meta) -> str:
    write_array(str(path), lam, chunks=chunks, meta={**META, **meta})
    return str(path)


def _rebin(table, grid, nbins) -> np.ndarray:
    """Counts per (bin, cell) of a catalogue on the painted grid."""
    cell = BOX / np.asarray(grid)
    ijk = [np.floor(table[a].to_numpy() / cell[i]).astype(int) for i, a in enumerate("xyz")]
    out = np.zeros((nbins, *grid), np.int64)
    np.add.at(out, (table["bin"].to_numpy(), *ijk), 1)
    return out


def _poisson_z(counts: np.ndarray, lam: np.ndarray) -> float:
    """How many standard deviations Pearson's chi-square of ``counts`` against the Poisson
    expectation ``lam`` lies from its mean (variance 2 + 1/lam per cell)."""
    lam = lam.astype(np.float64).ravel()
    n = counts.ravel().astype(np.float64)
    chi2 = np.sum((n - lam) ** 2 / lam)
    return float((chi2 - lam.size) / np.sqrt(np.sum(2.0 + 1.0 / lam)))


def _grouped_p(counts: np.ndarray, lam: np.ndarray, groups: int = 10) -> float:
    """p-value of the chi-square of the counts summed over ``groups`` sets of cells of
    similar expectation (each sum is Poisson with the summed expectation)."""
    lam = lam.astype(np.float64).ravel()
    order = np.array_split(np.argsort(lam), groups)
    n = np.array([counts.ravel()[g].sum() for g in order], np.float64)
    mu = np.array([lam[g].sum() for g in order])
    return float(stats.chi2.sf(np.sum((n - mu) ** 2 / mu), groups))


def test_rebinned_catalogue_gives_back_the_painted_expectation(tmp_path):
    grid = (16, 16, 16)
    lam = _expected(grid)
    out = sample_catalogue(_painted(tmp_path / "p.zarr", lam), tmp_path / "h.parquet", seed=11)
    table = pq.read_table(out.path)
    assert out.n_halos == table.num_rows > 1000
    counts = _rebin(table, grid, 2)
    for c in range(2):
        z = _poisson_z(counts[c], lam[c])
        assert abs(z) < 4, (c, z)
        assert _grouped_p(counts[c], lam[c]) > 1e-4
        # the checks have the power to fail: a 20 % wrong expectation, or the cells shuffled
        assert _grouped_p(counts[c], 1.2 * lam[c]) < 1e-4
        shuffled = np.random.default_rng(0).permutation(counts[c].ravel())
        assert _poisson_z(shuffled, lam[c]) > 4
    mass, b = table["mass"].to_numpy(), table["bin"].to_numpy()
    assert np.all((mass >= np.take(BINS, b)) & (mass < np.take(BINS, b + 1)))
    assert np.array_equal(table["id"].to_numpy(), np.arange(table.num_rows))
    units = column_units(table.schema)
    assert units["mass"] == "Msun/h" and units["x"] == "Mpc/h" and units["id"] == "1"


def test_power_law_masses_follow_the_slope(tmp_path):
    lam = _expected((8, 8, 8), mean=(4.0, 4.0))
    out = sample_catalogue(
        _painted(tmp_path / "p.zarr", lam, chunks=4), tmp_path / "h.parquet", seed=2,
        mass_function=1.5,
    )  # fmt: skip
    table = pq.read_table(out.path)
    s, (lo, hi) = 1.5, BINS[:2]
    m = table["mass"].to_numpy()[table["bin"].to_numpy() == 0]
    cdf = lambda x: (lo**-s - np.asarray(x) ** -s) / (lo**-s - hi**-s)  # noqa: E731
    assert stats.kstest(m, cdf).pvalue > 1e-3
    assert stats.kstest(m, lambda x: np.log(x / lo) / np.log(hi / lo)).pvalue < 1e-6


@functools.cache
def _reference(root: str) -> bytes:
    """The whole-box catalogue (one block) of the layout test, as Parquet bytes of its rows."""
    base = Path(root)
    out = sample_catalogue(
        _painted(base / "ref.zarr", _expected()), base / "ref.parquet", seed=9, chunks=GRID
    )
    return pq.read_table(out.path).to_pandas()


@settings(max_examples=6)
@given(layout=chunk_layouts(GRID, max_parts=3))
def test_any_chunk_layout_draws_the_same_catalogue(tmp_path_factory, layout):
    root = tmp_path_factory.getbasetemp() / "sample-layouts"
    root.mkdir(exist_ok=True)
    want = _reference(str(root))
    work = tmp_path_factory.mktemp("layout")
    out = sample_catalogue(root / "ref.zarr", work / "h.parquet", seed=9, chunks=layout)
    got = pq.read_table(out.path).to_pandas()
    assert len(want) > 50
    assert got.equals(want), layout


def test_killed_run_resumes_to_the_same_catalogue(tmp_path, monkeypatch):
    painted = _painted(tmp_path / "p.zarr", _expected())
    whole = sample_catalogue(painted, tmp_path / "whole.parquet", seed=4, chunks=6)
    real = sample_run._sample_one

    def dies_on_a_block(index, *args, **kwargs):
        if tuple(index) == (1, 0, 1):
            raise KeyboardInterrupt
        return real(index, *args, **kwargs)

    monkeypatch.setattr(sample_run, "_sample_one", dies_on_a_block)
    out = tmp_path / "h.parquet"
    with pytest.raises(KeyboardInterrupt):
        sample_catalogue(painted, out, seed=4, chunks=6, progress=False)
    assert not out.exists() and len(list((tmp_path / "h.parquet.parts").glob("part-*"))) >= 1
    monkeypatch.setattr(sample_run, "_sample_one", real)
    again = sample_catalogue(painted, out, seed=4, chunks=6)
    assert again.blocks_sampled < again.blocks_total
    assert pq.read_table(out).equals(pq.read_table(whole.path))
    assert not (tmp_path / "h.parquet.parts").exists()


def test_positions_follow_the_sub_voxel_density(tmp_path):
    lam = _expected((6, 6, 6), mean=(2.0, 1.0))
    dens = np.zeros((12, 12, 12), "f4")
    dens[1::2, 0::2, 1::2] = 3.0  # one sub-cell of eight per cell
    dens[0, 0, 0] = -1.0  # negative density never attracts a halo
    d = write_array(str(tmp_path / "d.zarr"), dens, chunks=6,
                    meta={"box_size": BOX, "kind": "density", "units": "1"})  # fmt: skip
    out = sample_catalogue(
        _painted(tmp_path / "p.zarr", lam, chunks=3), tmp_path / "h.parquet", seed=1,
        density=d.url,
    )  # fmt: skip
    table = pq.read_table(out.path)
    sub = BOX / 12
    ijk = np.stack([np.floor(table[a].to_numpy() / sub).astype(int) for a in "xyz"])
    assert table.num_rows > 100
    assert np.all(ijk[0] % 2 == 1) and np.all(ijk[1] % 2 == 0) and np.all(ijk[2] % 2 == 1)
    assert np.array_equal(_rebin(table, (6, 6, 6), 2).sum(), table.num_rows)


def test_velocities_are_those_of_the_cell(tmp_path):
    lam = _expected((6, 6, 6), mean=(2.0, 1.0))
    rng = np.random.default_rng(0)
    vel = rng.normal(0, 300, (3, 9, 9, 9)).astype("f4")  # another grid than the painted one
    v = write_array(str(tmp_path / "v.zarr"), vel, chunks=4,
                    meta={"box_size": BOX, "kind": "velocity", "units": "km/s"})  # fmt: skip
    out = sample_catalogue(
        _painted(tmp_path / "p.zarr", lam, chunks=(2, 3, 6)), tmp_path / "h.parquet", seed=3,
        velocity=v.url,
    )  # fmt: skip
    table = pq.read_table(out.path)
    cell = BOX / 9
    i, j, k = (np.floor(table[a].to_numpy() / cell).astype(int) for a in "xyz")
    for a, name in enumerate(("vx", "vy", "vz")):
        np.testing.assert_array_equal(table[name].to_numpy(), vel[a][i, j, k].astype(np.float64))
    assert column_units(table.schema)["vx"] == "km/s"


def test_negative_expectations_sample_as_zero_and_are_recorded(tmp_path):
    lam = _expected((6, 6, 6))
    lam[0, :3] = -0.5
    out = sample_catalogue(_painted(tmp_path / "p.zarr", lam, chunks=3), tmp_path / "h.parquet",
                           seed=3)  # fmt: skip
    table = pq.read_table(out.path)
    import json

    record = json.loads(table.schema.metadata[b"bigpaint"])
    assert record["negative_cells"] == 3 * 36
    assert record["negative_sum"] == pytest.approx(-0.5 * 3 * 36)
    counts = _rebin(table, (6, 6, 6), 2)
    assert counts[0, :3].sum() == 0 and counts[0, 3:].sum() > 0


def test_model_masses_follow_the_mass_function_of_the_bin(tmp_path):
    from scipy.integrate import cumulative_trapezoid

    from bigpaint.sim.fof import model_mass_function

    lam = _expected((8, 8, 8), mean=(4.0, 4.0))
    out = sample_catalogue(_painted(tmp_path / "p.zarr", lam, chunks=8), tmp_path / "h.parquet",
                           seed=8)  # fmt: skip
    table = pq.read_table(out.path)
    for c, (lo, hi) in enumerate(itertools.pairwise(BINS)):
        m = table["mass"].to_numpy()[table["bin"].to_numpy() == c]
        grid = np.geomspace(lo, hi, 2001)  # an independent, finer table of dn/dlnM
        dn = model_mass_function({}, grid, 0.0)
        cdf = cumulative_trapezoid(dn, np.log(grid), initial=0.0)
        assert stats.kstest(m, lambda x, g=grid, f=cdf: np.interp(x, g, f / f[-1])).pvalue > 1e-3
        # and not uniform in ln M: the mass function falls across the bin
        assert (
            stats.kstest(m, lambda x, lo=lo, hi=hi: np.log(x / lo) / np.log(hi / lo)).pvalue < 1e-3
        )
