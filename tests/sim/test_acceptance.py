"""The issue's acceptance run (slow, ``--runslow``): 128^3 particles, 256 Mpc/h, PM to z = 0.

One box holds ~50 halos of 700-1500 particles, so its mass function there carries ~15 %
Poisson error and as much sample variance (seed 42 alone gave 1.44 x Watson13, seed 7 0.78).
The mass function is therefore judged on FOUR seeds pooled (four independent boxes), with the
Poisson error of the pooled counts and the seed-to-seed standard error stated per bin
(:func:`bigpaint.sim.massfunction.pooled_mass_function`). Bins of >= 100 particles with at
least 100 pooled halos (Poisson error <= 10 %) are judged; the 1500+ particle bin (~25
pooled halos, 20 % Poisson error) is reported by ``benchmarks/bench_hmf_seeds.py``, not
judged.

About 15-25 minutes on 2 shared CPU cores: four B = 2 runs (one through
:func:`bigpaint.sim.simulate`, for the power spectrum) and one B = 1 run. The same runs, with
B = 1 on four seeds and B = 1 with force compensation, are ``benchmarks/bench_hmf_seeds.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from bigpaint.ics.power import linear_power
from bigpaint.sim.fof import model_mass_function, read_catalogue
from bigpaint.sim.massfunction import pm_fof_masses, pooled_mass_function
from bigpaint.sim.simulate import simulate
from bigpaint.stats.power import power_spectrum

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # the fixture runs five boxes

N, BOX = 128, 256.0
SEEDS = (42, 7, 123, 2024)
BINS = np.array([20, 30, 50, 70, 100, 150, 250, 400, 700, 1500])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    lp = linear_power()
    cfg = {
        "output": str(tmp_path_factory.mktemp("acc") / "B2"),
        "particles": N,
        "box_size": BOX,
        "seed": SEEDS[0],
        "steps": 40,
        "force_mesh_factor": 2,
        "device": "cpu",
        "save_particles": False,
    }
    res = simulate(cfg, power=lp)
    cat, _ = read_catalogue(f"{cfg['output']}/halos.parquet")
    b2 = [cat["mass"].to_numpy()]
    for seed in SEEDS[1:]:
        b2.append(pm_fof_masses(N, BOX, seed, force_mesh_factor=2, power=lp)[0])
    b1 = pm_fof_masses(N, BOX, SEEDS[0], force_mesh_factor=1, power=lp)[0]
    edges = BINS * res.particle_mass
    model = model_mass_function(lp.cosmology, None, 0.0, model="watson13", mdef="fof", edges=edges)
    return lp, cfg, b2, b1, edges, model


def test_nonlinear_power_excess(runs):
    lp, cfg, *_ = runs
    ps = power_spectrum(f"{cfg['output']}/density.zarr", multipoles=(0,))
    k, p = ps["k"].values, ps["P0"].values - BOX**3 / N**3
    ratio = p / lp(k)
    low = k < 0.06
    assert abs(np.average(ratio[low], weights=ps["n_modes"].values[low]) - 1) < 0.15
    high = (k > 0.3) & (k < 0.8)
    assert np.all(ratio[high] > 1.5), ratio[high]  # the non-linear excess over linear


def test_pooled_mass_function_with_a_force_mesh_twice_the_particle_grid(runs):
    *_, b2, _, edges, model = runs
    pooled = pooled_mass_function(b2, BOX, edges, model)
    ratio, counts, err = pooled["ratio"], pooled["counts"], pooled["error"]
    big = BINS[:-1] >= 100
    judged = big & (counts >= 100)
    assert judged.sum() >= 5, counts  # 100-150 ... 700-1500 particles
    # every judged bin within 25 % of Watson13, with an error (the larger of Poisson and the
    # seed-to-seed standard error) small enough for that to mean something
    assert np.all(np.abs(ratio[judged] - 1) < 0.25), (ratio, err)
    assert np.all(err[judged] < 0.15), err
    # and so is the abundance of all >= 100-particle halos in the judged range
    dln = np.diff(np.log(edges))
    total = np.sum(pooled["dndlnm"][judged] * dln[judged]) / np.sum(model[judged] * dln[judged])
    assert abs(total - 1) < 0.25


def test_a_force_mesh_equal_to_the_particle_grid_loses_small_halos(runs):
    *_, b2, b1, edges, model = runs
    dln = np.diff(np.log(edges))
    r2 = np.histogram(b2[0], edges)[0] / (BOX**3 * dln) / model
    r1 = np.histogram(b1, edges)[0] / (BOX**3 * dln) / model
    small = BINS[:-1] < 100
    assert np.all(r1[small] < 0.8 * r2[small]), (r1, r2)
    assert np.all(r1[small] < 0.8)
