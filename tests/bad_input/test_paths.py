"""Outputs that would destroy inputs, scratch that is not bigpaint's, and block indices.

Every spelling of a store is the same store: ``./in.zarr/``, an absolute path, a symlink.
Each case is refused before anything is written, and the whole workspace is hashed before and
after (see ``conftest.refused``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bigpaint.errors import ChunkingError, PathConflictError
from bigpaint.field import create_field, open_field

from .conftest import META, ok, refused, refused_api

SMOOTH = ["--sigma-mpc", "4", "--workers", "1", "--overwrite"]


@pytest.mark.parametrize(
    "spelling",
    ["./in.zarr/", "in.zarr//", "ABS", "LINK", "notes/../in.zarr"],
    ids=["dot-slash", "double-slash", "absolute", "symlink", "dotdot"],
)
def test_smooth_onto_its_input_spelt_another_way(ws, spelling):
    if spelling == "ABS":
        spelling = str(ws / "in.zarr")
    if spelling == "LINK":
        os.symlink(ws / "in.zarr", ws / "link.zarr")
        spelling = "link.zarr"
    refused(ws, ["smooth", "in.zarr", spelling, *SMOOTH], r"is the same store as input")


def test_smooth_into_a_store_inside_its_input(ws):
    refused(ws, ["smooth", "in.zarr", "in.zarr/sub.zarr", *SMOOTH], r"lies inside input")


def test_smooth_over_a_directory_holding_its_input(ws):
    refused(ws, ["smooth", "in.zarr", ".", *SMOOTH], r"holds input")


@pytest.mark.parametrize("spelling", ["./in.zarr/", "ABS"], ids=["dot-slash", "absolute"])
def test_paint_onto_its_input(ws, spelling):
    out = str(ws / "in.zarr") if spelling == "ABS" else spelling
    refused(
        ws,
        ["paint", "--checkpoint", "halo.pt", "in.zarr", out, "--overwrite", "--workers", "1"],
        r"is the same store as input",
    )


def test_paint_onto_its_checkpoint(ws):
    refused(
        ws,
        ["paint", "--checkpoint", "halo.pt", "in.zarr", "./halo.pt", "--overwrite"],
        r"is the same store as checkpoint",
    )


@pytest.mark.parametrize("labels", ["dist.zarr", "./dist.zarr/"], ids=["same", "dot-slash"])
def test_segment_labels_onto_the_distance_map(ws, labels):
    refused(
        ws,
        ["segment", "dist.zarr", "cat.parquet", "--labels", labels, "--overwrite"],
        r"--labels .* is the same store as input",
    )


def test_segment_catalogue_onto_the_distance_map(ws):
    refused(
        ws,
        ["segment", "dist.zarr", str(ws / "dist.zarr"), "--overwrite"],
        r"output .* is the same store as input",
    )


def test_segment_labels_onto_the_catalogue(ws):
    refused(
        ws,
        ["segment", "dist.zarr", "cat.parquet", "--labels", "./cat.parquet"],
        r"output cat\.parquet is the same store as --labels",
    )


def test_segment_workdir_inside_the_distance_map(ws):
    refused(
        ws,
        ["segment", "dist.zarr", "cat.parquet", "--workdir", "dist.zarr/scratch"],
        r"--workdir dist\.zarr/scratch lies inside input",
    )


def test_deposit_onto_its_particle_file(ws):
    refused(
        ws,
        ["deposit", "particles.npy", "./particles.npy", "--grid", "8", "--box-size", "64"],
        r"is the same store as particles",
    )


def test_deposit_spill_inside_the_output(ws):
    refused(
        ws,
        ["deposit", "particles.npy", "o.zarr", "--grid", "8", "--box-size", "64",
         "--spill-dir", "o.zarr"],
        r"--spill-dir o\.zarr is the same store as output",
    )  # fmt: skip


def test_deposit_refusal_keeps_the_users_spill_dir(ws):
    """Positions outside the box are refused; the spill dir and its files stay."""
    np.save(ws / "far.npy", np.full((10, 3), 1000.0))
    refused(
        ws,
        ["deposit", "far.npy", "o.zarr", "--grid", "8", "--box-size", "64",
         "--spill-dir", "notes"],
        r"outside",
        after_start=True,
    )  # fmt: skip


def test_deposit_success_removes_only_its_own_spill(ws):
    ok(["deposit", "particles.npy", "o.zarr", "--grid", "8", "--box-size", "64",
        "--spill-dir", "notes", "--workers", "1"])  # fmt: skip
    assert sorted(os.listdir(ws / "notes")) == ["keep.txt"]
    assert (ws / "notes" / "keep.txt").read_text().startswith("a file bigpaint")
    assert open_field("o.zarr").attrs["bigpaint_complete"]


def test_deposit_refuses_an_empty_particle_file(ws):
    np.save(ws / "empty.npy", np.zeros((0, 3)))
    refused(
        ws,
        ["deposit", "empty.npy", "o.zarr", "--grid", "8", "--box-size", "64"],
        r"empty\.npy",
    )


def test_deposit_refuses_an_absent_particle_type(ws):
    from ..io.test_gadget import write_gadget

    write_gadget(ws / "snap", np.random.default_rng(0).random((64, 3)) * 64e3, box=64e3)
    refused(
        ws,
        ["deposit", "snap.hdf5", "o.zarr", "--grid", "8", "--ptype", "4"],
        r"PartType4|type 4",
    )


def test_run_overwrite_keeps_a_foreign_stage_folder(ws):
    (ws / "run" / "field").mkdir(parents=True)
    (ws / "run" / "field" / "mine.txt").write_text("the user's results")
    (ws / "p.yaml").write_text(
        "out: run\nstages:\n  - name: field\n    kind: power\n    params: {a: in.zarr, mas: null}\n"
    )
    refused(ws, ["run", "p.yaml", "--overwrite"], r"holds files this pipeline did not write")


def test_run_out_holding_an_input_it_would_redo(ws):
    """A stage folder that is redone may not hold the pipeline's own input."""
    (ws / "p.yaml").write_text(
        "out: run\nstages:\n  - name: field\n    kind: power\n    params: {a: in.zarr, mas: null}\n"
    )
    ok(["run", "p.yaml"])
    os.rename(ws / "in.zarr", ws / "run" / "field" / "in.zarr")
    (ws / "p.yaml").write_text(
        "out: run\nstages:\n  - name: field\n    kind: power\n"
        "    params: {a: run/field/in.zarr, mas: null}\n"
    )
    refused(ws, ["run", "p.yaml", "--overwrite"], r"holds input")


