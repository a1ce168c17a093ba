"""The patch sampler: periodic crops, aligned pairs, region split, weighted sampling, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from bigpaint.chunked.read import FieldSource
from bigpaint.errors import ConfigError, MetadataError, NonFiniteError, ShapeError
from bigpaint.field import open_field, write_array
from bigpaint.painters import build_painter
from bigpaint.train.config import DataConfig
from bigpaint.train.sampler import (
    ArraySource,
    PatchSampler,
    Region,
    inverse_frequency_weights,
)
from bigpaint.train.training_data import TrainingData

N = 32
VAL = Region((20, 4, 28), 10)  # crosses the periodic edge along z


def _index_field() -> np.ndarray:
    return np.arange(N**3, dtype="f4").reshape(N, N, N)


def _cube_indices(region: Region) -> set[int]:
    ax = [np.arange(o, o + region.size) % N for o in region.origin]
    return set(np.ravel_multi_index(np.ix_(*ax), (N, N, N)).ravel().tolist())


def test_field_and_array_sources_read_the_same_periodic_windows(boxes):
    arr = boxes["array_delta"]
    fs = FieldSource.from_field(open_field(boxes["delta"]))
    window = [(-5, 7), (28, 40), (3, 9)]
    ref = np.take(
        np.take(np.take(arr, range(-5, 7), 0, mode="wrap"), range(28, 40), 1, mode="wrap"),
        range(3, 9),
        2,
    )
    np.testing.assert_array_equal(ArraySource(arr).read(window), ref)
    np.testing.assert_array_equal(fs.read(window), ref)


@pytest.mark.parametrize("symmetries", [False, True])
def test_target_is_the_centre_of_the_input(symmetries):
    src = ArraySource(np.random.default_rng(0).standard_normal((N, N, N)).astype("f4"))
    s = PatchSampler(
        [src], [src], in_size=20, out_size=12, ndim=3, validation=VAL, symmetries=symmetries, seed=1
    )
    x, y = s.sample(6)
    assert x.shape == (6, 1, 20, 20, 20) and y.shape == (6, 1, 12, 12, 12)
    np.testing.assert_array_equal(x[:, :, 4:-4, 4:-4, 4:-4], y)


def test_projected_pairs_stay_aligned():
    src = ArraySource(np.random.default_rng(1).random((N, N, N)).astype("f4"))
    s = PatchSampler(
        [src], [src], in_size=16, out_size=8, ndim=2, validation=VAL, projection_depth=4, seed=2
    )
    x, y = s.sample(8)
    assert x.shape == (8, 1, 16, 16) and y.shape == (8, 1, 8, 8)
    np.testing.assert_allclose(x[:, :, 4:-4, 4:-4], y, rtol=1e-6)
    # a projection sums 4 voxels of values in [0, 1)
    assert 0 <= x.min() and x.max() < 4 and x.mean() > 1.5


def test_training_windows_never_touch_the_validation_cube():
    src = ArraySource(_index_field())
    val = _cube_indices(VAL)
    s = PatchSampler([src], [src], in_size=12, out_size=4, ndim=3, validation=VAL, seed=3)
    seen: set[int] = set()
    for _ in range(40):
        x, _ = s.sample(5)
        seen |= set(x.astype(np.int64).ravel().tolist())
    assert not (seen & val)
    assert len(seen) > N**3 // 3  # and it does roam the rest of the box


def test_validation_targets_lie_in_the_cube():
    src = ArraySource(_index_field())
    val = _cube_indices(VAL)
    s = PatchSampler(
        [src], [src], in_size=12, out_size=4, ndim=3, validation=VAL, split="validation", seed=4
    )
    _, y = s.sample(20)
    assert set(y.astype(np.int64).ravel().tolist()) <= val


def test_projected_training_slabs_avoid_the_cube():
    src = ArraySource(np.ones((N, N, N), "f4"))
    mark = np.zeros((N, N, N), "f4")
    ax = [np.arange(o, o + VAL.size) % N for o in VAL.origin]
    mark[np.ix_(*ax)] = 1
    s = PatchSampler(
        [src, ArraySource(mark)],
        [src],
        in_size=8,
        out_size=8,
        ndim=2,
        validation=VAL,
        projection_depth=4,
        seed=5,
    )
    x, _ = s.sample(50)
    assert x[:, 1].max() == 0


def test_inverse_frequency_weights_hand_computed():
    v = np.array([1.0, 2.0, 5.0, 10.0, 50.0, 0.5, 200.0])
    w = inverse_frequency_weights(v, bins=2, vmin=1.0, vmax=100.0)
    np.testing.assert_allclose(w, [1 / 3, 1 / 3, 1 / 3, 1 / 2, 1 / 2, 0, 0])
    with pytest.raises(ConfigError, match="vmin < vmax"):
        inverse_frequency_weights(v, vmin=5.0, vmax=1.0)


def test_weighted_sampling_flattens_the_target_distribution():
    rng = np.random.default_rng(6)
    target = np.exp(rng.exponential(1.5, (N, N, N))).astype("f4")  # many small, few large
    bins = 5
    vmax = float(target.max())
    w = inverse_frequency_weights(target, bins=bins, vmin=1.0, vmax=vmax)
    s = PatchSampler(
        [ArraySource(target)],
        [ArraySource(target)],
        in_size=5,
        out_size=1,
        ndim=3,
        validation=Region((0, 0, 0), 4),
        weights=w,
        seed=7,
    )
    _, y = s.sample(3000)
    edges = np.geomspace(1.0, vmax, bins + 1)
    frac = np.histogram(y.ravel(), edges)[0] / y.size
    assert np.all(np.abs(frac - 1 / bins) < 0.05), frac
    unweighted = np.histogram(target, edges)[0] / target.size
    assert unweighted[0] > 0.6  # what sampling without weights would give


def test_sampler_is_seeded_and_resumable():
    src = ArraySource(np.random.default_rng(8).standard_normal((N, N, N)).astype("f4"))
    kw = dict(in_size=10, out_size=10, ndim=3, validation=VAL)
    a = PatchSampler([src], [src], seed=9, **kw)
    b = PatchSampler([src], [src], seed=9, **kw)
    np.testing.assert_array_equal(a.sample(3)[0], b.sample(3)[0])
    state = a.state()
    first = a.sample(2)[0]
    a.set_state(state)
    np.testing.assert_array_equal(a.sample(2)[0], first)


def test_sampler_errors():
    src = ArraySource(np.zeros((N, N, N), "f4"))
    with pytest.raises(ConfigError, match="projection_depth"):
        PatchSampler([src], [src], in_size=8, out_size=8, ndim=2, validation=VAL)
    with pytest.raises(ShapeError, match="exceeds the grid"):
        PatchSampler([src], [src], in_size=40, out_size=8, ndim=3, validation=VAL)
    with pytest.raises(ShapeError, match="even"):
        PatchSampler([src], [src], in_size=9, out_size=4, ndim=3, validation=VAL)
    big = PatchSampler(
        [src], [src], in_size=30, out_size=30, ndim=3, validation=Region((0, 0, 0), 20)
    )
    with pytest.raises(ConfigError, match="fits around the validation cube"):
        big.sample(1)
    bad = np.zeros((N, N, N), "f4")
    bad[5, 5, 5] = np.nan
    s = PatchSampler(
        [ArraySource(bad, "bad.zarr")],
        [src],
        in_size=N,
        out_size=N - 2,
        ndim=3,
        validation=Region((0, 0, 0), 4),
    )
    with pytest.raises(NonFiniteError, match=r"bad\.zarr"):
        s._load(s.inputs, [(0, N)] * 3, None)


def test_training_data_checks_and_fits_normalizations(boxes, tmp_path):
    painter = build_painter("halo-painter")
    data = DataConfig(
        inputs=[boxes["delta"]],
        targets=[boxes["counts"]],
        patch=8,
        validation={"origin": [4, 4, 4], "size": 12},
        input_norm=[{"kind": "affine", "shift": "auto", "scale": "auto"}],
    )
    td = TrainingData.open(data, painter, seed=0)
    assert (td.in_size, td.out_size, td.cell_size) == (16, 8, 2.0)
    arr = boxes["array_delta"]
    keep = np.ones(arr.shape, bool)
    keep[4:16, 4:16, 4:16] = False
    norm = painter.input_norm[0]
    assert norm.shift == pytest.approx(arr[keep].mean(), rel=1e-5)
    assert norm.scale == pytest.approx(arr[keep].std(), rel=1e-5)
    x, y = td.train.sample(2)
    assert x.shape == (2, 1, 16, 16, 16) and y.shape == (2, 1, 8, 8, 8)
    with pytest.raises(ConfigError, match="1 input / 1 output channels, the data give 2 / 1"):
        TrainingData.open(data.model_copy(update={"inputs": [boxes["two"]]}), painter)
    other = str(tmp_path / "other.zarr")
    write_array(other, arr, chunks=16, meta={"box_size": 100.0, "kind": "delta", "units": "1"})
    with pytest.raises(MetadataError, match="box size"):
        TrainingData.open(data.model_copy(update={"inputs": [other]}), painter)
    with pytest.raises(ConfigError, match="per channel"):
        TrainingData.open(
            data.model_copy(update={"inputs": [boxes["two"]]}),
            build_painter("halo-painter", {"in_channels": 2}),
        )


def test_more_boxes_are_drawn_uniformly_and_whole(tmp_path):
    """Patches of further boxes come from anywhere in them (no validation cube), about as
    often as from the first; the validation split never sees them."""
    from bigpaint.train.sampler import ArraySource, PatchSampler, Region

    n = 16
    first = ArraySource(np.zeros((n, n, n), "f4"))
    more = [
        (
            [ArraySource(np.full((n, n, n), float(k), "f4"))],
            [ArraySource(np.full((n, n, n), float(k), "f4"))],
        )
        for k in (1, 2)
    ]
    cube = Region((0, 0, 0), 8)
    s = PatchSampler(
        [first], [first], in_size=6, out_size=4, ndim=3, validation=cube, more=more, seed=3
    )
    x, y = s.sample(300)
    box = x[:, 0, 0, 0, 0].astype(int)
    assert set(np.unique(box)) == {0, 1, 2}
    assert np.all(np.abs(np.bincount(box) - 100) < 40)
    np.testing.assert_array_equal(x[:, :, 1:-1, 1:-1, 1:-1], y)
    with pytest.raises(ConfigError, match="training patches only"):
        PatchSampler(
            [first], [first], in_size=6, out_size=4, ndim=3, validation=cube, more=more,
            split="validation",
        )  # fmt: skip
