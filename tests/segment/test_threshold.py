"""Adaptive threshold: trajectories, calibration against a truth catalogue, correction."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from skimage.segmentation import expand_labels

from bigpaint.errors import ConfigError, MetadataError
from bigpaint.segment.calibration import Calibration, load_calibration
from bigpaint.segment.engine import SegmentParams, segment
from bigpaint.segment.synthetic import normalized_distance, synthetic_protohalos
from bigpaint.segment.threshold import (
    _piecewise_fit,
    apply_calibration,
    calibrate,
    trajectory_curves,
)

THRESHOLDS = tuple(np.linspace(0.0, 0.95, 39))


@functools.cache
def smeared_box(seed: int, n: int = 64):
    """Truth protohalos, and a 'prediction' whose objects are grown by 2 voxels: a plain
    watershed overestimates every size, by a factor that depends on the size."""
    truth = synthetic_protohalos((n,) * 3, 260, radius=(2.0, 6.0), seed=seed)
    grown = expand_labels(np.pad(truth, 4, mode="wrap"), 2)[4:-4, 4:-4, 4:-4]
    seg = segment(
        normalized_distance(grown),
        SegmentParams(min_distance=2, marker_threshold=0.5, trajectory_thresholds=THRESHOLDS),
    )
    return truth, seg


def _truth_volumes(truth):
    v = np.bincount(truth.ravel())[1:]
    return v[v > 0]


def _l1(a, b, edges):
    return np.abs(np.histogram(a, edges)[0] - np.histogram(b, edges)[0]).sum()


def test_calibration_corrects_smeared_sizes_and_generalises():
    """Calibrated on one box, the correction brings the size function and the per-object
    sizes much closer to the truth, on that box and on an independent one (the paper's
    training/validation check)."""
    truth, seg = smeared_box(1)
    tv = _truth_volumes(truth)
    cal = calibrate(
        seg.trajectory_volume,
        seg.trajectory_sum,
        seg.volume,
        tv,
        thresholds=THRESHOLDS,
        cell_size=(1.0, 1.0, 1.0),
        shape=truth.shape,
        box_size=(64.0,) * 3,
        volume_bins=6,
    )
    edges = np.geomspace(tv.min(), tv.max() + 1, 7)
    for t, s in ((truth, seg), smeared_box(2)):
        tvol = _truth_volumes(t)
        corrected, thr = apply_calibration(s.trajectory_volume, s.trajectory_sum, s.volume, cal)
        assert np.all(corrected <= s.volume) and np.all(corrected > 0)
        assert np.isfinite(thr).all()
        assert _l1(corrected, tvol, edges) < 0.5 * _l1(s.volume, tvol, edges)
        # per object: each region's marker lies in one truth object
        own = np.bincount(t.ravel())[t.ravel()[s.id - 1]]
        raw_err = np.median(np.abs(np.log(s.volume / own)))
        cor_err = np.median(np.abs(np.log(corrected / own)))
        assert cor_err < 0.4 * raw_err


def test_trajectory_curves_use_the_spherical_radius():
    vol = np.array([[8, 4, 0]])
    dsum = np.array([[4.0, 3.0, 0.0]])
    v, d = trajectory_curves(vol, dsum, np.array([8]))
    r = (3 * 8 / (4 * np.pi)) ** (1 / 3)
    np.testing.assert_allclose(v[0, :2], [8, 4])
    np.testing.assert_allclose(d[0, :2], [0.5 * r, 0.75 * r])
    assert np.isnan(v[0, 2]) and np.isnan(d[0, 2])
    _, d2 = trajectory_curves(vol, dsum, np.array([8]), normalized=False)
    np.testing.assert_allclose(d2[0, :2], [0.5, 0.75])


def _cal(**kw):
    base = dict(
        log10_volume=(0.0, 2.0),
        mean_distance=(1.0, 3.0),
        thresholds=(0.0, 0.5, 0.9),
        normalized=False,
        cell_size=(0.5, 0.5, 0.5),
        shape=(64, 64, 64),
        box_size=(32.0, 32.0, 32.0),
    )
    return Calibration(**{**base, **kw})


def test_apply_cuts_where_the_trajectory_meets_the_relation():
    cal = _cal()  # f(V) = 1 + log10 V
    vol = np.array([[100, 10, 5], [100, 50, 20], [10, 0, 0], [0, 0, 0]])
    # region 0: dbar 2, 2.5, 2.5 vs f 3, 2, 1.7 -> cut at j=1; region 1 never -> last
    # step; region 2: dbar 3 >= f(10)=2 at j=0 -> keeps V_0; region 3 empty -> raw
    dsum = vol * np.array([[2.0, 2.5, 2.5], [1.0, 1.0, 1.0], [3.0, 0, 0], [0, 0, 0]])
    out, thr = apply_calibration(vol, dsum, np.array([100, 100, 10, 7]), cal)
    np.testing.assert_array_equal(out, [10, 20, 10, 7])
    np.testing.assert_array_equal(thr[:3], [0.5, 0.9, 0.0])
    assert np.isnan(thr[3])
    with pytest.raises(MetadataError, match="thresholds"):
        apply_calibration(vol[:, :2], dsum[:, :2], np.array([1, 1, 1, 1]), cal)


def test_piecewise_fit_recovers_a_broken_line():
    x = np.linspace(0, 4, 30)
    y = np.where(x < 2, 1 + x, 3 - 0.5 * (x - 2))
    np.testing.assert_allclose(
        _piecewise_fit(x, y, np.array([0.0, 2.0, 4.0])), [1, 3, 2], atol=1e-12
    )


def test_save_load_and_resolution_check(tmp_path):
    cal = _cal(points=((0.5, 1.5), (1.5, 2.5)), info={"note": "x"})
    p = cal.save(tmp_path / "cal.json")
    back = load_calibration(p)
    assert back == cal
    np.testing.assert_allclose(back.target([1.0, 10.0, 1e5]), [1.0, 2.0, 3.0])
    back.check_compatible((0.5, 0.5, 0.5), (0.0, 0.5, 0.9))
    with pytest.raises(MetadataError, match=r"cells of 0\.5 Mpc/h .*grid 64.* cells of 1 Mpc/h"):
        back.check_compatible((1.0, 1.0, 1.0))
    with pytest.raises(MetadataError, match="other trajectory thresholds"):
        back.check_compatible((0.5, 0.5, 0.5), (0.0, 0.5))
    with pytest.raises(ConfigError, match="does not exist"):
        load_calibration(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_calibration(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(ConfigError, match="not a bigpaint threshold calibration"):
        load_calibration(tmp_path / "other.json")


def test_calibrate_refuses_what_it_cannot_use():
    kw = dict(thresholds=(0.0, 0.5), cell_size=(1, 1, 1), shape=(8, 8, 8), box_size=(8, 8, 8))
    vol = np.array([[10, 5]])
    with pytest.raises(ConfigError, match="no objects"):
        calibrate(vol, vol * 0.5, np.array([10]), np.array([]), **kw)
    with pytest.raises(ConfigError, match="no regions"):
        calibrate(vol[:0], vol[:0], np.array([], int), np.array([3.0]), **kw)
    with pytest.raises(ConfigError, match=">= 2 thresholds"):
        calibrate(
            vol[:, :1], vol[:, :1], np.array([10]), np.array([3.0]), **{**kw, "thresholds": (0.0,)}
        )
    with pytest.raises(ConfigError, match="volume bins"):
        calibrate(vol, vol * 0.5, np.array([10]), np.array([3.0, 4.0]), **kw)


@pytest.mark.parametrize("key", ["cell_size", "shape", "box_size"])
def test_a_calibration_file_without_three_axes_is_refused(tmp_path, key):
    """One value per axis or the file is refused: a one-value cell size used to load and
    then pass the resolution check by broadcasting."""
    d = json.loads(_cal().to_json())
    d[key] = d[key][:1]
    (tmp_path / "cal.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=r"incomplete .*needs one value per axis.*recalibrate"):
        load_calibration(tmp_path / "cal.json")
