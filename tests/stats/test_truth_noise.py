"""The truth's noise measured against the matter: Poisson when it is, below when it is not.

A Gaussian field ``g`` is the matter; halo expectations ``lambda = n (1 + b g)`` per mass
bin (linear, so that the matter predicts all of ``lambda`` and the measured noise is the
sampling's alone; ``g`` is small enough that ``lambda`` stays positive). A Poisson draw of ``lambda`` has noise ``V / N``; a stochastic rounding of it (``floor(
lambda + u)``, the same mean) has per-cell variance ``f (1 - f)`` with ``f`` the fractional
part, far below ``lambda``: a sub-Poisson tracer like halos with exclusion.
"""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings

from bigpaint.field import write_array
from bigpaint.stats.comparison import Level
from bigpaint.stats.evaluate import evaluate
from bigpaint.stats.truth_noise import truth_noise
from bigpaint.testing import chunk_layouts
from tests.stats.reference import gaussian_field
from tests.stats.test_evaluate import BIAS, EDGES, NBAR, meta

N, BOX = 32, 200.0
KMAX = 0.3


def _pk(k):
    return 2000.0 * (k / 0.05) ** -1.2 * np.exp(-((k / 0.6) ** 2))


def _box(seed: int, sampling: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matter ``g``, expectations ``lambda`` (3, N, N, N) and the sampled truth."""
    g = gaussian_field(N, BOX, _pk, seed)
    g *= 0.08 / g.std()
    lam = np.stack([c * (1 + b * g) for c, b in zip(NBAR, BIAS, strict=True)])
    assert lam.min() > 0
    rng = np.random.default_rng(seed + 11)
    if sampling == "poisson":
        truth = rng.poisson(lam)
    else:
        truth = np.floor(lam + rng.random(lam.shape))
    return g, lam, truth.astype(np.float64)


def _levels() -> list[Level]:
    return [
        Level("bin0", (0,), EDGES[0], EDGES[1]),
        Level("bin2", (2,), EDGES[2], EDGES[3]),
        Level("total", (0, 1, 2), EDGES[0], EDGES[3]),
    ]


def _measure(g, truth, chunks=None):
    levels = _levels()
    means = {"truth": np.array([truth[list(lv.channels)].sum(0).mean() for lv in levels])}
    kf = 2 * np.pi / BOX
    edges = np.arange(1, int(KMAX / kf) + 1) * kf
    c = chunks or (N // 2,) * 3
    t = da.from_array(truth, chunks=(1, *c))
    m = da.from_array(g, chunks=c)
    noise, sigma = truth_noise(t, m, levels, means, BOX, edges, KMAX)
    poisson = BOX**3 / np.array([truth[list(lv.channels)].sum() for lv in levels])
    return noise, sigma, poisson


def test_poisson_truth_measures_poisson_noise() -> None:
    noise, sigma, poisson = _measure(*_box(1, "poisson")[::2])
    assert np.all(sigma > 0) and np.all(sigma < 0.2 * poisson)
    assert np.all(np.abs(noise - poisson) < 3 * sigma), (noise, poisson, sigma)


def test_sub_poisson_truth_measures_less() -> None:
    noise, sigma, poisson = _measure(*_box(2, "round")[::2])
    # rounding removes most noise where lambda is large (bin0: 2 per cell; the total), little
    # where it is small (bin2: 0.1 per cell, nearly Bernoulli, nearly Poisson)
    assert np.all((noise / poisson)[[0, 2]] < 0.6), noise / poisson
    assert np.all(noise + 3 * sigma < poisson), (noise, sigma, poisson)


def test_noise_error_matches_monte_carlo() -> None:
    """The propagated Gaussian error of N_t against its scatter over 60 Poisson boxes.

    60 draws measure a standard deviation to about 9 %. The Gaussian error leaves out the
    Poisson trispectrum, which matters only where the halos are not many more than the modes:
    bin2 holds 3,300 halos for 1,900 modes, and its scatter is about 15 % above the Gaussian
    error (150 draws); bin0 and the total hold over 65,000.
    """
    runs = np.array([_measure(*_box(100 + i, "poisson")[::2])[:2] for i in range(60)])
    scatter = runs[:, 0].std(axis=0, ddof=1)
    predicted = runs[:, 1].mean(axis=0)
    np.testing.assert_allclose(scatter[[0, 2]], predicted[[0, 2]], rtol=0.25)
    assert 0.55 * scatter[1] < predicted[1] < 1.15 * scatter[1]


@settings(max_examples=6, deadline=None)
@given(chunks=chunk_layouts((N, N, N)))
def test_noise_does_not_depend_on_the_chunks(chunks) -> None:
    g, _, truth = _box(3, "poisson")
    ref = _measure(g, truth)
    got = _measure(g, truth, chunks)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-9)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-9)


@pytest.mark.parametrize("sampling", ["poisson", "round"])
def test_perfect_painting_transfer_with_the_matter(tmp_path, caplog, sampling) -> None:
    """A painting that knows ``lambda`` has T = 1 against a sub-Poisson truth only when the
    truth's noise is measured; assuming Poisson noise reads it as too strongly clustered."""
    g, lam, truth = _box(4, sampling)

    def put(name, a, m):
        return write_array(str(tmp_path / name), a.astype("f4"), chunks=16, meta=m).url

    p, t = put("p.zarr", lam, meta(BOX)), put("t.zarr", truth, meta(BOX))
    mat = put("m.zarr", g, {"box_size": BOX, "kind": "delta", "units": "1", "redshift": 0.0})
    with caplog.at_level(logging.WARNING, logger="bigpaint.stats.evaluate"):
        with_m = evaluate(p, t, matter=mat, kmax=KMAX, coarse_bins=0)
        assert not caplog.records
        without = evaluate(p, t, kmax=KMAX, coarse_bins=0)
    # assuming Poisson noise is said, not silent
    assert any("taken as Poisson" in r.getMessage() for r in caplog.records)
    lv_m, lv_p = with_m.levels.sel(level="total"), without.levels.sel(level="total")
    dev_m = float(lv_m.mean_abs_T_minus_1.sel(model="painted"))
    sig_m = float(lv_m.sigma_mean_abs_T_minus_1.sel(model="painted"))
    assert dev_m < 0.05 + 2 * sig_m
    assert "measured against the simulation's matter" in with_m.levels.attrs["shot_noise_treatment"]
    assert with_m.inputs["matter"] == mat
    T_p = without.spectra.T.sel(level="total", model="painted").values
    T_m = with_m.spectra.T.sel(level="total", model="painted").values
    ok = np.isfinite(T_p) & np.isfinite(T_m)
    if sampling == "poisson":
        np.testing.assert_allclose(T_m[ok], T_p[ok], rtol=0.1)
    else:
        # 1/n over-subtracted from the truth: T biased high at every k, or undefined where
        # P_true - V/N < 0 (here, at every k)
        assert np.isfinite(T_m).sum() > np.isfinite(T_p).sum()
        assert np.all(T_p[ok] > T_m[ok])
        dev_p = float(lv_p.mean_abs_T_minus_1.sel(model="painted"))
        assert not dev_p <= 2 * dev_m
