"""One-point and morphology statistics: chunked results equal their whole-array versions."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigpaint.errors import ConfigError, MetadataError, NonFiniteError, ShapeError
from bigpaint.field import write_array
from bigpaint.stats.dice import dice
from bigpaint.stats.onepoint import (
    minmax,
    order_statistics,
    pixel_pdf,
    quantiles,
    subvolume_means,
    top_fraction_thresholds,
)
from bigpaint.stats.peaks import find_peaks, peak_counts
from bigpaint.testing import chunk_layouts

shapes = st.tuples(st.integers(2, 11), st.integers(2, 11), st.integers(2, 11))


@st.composite
def fields(draw: st.DrawFn, dtype: str | None = None) -> tuple[np.ndarray, tuple]:
    shape = draw(shapes)
    seed = draw(st.integers(0, 2**16))
    dt = dtype or draw(st.sampled_from(["f4", "f8", "i4"]))
    rng = np.random.default_rng(seed)
    if dt == "i4":
        x = rng.poisson(1.5, shape).astype(dt)  # many ties
    else:
        x = rng.standard_normal(shape).astype(dt)
        x.flat[rng.integers(0, x.size, 3)] = x.flat[0]  # some ties
    return x, draw(chunk_layouts(shape, max_parts=4))


# ---------------------------------------------------------------- order statistics, PDF


@settings(max_examples=20, deadline=None)
@given(fields(), st.data())
def test_order_statistics_are_exact(data, draw) -> None:
    x, chunks = data
    ranks = draw.draw(st.lists(st.integers(0, x.size - 1), min_size=1, max_size=6))
    got = order_statistics(da.from_array(x, chunks=chunks), ranks)
    np.testing.assert_array_equal(got, np.sort(x.astype(np.float64), axis=None)[ranks])


@settings(max_examples=8, deadline=None)
@given(fields(dtype="f8"))
def test_quantiles_and_thresholds_equal_numpy(data) -> None:
    x, chunks = data
    d = da.from_array(x, chunks=chunks)
    q = [0.0, 0.05, 0.5, 0.93, 1.0]
    np.testing.assert_allclose(quantiles(d, q), np.quantile(x, q), rtol=1e-12, atol=1e-12)
    fr = [0.01, 0.1, 0.5, 1.0]
    srt = np.sort(x, axis=None)
    want = [srt[x.size - max(1, round(f * x.size))] for f in fr]
    np.testing.assert_array_equal(top_fraction_thresholds(d, fr), want)
    assert minmax(d) == (x.min(), x.max())


def test_negative_zero_and_extremes() -> None:
    x = np.array([0.0, -0.0, -1e300, 1e300, 5e-324, -5e-324, 1.0, -1.0]).reshape(2, 2, 2)
    got = order_statistics(da.from_array(x, chunks=1), range(8))
    np.testing.assert_array_equal(got, np.sort(x, axis=None))


@settings(max_examples=25, deadline=None)
@given(fields(), st.integers(1, 12), st.booleans())
def test_pixel_pdf_equals_numpy_histogram(data, bins, log) -> None:
    x, chunks = data
    if log:
        x = np.abs(x) + (x == 0)  # positive values for log bins... with a few exact ones
    ds = pixel_pdf(da.from_array(x, chunks=chunks), bins, log=log)
    lo = x[x > 0].min() if log else x.min()
    edges = np.geomspace(lo, x.max(), bins + 1) if log else np.linspace(x.min(), x.max(), bins + 1)
    if not log and x.min() == x.max():
        edges = [*ds.lo.values.tolist(), ds.hi.values[-1]]
    want, _ = np.histogram(x.astype(np.float64), edges)
    np.testing.assert_array_equal(ds["count"].values, want)
    assert ds["count"].sum() + ds.attrs["n_below"] + ds.attrs["n_above"] == x.size
    np.testing.assert_allclose(ds.pdf.values, want / (x.size * np.diff(edges)), rtol=1e-5)


def test_pixel_pdf_explicit_edges_and_range(box16) -> None:
    edges = [-1.0, 0.0, 0.5, 2.0]
    ds = pixel_pdf(da.from_array(box16, chunks=(6, 5, 5)), edges)
    want, _ = np.histogram(box16, edges)
    np.testing.assert_array_equal(ds["count"].values, want)
    assert ds.attrs["n_below"] == int((box16 < -1).sum()) and ds.attrs["n_above"] == int(
        (box16 > 2).sum()
    )
    ds = pixel_pdf(box16, 4, range=(-1, 1))
    np.testing.assert_array_equal(ds["count"].values, np.histogram(box16, 4, range=(-1, 1))[0])
    with pytest.raises(ConfigError, match="log bins"):
        pixel_pdf(box16, 4, range=(-1, 1), log=True)


@settings(max_examples=20, deadline=None)
@given(fields(dtype="f8"), st.data())
def test_subvolume_means_equal_whole_array(data, draw) -> None:
    x, chunks = data
    d = tuple(draw.draw(st.integers(1, n)) for n in x.shape)
    ds = subvolume_means(da.from_array(x, chunks=chunks), d)
    want = np.zeros(d)
    for s in itertools.product(*(range(v) for v in d)):
        sel = tuple((np.arange(n) * v) // n == i for n, v, i in zip(x.shape, d, s, strict=True))
        want[s] = x[np.ix_(*sel)].mean()
    np.testing.assert_allclose(ds["mean"].values.reshape(d), want, rtol=1e-12, atol=1e-14)
    assert int(ds.n_voxels.sum()) == x.size


# ---------------------------------------------------------------- peaks


def _peaks_reference(x: np.ndarray) -> np.ndarray:
    """Strict periodic 26-neighbour maxima by 26 rolls of the whole array."""
    peak = np.ones(x.shape, bool)
    for o in itertools.product((-1, 0, 1), repeat=3):
        if o != (0, 0, 0):
            peak &= x > np.roll(x, o, axis=(0, 1, 2))
    return x[peak]


@settings(max_examples=25, deadline=None)
@given(fields(), st.integers(1, 8), st.sampled_from(["numpy", "dask"]))
def test_peak_counts_equal_whole_array(data, bins, kind) -> None:
    x, chunks = data
    src = x if kind == "numpy" else da.from_array(x, chunks=chunks)
    ds = peak_counts(src, bins, chunks=chunks if kind == "numpy" else None)
    heights = _peaks_reference(x.astype(np.float64))
    lo, hi = float(x.min()), float(x.max())
    edges = np.linspace(lo, hi if hi > lo else lo + (1.0 if lo == 0 else abs(lo) * 1e-6), bins + 1)
    np.testing.assert_array_equal(ds["count"].values, np.histogram(heights, edges)[0])
    assert ds.attrs["n_peaks"] == heights.size


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_peak_counts_of_a_field_on_disk(tmp_path_factory, data) -> None:
    shape = data.draw(shapes)
    x = np.random.default_rng(data.draw(st.integers(0, 999))).standard_normal(shape).astype("f4")
    chunks = data.draw(st.tuples(*(st.integers(max(1, n // 3), n) for n in shape)))
    url = str(tmp_path_factory.mktemp("pk") / "f.zarr")
    write_array(url, x, chunks=chunks, meta={"box_size": 10.0, "kind": "delta", "units": "1"})
    ds = peak_counts(url, [-10.0, 0.0, 10.0])
    heights = _peaks_reference(x)
    np.testing.assert_array_equal(ds["count"].values, np.histogram(heights, [-10, 0, 10])[0])


def test_peaks_across_the_periodic_seam() -> None:
    x = np.zeros((6, 7, 8))
    x[0, 0, 0] = 5.0  # corner voxel: its neighbours wrap around all three axes
    x[5, 6, 7] = 4.0  # the diagonal neighbour of the corner across the seam: not a peak
    x[3, 3, 3] = 2.0
    ds = peak_counts(da.from_array(x, chunks=(2, 3, 4)), [0.0, 3.0, 6.0])
    assert ds["count"].values.tolist() == [1, 1]
    window = np.pad(x, 1, mode="wrap")
    assert find_peaks(window).sum() == 2
    plateau = np.ones((4, 4, 4))
    assert peak_counts(plateau, 2).attrs["n_peaks"] == 0


# ---------------------------------------------------------------- Dice


def _dice_reference(a, b, top, d, shifts):
    n = a.size
    srt_a, srt_b = np.sort(a, axis=None), np.sort(b, axis=None)
    side = [s // v for s, v in zip(a.shape, d, strict=True)]
    out = {k: [] for k in ("dice", "o_mean", "r_mean", "r_std")}
    for f in top:
        m = max(1, round(f * n))
        ma, mb = a >= srt_a[n - m], b >= srt_b[n - m]
        out["dice"].append(2 * (ma & mb).sum() / (ma.sum() + mb.sum()))

        def per_sub(mb_, ma=ma):
            vals = []
            for s in itertools.product(*(range(v) for v in d)):
                sl = tuple(slice(i * w, (i + 1) * w) for i, w in zip(s, side, strict=True))
                na, nb, nab = ma[sl].sum(), mb_[sl].sum(), (ma[sl] & mb_[sl]).sum()
                vals.append(2 * nab / (na + nb) if na + nb else np.nan)
            return vals

        out["o_mean"].append(np.nanmean(per_sub(mb)))
        rand = []
        for sh in shifts:
            rand += per_sub(
                np.roll(mb, [v * w for v, w in zip(sh, side, strict=True)], axis=(0, 1, 2))
            )
        out["r_mean"].append(np.nanmean(rand))
        out["r_std"].append(np.nanstd(rand, ddof=1))
    return {k: np.array(v) for k, v in out.items()}


@settings(max_examples=12, deadline=None)
@given(st.data())
def test_dice_equals_whole_array(data) -> None:
    d = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 3)))
    side = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)))
    shape = tuple(v * w for v, w in zip(d, side, strict=True))
    rng = np.random.default_rng(data.draw(st.integers(0, 999)))
    a = rng.standard_normal(shape)
    b = 0.7 * a + 0.5 * rng.standard_normal(shape)
    if data.draw(st.booleans()):
        a, b = np.rint(a * 2), np.rint(b * 2)  # ties at the thresholds
    top = data.draw(
        st.lists(
            st.sampled_from([0.05, 0.1, 0.2, 0.5, 0.8, 1.0]), min_size=1, max_size=4, unique=True
        )
    )
    ca = data.draw(chunk_layouts(shape, max_parts=3))
    cb = data.draw(chunk_layouts(shape, max_parts=3))
    ds = dice(da.from_array(a, chunks=ca), da.from_array(b, chunks=cb), top, subvolumes=d)
    shifts = [s for s in itertools.product(*[(0, v // 2) if v >= 2 else (0,) for v in d]) if any(s)]
    ref = _dice_reference(a, b, top, d, shifts)
    np.testing.assert_allclose(ds.dice.values, ref["dice"], rtol=1e-12)
    np.testing.assert_allclose(ds.dice_mean.values, ref["o_mean"], rtol=1e-12)
    np.testing.assert_allclose(ds.random_mean.values, ref["r_mean"], rtol=1e-12)
    np.testing.assert_allclose(
        ds.random_std.values, ref["r_std"], rtol=1e-10, atol=1e-12, equal_nan=True
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_allclose(
            ds.normalized.values,
            (ref["o_mean"] - ref["r_mean"]) / (1 - ref["r_mean"]),
            rtol=1e-10,
            atol=1e-12,  # a difference of two equal means is rounding, of either sign
            equal_nan=True,
        )


def test_dice_physics_and_baseline() -> None:
    """Identical fields overlap perfectly; independent ones sit at the random baseline ~ f."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal((16, 16, 16))
    same = dice(a, a.copy(), [0.1, 0.5], subvolumes=4)
    np.testing.assert_allclose(same.dice.values, 1.0)
    np.testing.assert_allclose(same.normalized.values, 1.0)
    assert np.all(same.significance.values > 5)
    np.testing.assert_allclose(same.random_mean.values, [0.1, 0.5], atol=0.05)
    other = dice(a, rng.standard_normal(a.shape), [0.1, 0.5], subvolumes=4)
    np.testing.assert_allclose(other.dice.values, [0.1, 0.5], atol=0.05)
    assert np.all(np.abs(other.significance.values) < 4)
    assert same.attrs["n_random_pairs"] == 7 * 64


