"""Pooling the mass functions of several boxes: counts, ratios and both error estimates."""

from __future__ import annotations

import numpy as np
import pytest

from bigpaint.errors import ConfigError
from bigpaint.sim.massfunction import pooled_mass_function


def test_pooled_counts_ratio_and_errors():
    rng = np.random.default_rng(3)
    edges = np.logspace(12, 15, 7)
    dln = np.diff(np.log(edges))
    box = 100.0
    masses = [10 ** rng.uniform(12, 15, n) for n in (900, 1100, 1000, 1000)]
    model = np.full(6, 1000 / 6 / box**3 / dln[0])  # uniform in log M: 1000 per box
    out = pooled_mass_function(masses, box, edges, model)
    per = np.stack([np.histogram(m, edges)[0] for m in masses])
    np.testing.assert_array_equal(out["per_seed_counts"], per)
    np.testing.assert_array_equal(out["counts"], per.sum(0))
    np.testing.assert_allclose(out["dndlnm"], per.sum(0) / (4 * box**3 * dln))
    np.testing.assert_allclose(out["ratio"], per.sum(0) / 4 / (1000 / 6))
    np.testing.assert_allclose(out["per_seed_ratio"], per / (1000 / 6))
    np.testing.assert_allclose(out["poisson"], 1 / np.sqrt(per.sum(0)))
    sem = (per / (1000 / 6)).std(0, ddof=1) / 2 / out["ratio"]
    np.testing.assert_allclose(out["seed"], sem)
    np.testing.assert_allclose(out["error"], np.maximum(out["poisson"], sem))
    assert np.all(np.abs(out["ratio"] - 1) < 4 * out["error"])


def test_pooling_needs_two_boxes_and_one_model_value_per_bin():
    edges = np.logspace(12, 13, 3)
    with pytest.raises(ConfigError, match="at least two boxes"):
        pooled_mass_function([np.ones(3)], 10.0, edges, np.ones(2))
    with pytest.raises(ConfigError, match="one value per bin"):
        pooled_mass_function([np.ones(3)] * 2, 10.0, edges, np.ones(3))
