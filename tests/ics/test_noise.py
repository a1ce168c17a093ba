"""White noise depends on the seed alone: not on chunks, workers or scheduler."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ConfigError
from bigpaint.field import open_field
from bigpaint.ics.noise import white_noise, white_noise_array
from bigpaint.testing import regular_chunks


def _whole(seed: int, n: int = 16, tile: int = 8) -> np.ndarray:
    return white_noise_array((n, n, n), (slice(0, n),) * 3, seed=seed, tile=tile)


@given(chunks=regular_chunks((16, 16, 16), min_size=3), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10)
def test_bit_identical_for_any_chunking(tmp_path_factory, chunks, seed):
    tmp = tmp_path_factory.mktemp("wn")
    w = white_noise(str(tmp / "n.zarr"), grid=16, box_size=50.0, seed=seed, chunks=chunks, tile=8)
    np.testing.assert_array_equal(open_field(w.url)["white_noise"].values, _whole(seed))


def test_distributed_workers_give_same_field(tmp_path):
    from bigpaint.cluster import connect
    from bigpaint.config import LocalClusterConfig

    with connect(LocalClusterConfig(n_workers=2)):
        w = white_noise(
            str(tmp_path / "d.zarr"), grid=16, box_size=50.0, seed=9, chunks=(5, 16, 3), tile=8
        )
        got = open_field(w.url)["white_noise"].values
    np.testing.assert_array_equal(got, _whole(9))


def test_unit_gaussian_statistics():
    a = white_noise_array((64, 64, 64), (slice(0, 64),) * 3, seed=1, tile=32)
    n = a.size
    assert abs(a.mean()) < 5 / np.sqrt(n)
    assert abs(a.std() - 1) < 5 / np.sqrt(2 * n)
    assert not np.array_equal(a[:32, :32, :32], a[32:, :32, :32])  # tiles are independent
    assert not np.array_equal(_whole(1), _whole(2))


def test_bad_inputs(tmp_path):
    with pytest.raises(ConfigError, match="not divisible by the noise tile 32"):
        white_noise(str(tmp_path / "x.zarr"), grid=48, box_size=1.0, seed=0, chunks=16)
    with pytest.raises(ConfigError, match="seed"):
        white_noise(str(tmp_path / "x.zarr"), grid=32, box_size=1.0, seed=-1, chunks=16)
    assert not (tmp_path / "x.zarr").exists()
