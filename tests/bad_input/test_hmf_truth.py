"""A truth catalogue of the wrong kind for ``bigpaint hmf``: one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bigpaint.sim.fof import write_catalogue

from .conftest import BOX, refused

CONNECTED = {"format": "bigpaint-connected-protohalos", "box_size": [BOX] * 3}


@pytest.fixture
def catalogues(ws: Path) -> Path:
    """A catalogue, a FoF catalogue, a plain Parquet with a mass column, and a connected truth
    that lost its n_cells column."""
    mass = np.array([1e12, 3e12, 1e13])
    box = {"bigpaint": json.dumps({"box_size": BOX})}
    pq.write_table(pa.table({"mass": mass}).replace_schema_metadata(box), ws / "cat.parquet")
    pq.write_table(pa.table({"mass": mass}).replace_schema_metadata(box), ws / "plain.parquet")
    fof_meta = {"box_size": BOX, "particle_mass": 1e11}
    write_catalogue(pa.table({"mass": mass}), ws / "halos.parquet", fof_meta)
    damaged = pa.table({"id": [1, 2, 3], "mass": mass}).replace_schema_metadata(
        {"bigpaint": json.dumps({**CONNECTED, "cell_mass": 1e11, "complete_above": 1e12})}
    )
    pq.write_table(damaged, ws / "damaged.parquet")
    return ws


HMF = ["hmf", "cat.parquet", "--out", "out/h", "--truth"]


def test_a_fof_catalogue_named_as_the_connected_truth(catalogues):
    refused(
        catalogues,
        [*HMF, "halos.parquet", "--truth-kind", "connected"],
        r"halos\.parquet is a FoF halo catalogue .*, not a connected-truth catalogue .*; give the "
        r"simulation's protohalos_connected\.parquet, or --truth-kind auto",
    )


def test_a_truth_of_neither_kind(catalogues):
    for kind, wanted in (("connected", "protohalos_connected"), ("fof", "halos")):
        refused(
            catalogues,
            [*HMF, "plain.parquet", "--truth-kind", kind],
            rf"plain\.parquet is neither a connected-truth nor a FoF halo catalogue of bigpaint "
            rf"simulate .*; give the simulation's {wanted}\.parquet",
        )


def test_a_damaged_connected_truth(catalogues):
    refused(
        catalogues,
        [*HMF, "damaged.parquet"],
        r"damaged\.parquet is a damaged connected-truth catalogue \(missing halo_id, n_cells, "
        r"x, y, z, fof_mass, fof_n_particles, mass_fraction\)",
    )


def test_a_truth_kind_without_a_truth(catalogues):
    refused(
        catalogues,
        ["hmf", "cat.parquet", "--truth-kind", "fof"],
        r"--truth-kind fof names the kind of --truth; give --truth",
    )
