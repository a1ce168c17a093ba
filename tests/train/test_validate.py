"""Validation by statistic: 2-D spectra, metrics, and painting the held-out cube."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bigpaint.painters import build_painter
from bigpaint.train.config import DataConfig
from bigpaint.train.training_data import TrainingData
from bigpaint.train.validate import (
    average_channels,
    paint_validation,
    spectra_2d,
    spectrum_metrics,
    validate,
)

from .conftest import small


def test_white_noise_spectrum_is_flat_at_the_cell_area():
    rng = np.random.default_rng(0)
    n, box, sigma = 64, 128.0, 2.0
    img = rng.normal(0, sigma, (16, n, n))
    k, pp, pt, px = spectra_2d(img, img, box)
    assert 1 <= k[0] / (2 * math.pi / box) < 1.3  # mean |k| of the first shell
    expected = sigma**2 * (box / n) ** 2
    assert np.mean(pp) == pytest.approx(expected, rel=0.03)
    np.testing.assert_allclose(pp, pt)
    np.testing.assert_allclose(px, pp)


def test_plane_wave_lands_in_its_shell():
    n, box = 32, 32.0
    x = np.arange(n)
    img = np.cos(2 * np.pi * 3 * x / n)[:, None] * np.ones((1, n))
    _, pp, _, _ = spectra_2d(img, img, box)
    assert np.argmax(pp) == 2  # shells 1, 2, 3, ...
    assert pp[np.arange(len(pp)) != 2].max() < 1e-20


def test_metrics():
    p = np.array([1.0, 2.0, 4.0])
    perfect = spectrum_metrics(p, p, p)
    assert perfect == {"pk_logratio": 0.0, "r_c": 1.0, "T": 1.0, "score": 0.0}
    half = spectrum_metrics(p / 4, p, p / 2 * 0.5)
    assert half["T"] == pytest.approx(0.5) and half["r_c"] == pytest.approx(0.5)
    assert half["pk_logratio"] == pytest.approx(math.log(4))
    dead = spectrum_metrics(np.zeros(3), p, np.zeros(3))
    assert dead["score"] == math.inf


def test_empty_truth_channel_does_not_hide_the_others():
    p = np.array([1.0, 2.0, 4.0])
    good = spectrum_metrics(p, p, p * 0.9)
    empty = spectrum_metrics(p, np.zeros(3), np.zeros(3))
    assert empty["score"] == math.inf
    out = average_channels([good, empty], [True, False])
    assert out["score"] == pytest.approx(good["score"]) and out["judged"] == [0]
    assert out["r_c"] == pytest.approx(0.9)
    every = average_channels([empty, empty], [False, False])  # nothing to judge: all count
    assert every["score"] == math.inf and every["judged"] == [0, 1]


def test_paint_validation_reads_the_cube_with_context(boxes):
    painter = small("halo-painter").eval()
    data = DataConfig(
        inputs=[boxes["delta"]],
        targets=[boxes["counts"]],
        patch=8,
        validation={"origin": [30, 2, 5], "size": 8},
    )
    td = TrainingData.open(data, painter)
    pred, true = paint_validation(painter, td)
    d, c = boxes["array_delta"], boxes["array_counts"]
    ix = [np.arange(o, o + 8) % 32 for o in (30, 2, 5)]
    np.testing.assert_array_equal(true[0], c[np.ix_(*ix)])
    wx = [np.arange(o - 4, o + 12) % 32 for o in (30, 2, 5)]
    np.testing.assert_allclose(pred, painter.paint(d[np.ix_(*wx)][None]), rtol=1e-6)
    out = validate(painter, td)
    assert np.isfinite(out["score"]) and -1 <= out["r_c"] <= 1
    k, pp, pt, px = out["spectra"][0]
    assert len(k) == len(pp) == len(pt) == len(px)


def test_paint_validation_projects_slabs_for_2d_painters(boxes):
    painter = small("ember", noise=False).eval()
    data = DataConfig(
        inputs=[boxes["density"]],
        targets=[boxes["counts"]],
        patch=8,
        projection_depth=4,
        validation={"origin": [0, 8, 16], "size": 12},
    )
    td = TrainingData.open(data, painter)
    pred, true = paint_validation(painter, td)
    assert pred.shape == (3, 1, 12, 12) and true.shape == (3, 1, 12, 12)
    c = boxes["array_counts"]
    np.testing.assert_allclose(true[1, 0], c[0:12, 8:20, 20:24].sum(-1), rtol=1e-6)
    assert np.isfinite(validate(painter, td)["pk_logratio"])


def test_dense_dm2gal_paints_the_validation_cube(boxes):
    painter = build_painter(
        "dm2gal", {"channels": 1, "hidden": 4, "patch": 29, "kernels": [3, 3, 3]}
    ).eval()
    data = DataConfig(
        inputs=[boxes["two"]],
        targets=[boxes["counts"]],
        validation={"origin": [3, 3, 3], "size": 4},
    )
    td = TrainingData.open(data, painter)
    pred, true = paint_validation(painter, td)
    assert pred.shape == true.shape == (1, 4, 4, 4)
    x = td.inputs[0].read([(3 - 14, 3 + 4 + 14)] * 3)
    np.testing.assert_allclose(pred, painter.paint(x), rtol=1e-6)