def test_bad_onepoint_inputs(tmp_path, box16) -> None:
    bad = box16.copy()
    bad[2, 3, 4] = np.nan
    for fn in (
        lambda v: pixel_pdf(v, 4),
        lambda v: peak_counts(v, 4),
        lambda v: order_statistics(v, [0]),
    ):
        with pytest.raises(NonFiniteError, match="NaN"):
            fn(da.from_array(bad, chunks=(6, 5, 5)))
    with pytest.raises(NonFiniteError):
        dice(bad, box16, [0.1], subvolumes=2)
    with pytest.raises(ShapeError, match="different grids"):
        dice(box16, box16[:8], [0.1])
    a = str(tmp_path / "a.zarr")
    b = str(tmp_path / "b.zarr")
    write_array(a, box16, chunks=8, meta={"box_size": 100.0, "kind": "delta", "units": "1"})
    write_array(b, box16, chunks=8, meta={"box_size": 50.0, "kind": "delta", "units": "1"})
    with pytest.raises(MetadataError, match="box sizes"):
        dice(a, b, [0.1], subvolumes=2)
    with pytest.raises(ConfigError, match="do not divide"):
        dice(box16, box16, [0.1], subvolumes=3)
    with pytest.raises(ConfigError, match="non-zero modulo"):
        dice(box16, box16, [0.1], subvolumes=1)
    with pytest.raises(ConfigError, match="top fractions"):
        dice(box16, box16, [0.0], subvolumes=2)
    with pytest.raises(ConfigError, match="ranks"):
        order_statistics(box16, [box16.size])
    with pytest.raises(ConfigError, match="quantiles"):
        quantiles(box16, [1.5])
