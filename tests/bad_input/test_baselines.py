"""Bias baselines given Fields and files they cannot use: one line, exit 2, nothing touched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bigpaint.field import update_attrs, write_array
from bigpaint.stats.baselines import fit_bias

from .conftest import BOX, META, refused

BINS = [1e12, 1e13, 1e14]


def _counts(ws: Path, name: str = "counts.zarr", bins=BINS, grid: int = 16) -> str:
    rng = np.random.default_rng(3)
    write_array(
        str(ws / name),
        rng.poisson(0.5, (len(bins) - 1, grid, grid, grid)).astype("f4"),
        chunks=8,
        meta={**META, "kind": "halo_count", "units": "halos",
              "provenance": {"mass_bins": bins, "mass_units": "Msun/h"}},
    )  # fmt: skip
    return name


@pytest.fixture
def model(ws: Path) -> str:
    """A linear-bias model fitted on the workspace's 16^3 density (4 Mpc/h cells, z = 0)."""
    fit_bias([("in.zarr", _counts(ws))], order=1).save(ws / "m.json")
    return "m.json"


# ---------------------------------------------------------------- fit


def test_counts_of_another_kind(ws):
    refused(ws, ["baseline", "fit", "in.zarr", "dist.zarr", "m.json"],
            r"dist\.zarr is a 'distance' Field; bias models are fitted to halo counts")  # fmt: skip


def test_counts_without_mass_bins(ws):
    refused(ws, ["baseline", "fit", "in.zarr", "ints.zarr", "m.json"],
            r"ints\.zarr records no mass bins; record the 2 bin edges in Msun/h")  # fmt: skip


def test_counts_with_mass_bins_that_do_not_fit_the_channels(ws):
    _counts(ws, "three.zarr", bins=[1e12, 1e13, 1e14, 1e15])
    three = str(ws / "three.zarr")
    update_attrs(three, provenance={"mass_bins": [1e13, 1e12, 1e14, 1e15]})
    refused(ws, ["baseline", "fit", "in.zarr", "three.zarr", "m.json"],
            r"three\.zarr: provenance\.mass_bins .* is not a list of at least two positive, "
            r"increasing masses in Msun/h")  # fmt: skip
    update_attrs(three, provenance={"mass_bins": [1e12, 1e13, 1e14]})
    refused(ws, ["baseline", "fit", "in.zarr", "three.zarr", "m.json"],
            r"three\.zarr records 3 mass-bin edges for its 3 channel\(s\); record the 4 bin "
            r"edges in Msun/h")  # fmt: skip
    update_attrs(three, provenance={"mass_units": "kg"})
    refused(ws, ["baseline", "fit", "in.zarr", "three.zarr", "m.json"],
            r"mass bins are recorded in 'kg'")  # fmt: skip


def test_density_of_another_kind(ws):
    _counts(ws)
    refused(ws, ["baseline", "fit", "dist.zarr", "counts.zarr", "m.json"],
            r"dist\.zarr is a 'distance' Field; bias operators are built from a density contrast")  # fmt: skip


def test_counts_on_another_grid(ws):
    _counts(ws)
    refused(ws, ["baseline", "fit", "other.zarr", "counts.zarr", "m.json"],
            r"has grid \(8, 8, 8\), counts counts\.zarr \(16, 16, 16\)")  # fmt: skip


def test_joint_boxes_with_other_mass_bins(ws):
    _counts(ws)
    _counts(ws, "counts2.zarr", bins=[2e12, 1e13, 1e14])
    refused(ws, ["baseline", "fit", "in.zarr", "counts.zarr", "m.json", "--also", "in.zarr",
                 "counts2.zarr"], r"has mass bins .* a joint fit needs boxes that agree")  # fmt: skip


def test_model_file_that_exists_or_is_an_input(ws, model):
    refused(ws, ["baseline", "fit", "in.zarr", "counts.zarr", model],
            r"MODEL m\.json already exists; choose another path or --overwrite")  # fmt: skip
    refused(ws, ["baseline", "fit", "in.zarr", "counts.zarr", "counts.zarr/x.json"],
            r"lies inside input 2 counts\.zarr")  # fmt: skip
    refused(ws, ["baseline", "fit", "in.zarr", "counts.zarr", "notes"], r"is a directory")


