"""Filters on integer and boolean Fields: float output by a stated rule, for any layout."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.cli import cli
from bigpaint.errors import ConfigError
from bigpaint.field import open_field, write_array
from bigpaint.filters import float_dtype, gaussian_filter
from bigpaint.testing import chunk_layouts

from .conftest import META

SHAPE = (12, 10, 8)


@pytest.mark.parametrize(
    ("dtype", "want"),
    [("f4", "f4"), ("f8", "f8"), ("i1", "f4"), ("u2", "f4"), ("i4", "f4"), ("bool", "f4"),
     ("i8", "f8"), ("u8", "f8")],
)  # fmt: skip
def test_float_dtype_rule(dtype, want):
    assert float_dtype(dtype) == np.dtype(want)


def test_complex_values_are_refused():
    with pytest.raises(ConfigError, match="dtype complex64"):
        float_dtype("c8")


@given(
    chunks=chunk_layouts(SHAPE),
    dtype=st.sampled_from(["i4", "bool", "i8", "u1"]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=25)
def test_integer_and_boolean_input_smooth_as_float_any_layout(chunks, dtype, seed):
    rng = np.random.default_rng(seed)
    a = (rng.random(SHAPE) > 0.6) if dtype == "bool" else rng.integers(0, 9, SHAPE).astype(dtype)
    got = gaussian_filter(a, 1.3, chunks=chunks)
    ref = ndi.gaussian_filter(a.astype(float_dtype(dtype)), 1.3, mode="wrap")
    assert got.dtype == float_dtype(dtype)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", ["i4", "bool"])
def test_smooth_cli_on_counts_and_masks_writes_floats(tmp_path, dtype):
    rng = np.random.default_rng(1)
    a = (rng.random((16,) * 3) > 0.7) if dtype == "bool" else rng.integers(0, 6, (16,) * 3)
    a = a.astype(dtype)
    inp = write_array(str(tmp_path / "in.zarr"), a, chunks=(6, 5, 5), meta=META).url
    out = str(tmp_path / "out.zarr")
    res = CliRunner().invoke(cli, ["smooth", inp, out, "--sigma-mpc", "9", "--workers", "1"])
    assert res.exit_code == 0, res.output
    got = open_field(out)["delta"].values
    assert got.dtype == np.float32
    ref = ndi.gaussian_filter(a.astype("f4"), 9 / 6.25, mode="wrap")
    np.testing.assert_array_equal(got, ref)
    assert len(np.unique(got)) > 100  # not truncated back to a handful of integers
