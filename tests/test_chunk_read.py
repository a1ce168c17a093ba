"""The guarded chunk reader: equal to the store's data for any layout, and a damaged chunk
named by index and key (a whole shard for sharded Fields)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.chunked.read import FieldArray, FieldSource, read_region
from bigpaint.errors import DamagedStoreError
from bigpaint.field import open_field, write_array

META = {"box_size": 10.0, "kind": "delta", "units": "1"}


@settings(max_examples=15)
@given(
    shape=st.tuples(*(st.integers(3, 9),) * 3),
    draw=st.data(),
    channels=st.sampled_from([None, 2]),
    read=st.tuples(*(st.integers(1, 4),) * 3),
)
def test_lazy_field_equals_the_whole_array(tmp_path_factory, shape, draw, channels, read):
    """open_field's variable, computed whole and read in arbitrary dask chunks, equals the
    array written, and so does a pickled FieldArray (what workers get)."""
    chunks = draw.draw(st.tuples(*(st.integers(1, min(5, n)) for n in shape)))
    url = str(tmp_path_factory.mktemp("f") / "a.zarr")
    full = (channels, *shape) if channels else shape
    data = np.random.default_rng(sum(shape)).standard_normal(full).astype("f4")
    write_array(url, data, chunks=chunks, meta=META)
    ds = open_field(url)
    var = ds[ds.encoding["bigpaint_variable"]].data
    np.testing.assert_array_equal(var.compute(), data)
    np.testing.assert_array_equal(var.rechunk((-1,) * (var.ndim - 3) + read).compute(), data)
    reader = pickle.loads(pickle.dumps(FieldArray(url, "delta", full, data.dtype)))
    region = (Ellipsis, slice(1, None), slice(None, -1), slice(2, 3))
    np.testing.assert_array_equal(reader[region], data[region])


def test_damaged_shard_is_named(tmp_path: Path):
    url = str(tmp_path / "s.zarr")
    data = np.arange(8**3, dtype="f4").reshape((8,) * 3)
    write_array(url, data, chunks=4, meta=META, shards=True, inner_chunks=2)
    (tmp_path / "s.zarr" / "delta" / "c" / "1" / "0" / "1").write_bytes(b"\x00" * 40)
    arr = zarr.open_group(url, mode="r")["delta"]
    with pytest.raises(DamagedStoreError, match=r"chunk \(1, 0, 1\) of variable 'delta' .*c/1/0/1"):
        read_region(arr, (slice(0, 8), slice(0, 3), slice(2, 7)), url=url, name="delta")
    np.testing.assert_array_equal(
        read_region(arr, (slice(0, 4),) * 3, url=url, name="delta"), data[:4, :4, :4]
    )


def test_an_error_that_is_not_the_stores_is_raised_as_it_is(tmp_path: Path):
    """Every chunk decodes, so a failing region read is not reported as a damaged store."""
    url = str(tmp_path / "a.zarr")
    write_array(url, np.zeros((4, 4, 4), "f4"), chunks=2, meta=META)
    arr = zarr.open_group(url, mode="r")["delta"]
    with pytest.raises(IndexError) as info:
        read_region(arr, (slice(0, 2), 7, slice(None)), url=url, name="delta")
    assert not isinstance(info.value, DamagedStoreError)


def test_a_group_where_the_variable_belongs_is_a_damaged_store(tmp_path: Path):
    """The lazy reader and the cached reader open the variable through one narrowing: a group
    in its place is named, where it used to fail later on a missing array attribute."""
    url = str(tmp_path / "a.zarr")
    write_array(url, np.zeros((4, 4, 4), "f4"), chunks=2, meta=META)
    ds = open_field(url)
    source = FieldSource.from_field(ds)
    group = zarr.open_group(url, mode="r+")
    del group["delta"]
    group.create_group("delta")
    with pytest.raises(DamagedStoreError, match=r"a\.zarr is damaged: 'delta' is not an array"):
        FieldArray(url, "delta", (4, 4, 4), np.dtype("f4"))[0, 0, 0]
    with pytest.raises(DamagedStoreError, match=r"'delta' is not an array; it must be rewritten"):
        source.read([(0, 2)] * 3)
