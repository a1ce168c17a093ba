"""bigpaint sample given inputs it cannot use: one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bigpaint.field import write_array
from bigpaint.sample import sample_catalogue

from .conftest import BOX, META, refused, refused_api

BINS = [1e12, 1e13, 1e14]


def _painted(ws: Path, name: str = "painted.zarr", value: float = 0.5, **meta) -> str:
    lam = np.full((2, 16, 16, 16), value, "f4")
    lam[1, 3, 4, 5] = value  # finite unless the value is not
    write_array(
        str(ws / name), lam, chunks=8,
        meta={**META, "kind": "halo_count", "cosmology": {},
              "provenance": {"mass_bins": BINS, "mass_units": "Msun/h"}, **meta},
    )  # fmt: skip
    return name


def test_a_field_that_is_not_counts(ws):
    refused(ws, ["sample", "in.zarr", "h.parquet", "--seed", "1"],
            r"in\.zarr is a 'delta' Field; sample takes painted halo counts")  # fmt: skip


def test_counts_without_mass_bins(ws):
    refused(ws, ["sample", "ints.zarr", "h.parquet", "--seed", "1"],
            r"ints\.zarr records no mass bins for its 1 channel\(s\); .* record the 2 edges")  # fmt: skip


def test_output_that_is_not_parquet(ws):
    p = _painted(ws)
    refused(ws, ["sample", p, "h.csv", "--seed", "1"], r"must end in \.parquet")


def test_existing_output(ws):
    p = _painted(ws)
    (ws / "h.parquet").write_text("mine")
    refused(ws, ["sample", p, "h.parquet", "--seed", "1"], r"h\.parquet already exists")


def test_model_masses_without_a_redshift(ws):
    p = _painted(ws, redshift=None)
    refused(ws, ["sample", p, "h.parquet", "--seed", "1"],
            r"records no redshift, which the model mass function needs; give a power-law slope")  # fmt: skip


def test_a_mass_function_that_is_neither(ws):
    p = _painted(ws)
    refused(ws, ["sample", p, "h.parquet", "--seed", "1", "--mass-function", "tinker"],
            r"mass function 'tinker' is neither 'model' nor a power-law slope")  # fmt: skip


def test_a_density_field_that_is_not_finer(ws):
    p = _painted(ws)
    refused(ws, ["sample", p, "h.parquet", "--seed", "1", "--density", "other.zarr"],
            r"density Field other\.zarr has shape \(8, 8, 8\); .* whole number of times finer")  # fmt: skip


def test_a_velocity_field_that_is_not_km_s(ws):
    p = _painted(ws)
    refused(ws, ["sample", p, "h.parquet", "--seed", "1", "--velocity", "in.zarr"],
            r"velocity Field in\.zarr has shape \(16, 16, 16\) in '1'; give a Field of 3 channels")  # fmt: skip


def test_a_companion_of_another_box(ws):
    p = _painted(ws)
    write_array(str(ws / "big.zarr"), np.ones((32,) * 3, "f4"), chunks=16,
                meta={**META, "box_size": 2 * BOX, "kind": "density"})  # fmt: skip
    refused(ws, ["sample", p, "h.parquet", "--seed", "1", "--density", "big.zarr"],
            r"has box \(128\.0, 128\.0, 128\.0\) Mpc/h, the painted Field \(64\.0, 64\.0, 64\.0\)")  # fmt: skip


def test_non_finite_expectations_leave_no_catalogue(ws):
    p = _painted(ws, "nan.zarr", value=np.nan)
    err = refused_api(
        ws, lambda: sample_catalogue(p, "h.parquet", seed=1),
        r"nan\.zarr: non-finite expected count at \(channel, x, y, z\) = \(0, \d+, \d+, \d+\); "
        r"repaint it",
    )  # fmt: skip
    assert not (ws / "h.parquet").exists() and err
