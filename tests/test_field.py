"""Fields: creation, metadata validation, completion state, resume/overwrite rules."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from bigpaint.errors import (
    FieldExistsError,
    FieldIncompleteError,
    FieldNotFoundError,
    MetadataError,
    NotAFieldError,
    ShapeError,
)
from bigpaint.field import create_field, field_info, format_info, job_token, open_field, write_array

from .conftest import META, tree_digest


def test_round_trip_lazy_with_metadata(field16, box16):
    ds = open_field(field16)
    da = ds["delta"]
    assert da.dims == ("x", "y", "z")
    assert da.chunks == ((6, 6, 4), (5, 5, 5, 1), (5, 5, 5, 1))  # zarr grid: ragged last block
    assert hasattr(da.data, "dask")
    np.testing.assert_array_equal(da.values, box16)
    assert ds.attrs["box_size"] == [100.0, 100.0, 100.0]
    assert ds.attrs["kind"] == "delta" and ds.attrs["units"] == "1"
    prov = ds.attrs["provenance"]
    assert prov["bigpaint_version"] and prov["created"]
    np.testing.assert_allclose(ds["x"].values[:2], [3.125, 9.375])  # cell centres in Mpc/h


def test_fsspec_url_round_trip(box16):
    url = "memory://bigpaint-test/f.zarr"
    write_array(url, box16, chunks=8, meta=META, overwrite=True)
    np.testing.assert_array_equal(open_field(url)["delta"].values, box16)
    assert field_info(url)["complete"]


def test_sharded_field_one_block_per_shard(tmp_path, box16):
    url = str(tmp_path / "s.zarr")
    w = write_array(url, box16, chunks=8, meta=META, shards=True, inner_chunks=4)
    arr = zarr.open_array(url, path="delta", mode="r")
    assert arr.shards == (8, 8, 8) and arr.chunks == (4, 4, 4)
    assert w.grid == (2, 2, 2)
    np.testing.assert_array_equal(open_field(url)["delta"].values, box16)


def test_four_d_channel_field(tmp_path, rng):
    data = rng.random((3, 8, 8, 8)).astype("f4")
    url = str(tmp_path / "c.zarr")
    write_array(url, data, chunks=4, meta={**META, "kind": "halo_count"})
    ds = open_field(url)
    assert ds["halo_count"].dims == ("channel", "x", "y", "z")
    np.testing.assert_array_equal(ds["halo_count"].values, data)


def test_unfinished_field_refused_then_resumed(tmp_path, box16):
    url = str(tmp_path / "u.zarr")
    job = job_token(op="test")
    w = create_field(url, shape=box16.shape, chunks=8, meta=META, job=job)
    w.write_block((0, 0, 0), box16[:8, :8, :8])
    with pytest.raises(FieldIncompleteError, match=r"unfinished \(1/8 blocks"):
        open_field(url)
    info = field_info(url)
    assert not info["complete"] and info["blocks_done"] == 1
    assert "UNFINISHED (1/8" in format_info(info)
    with pytest.raises(FieldIncompleteError):
        w.finalize()
    w2 = create_field(url, shape=box16.shape, chunks=8, meta=META, job=job)  # same job: resume
    assert len(w2.pending()) == 7 and (0, 0, 0) not in w2.pending()
    for idx in w2.pending():
        w2.write_block(idx, box16[w2.block_slices(idx)])
    w2.finalize()
    np.testing.assert_array_equal(open_field(url)["delta"].values, box16)


def test_finalize_removes_temp_files_of_a_killed_writer(tmp_path, box16):
    """zarr's local store writes ``<chunk>.<uuid>.partial`` and renames it; a kill mid-write
    leaves the temp file behind, and the resumed Field must not keep it."""
    url = tmp_path / "k.zarr"
    job = job_token(op="test")
    w = create_field(str(url), shape=box16.shape, chunks=8, meta=META, job=job)
    w.write_block((0, 0, 0), box16[:8, :8, :8])
    chunk = next(p for p in (url / "delta").rglob("*") if p.is_file() and p.parent.name != "delta")
    stale = chunk.with_name(chunk.name + ".0123456789abcdef0123456789abcdef.partial")
    stale.write_bytes(b"half a chunk")
    keep = url / "notes.partial"  # not zarr's temp-file pattern: left alone
    keep.write_text("user file")
    w2 = create_field(str(url), shape=box16.shape, chunks=8, meta=META, job=job)
    for idx in w2.pending():
        w2.write_block(idx, box16[w2.block_slices(idx)])
    w2.finalize()
    assert not stale.exists() and keep.exists()
    np.testing.assert_array_equal(open_field(str(url))["delta"].values, box16)


def test_existing_output_refused_unless_overwrite(tmp_path, field16, box16):
    before = tree_digest(field16)
    with pytest.raises(FieldExistsError, match="--overwrite"):
        create_field(field16, shape=box16.shape, chunks=8, meta=META, job="other")
    assert tree_digest(field16) == before
    w = create_field(field16, shape=(8, 8, 8), chunks=8, meta=META, overwrite=True)
    assert w.shape == (8, 8, 8)


def test_bad_metadata_and_shapes(tmp_path):
    with pytest.raises(MetadataError, match="box_size"):
        create_field(
            str(tmp_path / "a.zarr"), shape=(8, 8, 8), chunks=4, meta={**META, "box_size": -1}
        )
    with pytest.raises(MetadataError, match="kind"):
        create_field(
            str(tmp_path / "a.zarr"), shape=(8, 8, 8), chunks=4, meta={**META, "kind": "Bad Kind"}
        )
    with pytest.raises(MetadataError, match="redshift"):
        create_field(
            str(tmp_path / "a.zarr"), shape=(8, 8, 8), chunks=4, meta={**META, "redshift": -2}
        )
    with pytest.raises(ShapeError, match="shape"):
        create_field(str(tmp_path / "a.zarr"), shape=(8, 8), chunks=4, meta=META)
    assert not (tmp_path / "a.zarr").exists()


def test_open_errors(tmp_path):
    with pytest.raises(FieldNotFoundError, match="does not exist"):
        open_field(str(tmp_path / "nope.zarr"))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("hi")
    with pytest.raises(NotAFieldError, match="no Zarr v3 group"):
        open_field(str(tmp_path / "plain"))
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    with pytest.raises(NotAFieldError, match="not a bigpaint Field"):
        open_field(str(tmp_path / "g.zarr"))


def test_wrong_dimensionality_on_disk_refused(tmp_path):
    url = str(tmp_path / "two_d.zarr")
    w = write_array(url, np.zeros((4, 4, 4), "f4"), chunks=4, meta=META)
    g = zarr.open_group(url, mode="r+")
    del g["delta"]
    g.create_array("delta", shape=(4, 4), chunks=(4, 4), dtype="f4", dimension_names=("x", "y"))
    with pytest.raises(ShapeError, match="2 dimensions"):
        open_field(w.url)
