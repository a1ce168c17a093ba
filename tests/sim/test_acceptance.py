"""The issue's acceptance run (slow, ``--runslow``): 128^3 particles, 256 Mpc/h, PM to z = 0.

About 4 minutes (B = 2) plus 1.5 minutes (B = 1) on 2 CPU cores. The same run, with timings,
is ``benchmarks/bench_pm.py --acceptance``.
"""

from __future__ import annotations

import numpy as np
import pytest

from bigpaint.ics.power import linear_power
from bigpaint.sim.fof import measured_mass_function, model_mass_function, read_catalogue
from bigpaint.sim.simulate import simulate
from bigpaint.stats.power import power_spectrum

pytestmark = pytest.mark.slow

N, BOX = 128, 256.0
BINS = np.array([20, 30, 50, 70, 100, 150, 250, 400, 700, 1500])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    lp = linear_power()
    out = {}
    for b in (2, 1):
        cfg = {
            "output": str(tmp_path_factory.mktemp("acc") / f"B{b}"),
            "particles": N,
            "box_size": BOX,
            "seed": 42,
            "steps": 40,
            "force_mesh_factor": b,
            "device": "cpu",
            "save_particles": False,
        }
        out[b] = (cfg, simulate(cfg, power=lp))
    return lp, out


def _mass_function(run, lp):
    cfg, res = run
    cat, _ = read_catalogue(f"{cfg['output']}/halos.parquet")
    edges = BINS * res.particle_mass
    _, dn, counts = measured_mass_function(cat["mass"].to_numpy(), BOX, edges)
    model = model_mass_function(lp.cosmology, None, 0.0, model="watson13", mdef="fof", edges=edges)
    return dn / model, counts, dn, model, np.diff(np.log(edges))


def test_nonlinear_power_excess(runs):
    lp, out = runs
    cfg, _ = out[2]
    ps = power_spectrum(f"{cfg['output']}/density.zarr", multipoles=(0,))
    k, p = ps["k"].values, ps["P0"].values - BOX**3 / N**3
    ratio = p / lp(k)
    low = k < 0.06
    assert abs(np.average(ratio[low], weights=ps["n_modes"].values[low]) - 1) < 0.15
    high = (k > 0.3) & (k < 0.8)
    assert np.all(ratio[high] > 1.5), ratio[high]  # the non-linear excess over linear


def test_mass_function_with_a_force_mesh_twice_the_particle_grid(runs):
    lp, out = runs
    ratio, counts, dn, model, dln = _mass_function(out[2], lp)
    big = BINS[:-1] >= 100
    # every bin of >= 100-particle halos with a Poisson error below 10% is within 25%
    tested = big & (counts >= 100)
    assert tested.sum() >= 2
    assert np.all(np.abs(ratio[tested] - 1) < 0.25), ratio
    # and so is the abundance of all >= 100-particle halos
    assert abs(np.sum(dn[big] * dln[big]) / np.sum(model[big] * dln[big]) - 1) < 0.25


def test_a_force_mesh_equal_to_the_particle_grid_loses_small_halos(runs):
    lp, out = runs
    r2, *_ = _mass_function(out[2], lp)
    r1, *_ = _mass_function(out[1], lp)
    small = BINS[:-1] < 100
    assert np.all(r1[small] < 0.8 * r2[small]), (r1, r2)
    assert np.all(r1[small] < 0.8)
