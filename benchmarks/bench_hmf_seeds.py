"""The PM + FoF mass function against Watson13, pooled over several seeds.

For each force-mesh choice (``B4``, ``B3``, ``B2``: mesh 4N, 3N, 2N; ``B1``: mesh N; ``B1c``:
mesh N with the CIC window deconvolved) and each seed, one 128^3-particle, 256 Mpc/h box is run from 2LPT at
z = 19 to z = 0 in 40 KDK steps and its FoF (b = 0.2) halos found
(:func:`bigpaint.sim.massfunction.pm_fof_masses`). The counts are pooled over seeds and
compared with Watson et al. 2013 (FoF fit, colossus) per bin of particle number, with the
Poisson error of the pooled count and the seed-to-seed standard error of the mean
(:func:`bigpaint.sim.massfunction.pooled_mass_function`). Each box's masses are cached in
``--cache`` so an interrupted run resumes.

    nice -n 5 python benchmarks/bench_hmf_seeds.py --out bench-out/hmf-seeds.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CASES = {"B4": (4, False), "B3": (3, False), "B2": (2, False), "B1": (1, False), "B1c": (1, True)}
# particle-number bin edges: the top bins are wide enough for ~100 pooled halos at 4 seeds
BINS = [20, 30, 50, 70, 100, 150, 250, 400, 700, 1500, 5000]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 123, 2024])
    p.add_argument("--cases", nargs="+", default=["B2", "B1", "B1c"], choices=list(CASES))
    p.add_argument("--particles", type=int, default=128)
    p.add_argument("--box", type=float, default=256.0, help="Mpc/h")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--cache", default="bench-out/hmf-seeds-cache")
    p.add_argument("--out", default=None, help="JSON results file")
    args = p.parse_args()

    import torch

    from bigpaint.ics.power import linear_power
    from bigpaint.sim.fof import model_mass_function, particle_mass
    from bigpaint.sim.massfunction import pm_fof_masses, pooled_mass_function

    torch.set_num_threads(os.cpu_count() or 1)
    lp = linear_power()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    n, box = args.particles, args.box
    mp = particle_mass(lp.cosmology.Omega_m, box, n**3)
    edges = np.asarray(BINS, np.float64) * mp
    watson = model_mass_function(lp.cosmology, None, 0.0, model="watson13", mdef="fof", edges=edges)
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
        "particles": n,
        "box_mpc_h": box,
        "steps": args.steps,
        "seeds": args.seeds,
        "particle_mass": mp,
        "bins_particles": BINS,
        "cases": {},
    }
    for case in args.cases:
        factor, comp = CASES[case]
        masses, seconds = [], {}
        for seed in args.seeds:
            f = cache / f"{case}-n{n}-L{box:g}-s{args.steps}-seed{seed}.npy"
            if not f.exists():
                t0 = time.perf_counter()
                m, _ = pm_fof_masses(
                    n, box, seed, force_mesh_factor=factor, compensate=comp, steps=args.steps,
                    power=lp,
                )  # fmt: skip
                seconds[seed] = time.perf_counter() - t0
                np.save(f, m)
                print(
                    f"{case} seed {seed}: {len(m)} halos in {seconds[seed]:.0f} s", file=sys.stderr
                )
            masses.append(np.load(f))
        pooled = pooled_mass_function(masses, box, edges, watson)
        results["cases"][case] = {
            "force_mesh": factor * n,
            "compensate": comp,
            "run_seconds": seconds,
            **{k: np.asarray(v).tolist() for k, v in pooled.items()},
        }
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))

    print(
        f"FoF mass function / Watson13, {n}^3 particles, {box:g} Mpc/h, "
        f"{len(args.seeds)} seeds pooled ({args.seeds}); errors relative (Poisson, seed s.e.m.)"
    )
    for case, r in results["cases"].items():
        print(f"\n{case}: force mesh {r['force_mesh']}^3, compensate={r['compensate']}")
        print(f"{'particles':>12}{'N pooled':>10}{'ratio':>8}{'poisson':>9}{'seed':>7}  per seed")
        for i in range(len(BINS) - 1):
            per = " ".join(f"{x:.2f}" for x in np.asarray(r["per_seed_ratio"])[:, i])
            print(
                f"{BINS[i]:>5}-{BINS[i + 1]:<6}{r['counts'][i]:>10}{r['ratio'][i]:>8.3f}"
                f"{r['poisson'][i]:>9.3f}{r['seed'][i]:>7.3f}  {per}"
            )


if __name__ == "__main__":
    main()