@pytest.mark.parametrize(
    "index",
    [(-1, 0, 0), (0, 0, 2), (0, 0), (0.5, 0, 0), ("a", 0, 0)],
    ids=["negative", "past-the-grid", "two-axes", "fraction", "text"],
)
def test_write_block_refuses_an_index_outside_the_grid(ws, index):
    w = create_field(str(ws / "w.zarr"), shape=(8, 8, 8), chunks=4, meta=META)
    before = w.done_mask().copy()
    refused_api(
        ws,
        lambda: w.write_block(index, np.zeros((4, 4, 4), "f4")),
        r"is not a block",
        ChunkingError,
    )
    np.testing.assert_array_equal(w.done_mask(), before)


def test_check_apart_is_the_one_rule(ws):
    from bigpaint.outputs import check_apart

    refused_api(
        ws,
        lambda: check_apart({"output": "in.zarr/"}, {"input": str(ws / "in.zarr")}),
        r"is the same store as input",
        PathConflictError,
    )
    check_apart({"output": "in2.zarr"}, {"input": "in.zarr"})  # a prefix is not a parent


def test_paint_fixed_tile_off_the_chunk_grid(ws):
    refused(
        ws,
        ["paint", "--checkpoint", "halo.pt", "in.zarr", "o.zarr", "--chunks", "8",
         "--fixed-tile", "3"],
        r"fixed.tile|multiple",
    )  # fmt: skip


def test_paint_fixed_tile_through_the_cli_is_bit_identical_across_chunks(ws):
    got = []
    for chunks in ("8", "16,8,16"):
        out = f"o{len(got)}.zarr"
        ok(["paint", "--checkpoint", "halo.pt", "in.zarr", out, "--chunks", chunks,
            "--fixed-tile", "8", "--workers", "1"])  # fmt: skip
        ds = open_field(out)
        assert ds.attrs["provenance"]["config"]["fixed_tile"] == 8
        got.append(ds[ds.attrs["bigpaint_variable"]].values)
    np.testing.assert_array_equal(got[0], got[1])