def test_bad_order_and_smoothing(ws):
    _counts(ws)
    refused(ws, ["baseline", "fit", "in.zarr", "counts.zarr", "m.json", "--order", "3"],
            r"Invalid value for '--order'")  # fmt: skip
    refused(ws, ["baseline", "fit", "in.zarr", "counts.zarr", "m.json", "--smoothing", "-1"],
            r"smoothing must be >= 0 Mpc/h")  # fmt: skip
    refused(ws, ["baseline", "fit", "in.zarr", "counts.zarr", "m.json", "--smoothing", "200"],
            r"wider than the 64 Mpc/h box")  # fmt: skip


# ---------------------------------------------------------------- paint


def test_density_of_another_cell_size(ws, model):
    refused(ws, ["baseline", "paint", model, "other.zarr", "o.zarr"],
            r"other\.zarr has cells of 8 Mpc/h .* fitted on 4 Mpc/h cells; deposit the density "
            r"on 16 cells per side")  # fmt: skip


def test_density_of_another_box(ws, model):
    rng = np.random.default_rng(1)
    write_array(str(ws / "big.zarr"), rng.standard_normal((16,) * 3).astype("f4"), chunks=8,
                meta={**META, "box_size": 2 * BOX})  # fmt: skip
    refused(ws, ["baseline", "paint", model, "big.zarr", "o.zarr"],
            r"big\.zarr has cells of 8 Mpc/h \(128 Mpc/h box, 16 cells per side\)")  # fmt: skip


def test_density_of_another_kind_or_redshift(ws, model):
    refused(ws, ["baseline", "paint", model, "dist.zarr", "o.zarr"],
            r"dist\.zarr is a 'distance' Field, the bias model takes 'delta' Fields")  # fmt: skip
    rng = np.random.default_rng(1)
    write_array(str(ws / "z1.zarr"), rng.standard_normal((16,) * 3).astype("f4"), chunks=8,
                meta={**META, "redshift": 1.0})  # fmt: skip
    refused(ws, ["baseline", "paint", model, "z1.zarr", "o.zarr"],
            r"z1\.zarr records z = 1, the bias model holds at z = 0")  # fmt: skip


def test_model_file_that_is_not_a_bias_model(ws):
    (ws / "other.json").write_text(json.dumps({"kind": "something"}))
    for path, pattern in (
        ("notes/keep.txt", r"keep\.txt is not a bias model: not JSON"),
        ("other.json", r"other\.json is not a bias model \(no 'format'"),
        ("halo.pt", r"no bias model at halo\.pt: it is a directory"),
        ("nope.json", r"no bias model at nope\.json: the file does not exist"),
    ):
        refused(ws, ["baseline", "paint", path, "in.zarr", "o.zarr"], pattern)


def test_damaged_or_newer_model(ws, model):
    data = json.loads((ws / model).read_text())
    (ws / "newer.json").write_text(json.dumps({**data, "version": 99}))
    (ws / "cut.json").write_text(json.dumps({k: v for k, v in data.items() if k != "order"}))
    refused(ws, ["baseline", "paint", "newer.json", "in.zarr", "o.zarr"],
            r"version 99, this bigpaint reads up to version 1; upgrade bigpaint")  # fmt: skip
    refused(ws, ["baseline", "paint", "cut.json", "in.zarr", "o.zarr"],
            r"cut\.json is a damaged bias model \(order: Field required\)")  # fmt: skip


def test_output_onto_an_input_or_a_bad_seed(ws, model):
    refused(ws, ["baseline", "paint", model, "in.zarr", "in.zarr"],
            r"output in\.zarr is the same store as density in\.zarr")  # fmt: skip
    refused(ws, ["baseline", "paint", model, "in.zarr", "o.zarr", "--seed", "-1"],
            r"Invalid value for '--seed'")  # fmt: skip
    refused(ws, ["baseline", "paint", model, "in.zarr", "o.zarr", "--chunks", "4,4"],
            r"--chunks must be one or three positive integers")  # fmt: skip


# ---------------------------------------------------------------- choose-smoothing


def test_choose_smoothing_refusals(ws):
    _counts(ws)
    refused(ws, ["baseline", "choose-smoothing", "in.zarr", "counts.zarr", "in.zarr",
                 "counts.zarr", "--radii", "two"], r"--radii must be comma-separated radii")  # fmt: skip
    refused(ws, ["baseline", "choose-smoothing", "in.zarr", "counts.zarr", "other.zarr",
                 "counts.zarr"], r"must share the grid")  # fmt: skip
