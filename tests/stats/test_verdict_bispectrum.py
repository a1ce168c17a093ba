"""The bispectrum criterion: one mean over the triangles, weighted by the truth alone."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from bigpaint.stats.verdict import Thresholds, _bispectrum


def _table(ratio, sigma, b_true, sigma_true) -> xr.Dataset:
    th = np.linspace(0.2, 3.0, len(ratio))
    return xr.Dataset(
        {
            "ratio": (("level", "model", "theta"), np.array(ratio, float)[None, None]),
            "sigma_ratio": (("level", "model", "theta"), np.array(sigma, float)[None, None]),
            "B_true_corrected": (("level", "theta"), np.array(b_true, float)[None]),
            "sigma_B_true": (("level", "theta"), np.array(sigma_true, float)[None]),
        },
        coords={"level": ["total"], "model": ["painted"], "theta": th},
        attrs={"k1": 0.1, "k2": 0.2},
    )


def test_mean_weighted_by_the_truths_signal_to_noise() -> None:
    # S/N of the truth 4, 2, 2: weights 16, 4, 4
    t = _table([1.10, 0.80, 1.30], [0.05, 0.1, 0.1], [4.0, 2.0, -2.0], [1.0, 1.0, 1.0])
    c = _bispectrum(t, "total", Thresholds())
    w = np.array([16, 4, 4]) / 24
    assert math.isclose(c.value, float(w @ [1.10, 0.80, 1.30]))
    assert math.isclose(c.error, math.sqrt(float(((w * [0.05, 0.1, 0.1]) ** 2).sum())))
    assert c.status == "PASS" and "farthest theta = 3: 1.3" in c.detail


def test_a_low_painting_does_not_earn_more_weight() -> None:
    """Weights from the ratio's own error (which shrinks with the ratio) would pull the mean
    towards the low triangles; the truth's S/N does not look at the painting."""
    same = [2.0] * 4
    t = _table([0.5, 1.5, 0.5, 1.5], [0.05, 0.15, 0.05, 0.15], same, [1.0] * 4)
    c = _bispectrum(t, "total", Thresholds())
    assert math.isclose(c.value, 1.0)


def test_fail_and_not_judged() -> None:
    far = _table([0.6, 0.7], [0.05, 0.05], [3.0, 3.0], [1.0, 1.0])
    assert _bispectrum(far, "total", Thresholds()).status == "FAIL"
    vague = _table([0.9, 1.2], [0.4, 0.4], [3.0, 3.0], [1.0, 1.0])
    assert _bispectrum(vague, "total", Thresholds()).status == "NOT JUDGED"
    none = _table([np.nan, np.nan], [0.1, 0.1], [3.0, 3.0], [1.0, 1.0])
    assert _bispectrum(none, "total", Thresholds()).status == "NOT JUDGED"
