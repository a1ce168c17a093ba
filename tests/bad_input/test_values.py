"""Values outside their valid range, which used to be accepted without a word and give a
wrong or empty result: thresholds outside a distance map's range, impossible calibration
settings, non-positive densities and boxes, negative particle masses."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from bigpaint.errors import NegativeMassError
from bigpaint.io.particles import ArrayParticles

from .conftest import BOX, refused, refused_api

SEGMENT = ["segment", "dist.zarr", "seg.parquet"]


@pytest.fixture
def catalogs(ws: Path) -> tuple[str, str]:
    """Two small Parquet tables with a mass column (the options are refused before reading)."""
    table = pa.table({"mass": np.array([1e12, 3e12, 1e13])})
    for name in ("cat.parquet", "truth.parquet"):
        pq.write_table(table, ws / name)
    return "cat.parquet", "truth.parquet"


# ---------------------------------------------------------------- segmentation thresholds


def test_negative_foreground_threshold(ws):
    refused(
        ws,
        [*SEGMENT, "--threshold", "-0.5"],
        r"--threshold -0\.5 is outside a distance map's range: the map is >= 0 everywhere, so it "
        r"would take every voxel; give a value >= 0",
    )


def test_negative_marker_threshold(ws):
    refused(ws, [*SEGMENT, "--marker-threshold", "-1"], r"--marker-threshold -1\.0 is outside")


def test_trajectories_from_a_threshold_above_the_centre(ws):
    refused(
        ws,
        [*SEGMENT, "--threshold", "1.5", "--trajectories", "5"],
        r"trajectories run from --threshold up to 1 .*--threshold 1\.5 is not below 1",
    )


def test_a_single_trajectory_threshold(ws):
    refused(
        ws,
        [*SEGMENT, "--trajectories", "1"],
        r"--trajectories 1 records one threshold, and calibrating needs .* at least 2",
    )


def test_non_positive_mean_density(ws):
    refused(
        ws,
        [*SEGMENT, "--rho-bar", "-8.5e10"],
        r"--rho-bar must be a positive mean density in \(Msun/h\)/\(Mpc/h\)\^3, got -8\.5e\+10",
    )


# ---------------------------------------------------------------- calibration and mass functions


def test_more_fit_pieces_than_volume_bins(ws, catalogs):
    refused(
        ws,
        ["calibrate-threshold", *catalogs, "cal.json", "--segments", "8", "--volume-bins", "8"],
        r"--segments 8 needs more than 8 volume bins .*got --volume-bins 8",
    )


def test_negative_box_for_the_mass_function(ws, catalogs):
    refused(
        ws,
        ["hmf", catalogs[0], "--box", "-100"],
        r"--box must be a positive box side in Mpc/h, got -100",
    )


def test_nan_mass_cut(ws, catalogs):
    refused(ws, ["hmf", catalogs[0], "--min-mass", "nan"], r"--min-mass must be a finite mass")


# ---------------------------------------------------------------- negative particle masses


def _positions(n: int = 512) -> np.ndarray:
    return np.random.default_rng(3).random((n, 3)) * BOX


def _masses(n: int = 512, bad: int = 77) -> np.ndarray:
    m = np.full(n, 2.0)
    m[bad] = -1.5
    return m


def test_negative_masses_in_memory(ws):
    refused_api(
        ws,
        lambda: ArrayParticles(_positions(), masses=_masses(), box_size=BOX),
        r"masses: 1 of 512 masses are negative \(first: particle 77, mass -1\.5\); masses must "
        r"be >= 0",
        NegativeMassError,
    )


def test_negative_masses_in_an_npy_file(ws):
    from bigpaint.mesh.deposit import deposit_to_field

    np.save(ws / "pos.npy", _positions())
    np.save(ws / "m.npy", _masses())
    refused_api(
        ws,
        lambda: deposit_to_field(
            "pos.npy", "o.zarr", nmesh=16, box_size=BOX, masses="m.npy", quantity="mass"
        ),
        r"masses in m\.npy: 1 of \d+ masses are negative \(first: particle 77",
        NegativeMassError,
    )


def test_negative_masses_in_a_zarr_particle_store(ws):
    from bigpaint.mesh.deposit import deposit_to_field

    g = zarr.open_group(str(ws / "parts.zarr"), mode="w")
    g.create_array("positions", data=_positions(), chunks=(128, 3))
    g.create_array("masses", data=_masses(), chunks=(128,))
    g.attrs["box_size"] = BOX
    refused_api(
        ws,
        lambda: deposit_to_field("parts.zarr", "o.zarr", nmesh=16, quantity="mass"),
        r"parts\.zarr/masses: 1 of 512 masses are negative \(first: particle 77",
        NegativeMassError,
    )


def _gadget(path: Path, *, masses: np.ndarray | None, table: float) -> None:
    pos = _positions() * 1000.0  # kpc/h
    with h5py.File(path, "w") as f:
        h = f.create_group("Header")
        n = np.zeros(6, np.uint32)
        n[1] = len(pos)
        h.attrs["NumPart_ThisFile"] = n
        h.attrs["NumPart_Total"] = n
        h.attrs["NumPart_Total_HighWord"] = np.zeros(6, np.uint32)
        mt = np.zeros(6)
        mt[1] = table
        h.attrs["MassTable"] = mt
        h.attrs["BoxSize"] = BOX * 1000.0
        h.attrs["Redshift"] = 0.0
        h.attrs["NumFilesPerSnapshot"] = 1
        g = f.create_group("PartType1")
        g.create_dataset("Coordinates", data=pos.astype("f4"))
        if masses is not None:
            g.create_dataset("Masses", data=masses.astype("f4"))


def test_negative_masses_in_a_gadget_snapshot(ws):
    from bigpaint.mesh.deposit import deposit_to_field

    _gadget(ws / "snap.hdf5", masses=_masses(), table=0.0)
    refused_api(
        ws,
        lambda: deposit_to_field("snap.hdf5", "o.zarr", nmesh=16, quantity="mass"),
        r"snap\.hdf5: PartType1/Masses: 1 of 512 masses are negative \(first: particle 77",
        NegativeMassError,
    )


def test_negative_gadget_mass_table(ws):
    _gadget(ws / "snap.hdf5", masses=None, table=-0.65)
    refused(
        ws,
        ["deposit", "snap.hdf5", "o.zarr", "--grid", "16", "--quantity", "mass"],
        r"snap\.hdf5: MassTable gives particle type 1 the mass -0\.65; masses must be >= 0",
    )
