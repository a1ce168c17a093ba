"""Inputs that are missing, unfinished, damaged or of the wrong kind: one line, exit 2."""

from __future__ import annotations

import numpy as np
import zarr

from bigpaint.field import create_field

from .conftest import META, refused


def test_missing_input(ws):
    refused(ws, ["smooth", "nope.zarr", "o.zarr", "--sigma-mpc", "1"], r"no Field at .*nope\.zarr")


def test_directory_that_is_not_a_field(ws):
    refused(ws, ["smooth", "notes", "o.zarr", "--sigma-mpc", "1"], r"notes is not a Field")
    refused(ws, ["info", "notes"], r"notes is not a Field")


def test_unfinished_input(ws):
    w = create_field(str(ws / "half.zarr"), shape=(8, 8, 8), chunks=4, meta=META)
    w.write_block((0, 0, 0), np.zeros((4, 4, 4), "f4"))
    refused(
        ws,
        ["smooth", "half.zarr", "o.zarr", "--sigma-mpc", "1"],
        r"unfinished \(1/8 blocks written\) and cannot be an input",
    )


def test_two_dimensional_variable(ws):
    g = zarr.open_group(str(ws / "other.zarr"), mode="r+")
    del g["delta"]
    g.create_array("delta", shape=(4, 4), chunks=(4, 4), dtype="f4", dimension_names=("x", "y"))
    refused(ws, ["smooth", "other.zarr", "o.zarr", "--sigma-mpc", "1"], r"has 2 dimensions")
