"""Benchmark and acceptance run of the particle-mesh N-body code (bigpaint.sim).

Two parts, each case in a fresh subprocess (so peak memory is its own):

``--speed`` (default): PM steps per second for ``--grids`` particles per side and force-mesh
factors ``--factors`` (B). The ICs are made, one step is run to compile the numba kernels
and warm torch, then ``--steps`` steps are timed. No baseline exists in this process (no
other PM code is installed), so absolute figures are reported.

``--acceptance``: the accuracy check: 128^3 particles in a 256 Mpc/h box, 2LPT ICs at
z = 19, ``--acc-steps`` KDK steps (linear in a) to z = 0, for B = 2 and B = 1 (the latter
also with the CIC window deconvolved from the force kernel). Reported:

* the non-linear power excess: P(k) of the final particles (CIC, interlaced, compensated)
  over the linear P(k, 0) in k bins;
* the FoF (b = 0.2) mass function against Watson et al. 2013 (FoF fit) and Tinker et al. 2008
  (M_200m) from colossus, in bins of particle number, with Poisson errors.

    nice -n 5 python benchmarks/bench_pm.py --speed --acceptance --out bench-out/pm.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ics(n: int, box: float, z: float, seed: int):
    from bigpaint.ics.lpt import lpt_particles_array
    from bigpaint.ics.power import linear_power

    lp = linear_power()
    pos, vel, ids = lpt_particles_array(n, box, seed=seed, power=lp, redshift=z, tile=32)
    return lp, pos, vel, ids


def _case_speed(args: argparse.Namespace) -> dict:
    import torch

    from bigpaint.sim.pm import ParticleMesh, initial_state, run_pm, time_steps

    torch.set_num_threads(os.cpu_count() or 1)
    n, box = args.n, args.n * 2.0
    z0 = 19.0
    a0 = 1 / (1 + z0)
    lp, pos, vel, _ = _ics(n, box, z0, args.seed)
    pm = ParticleMesh(args.factor * n, box, lp.cosmology.Omega_m, device=args.device)
    steps = time_steps(a0, 1.0, 40)
    state = initial_state(pos, vel, a0, device=str(pm.device))
    del pos, vel
    run_pm(state, steps[:2], pm, lp.background)  # compile and warm up
    times: list[float] = []
    run_pm(
        state, steps[1 : 2 + args.steps], pm, lp.background,
        callback=lambda _s, dt: times.append(dt),
    )  # fmt: skip
    return {
        "particles": n,
        "force_mesh": args.factor * n,
        "steps_timed": len(times),
        "seconds_per_step": times,
        "steps_per_second": len(times) / sum(times),
        "peak_rss_mib": _rss_mib(),
        "device": str(pm.device),
        "torch_threads": torch.get_num_threads(),
    }


def _case_acceptance(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from bigpaint.mesh.assign import deposit
    from bigpaint.sim.fof import (
        fof_groups,
        halo_catalogue,
        measured_mass_function,
        model_mass_function,
        particle_mass,
    )
    from bigpaint.sim.pm import ParticleMesh, initial_state, run_pm, time_steps
    from bigpaint.stats.power import power_spectrum

    torch.set_num_threads(os.cpu_count() or 1)
    n, box, z0 = 128, 256.0, 19.0
    a0 = 1 / (1 + z0)
    lp, pos, vel, ids = _ics(n, box, z0, args.seed)
    pm = ParticleMesh(
        args.factor * n, box, lp.cosmology.Omega_m, device=args.device, compensate=args.compensate
    )
    state = initial_state(pos, vel, a0, device=str(pm.device))
    times: list[float] = []
    t0 = time.perf_counter()
    state = run_pm(
        state, time_steps(a0, 1.0, args.acc_steps), pm, lp.background,
        callback=lambda _s, dt: times.append(dt),
    )  # fmt: skip
    pm_s = time.perf_counter() - t0
    x = state.x.cpu().numpy()
    v = state.velocities().cpu().numpy()

    # non-linear power excess
    ng = 2 * n
    grid = deposit(x, ng, box, scheme="cic", interlaced=True, dtype="float64")
    delta = grid / grid.mean() - 1
    ps = power_spectrum(delta, box_size=box, mas="CIC", interlaced=True, multipoles=(0,))
    k = ps["k"].values
    p_nl = ps["P0"].values - box**3 / n**3  # subtract the particles' shot noise
    ratio = p_nl / lp(k)
    edges = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2]
    power = []
    for lo, hi in itertools.pairwise(edges):
        sel = (k >= lo) & (k < hi)
        w = ps["n_modes"].values[sel]
        power.append(
            {"k_lo": lo, "k_hi": hi, "p_nl_over_p_lin": float(np.sum(ratio[sel] * w) / w.sum())}
        )

    # FoF mass function
    t1 = time.perf_counter()
    mp = particle_mass(lp.cosmology.Omega_m, box, n**3)
    groups = fof_groups(x, box, 0.2 * box / n)
    cat = halo_catalogue(x, v, ids, box_size=box, particle_mass=mp, min_members=20, groups=groups)
    fof_s = time.perf_counter() - t1
    nbins = np.array([20, 30, 50, 70, 100, 150, 250, 400, 700, 1500])
    medges = nbins * mp
    m, dn, counts = measured_mass_function(cat["mass"].to_numpy(), box, medges)
    watson = model_mass_function(lp.cosmology, m, 0.0, model="watson13", mdef="fof", edges=medges)
    tinker = model_mass_function(lp.cosmology, m, 0.0, model="tinker08", mdef="200m", edges=medges)
    hmf = [
        {
            "n_lo": int(a),
            "n_hi": int(b),
            "mass_lo": float(a * mp),
            "count": int(c),
            "over_watson13": float(d / w),
            "over_tinker08": float(d / t),
            "poisson_rel_err": float(1 / np.sqrt(c)) if c else None,
        }
        for a, b, c, d, w, t in zip(nbins[:-1], nbins[1:], counts, dn, watson, tinker, strict=True)
    ]
    big = nbins[:-1] >= 100
    n_big = counts[big].sum()
    return {
        "particles": n,
        "box_mpc_h": box,
        "force_mesh": args.factor * n,
        "compensate": bool(args.compensate),
        "steps": args.acc_steps,
        "pm_seconds": pm_s,
        "steps_per_second": len(times) / sum(times),
        "fof_seconds": fof_s,
        "particle_mass": mp,
        "n_halos_20": int(cat.num_rows),
        "power": power,
        "mass_function": hmf,
        "ge100_over_watson13": float(
            np.sum(dn[big] * np.diff(np.log(medges))[big])
            / np.sum(watson[big] * np.diff(np.log(medges))[big])
        ),
        "ge100_over_tinker08": float(
            np.sum(dn[big] * np.diff(np.log(medges))[big])
            / np.sum(tinker[big] * np.diff(np.log(medges))[big])
        ),
        "ge100_count": int(n_big),
        "peak_rss_mib": _rss_mib(),
    }


def _run_case(args_list: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args_list], capture_output=True, text=True, check=False
    )
    if out.returncode:
        sys.stderr.write(out.stderr[-5000:])
        raise SystemExit(f"case {args_list} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--speed", action="store_true", help="PM steps per second")
    p.add_argument("--acceptance", action="store_true", help="128^3 / 256 Mpc/h run to z = 0")
    p.add_argument("--grids", type=int, nargs="+", default=[128, 256])
    p.add_argument("--factors", type=int, nargs="+", default=[1, 2], help="force mesh / particles")
    p.add_argument("--steps", type=int, default=3, help="timed steps per speed case")
    p.add_argument("--acc-steps", type=int, default=40, help="PM steps of the acceptance run")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=None, help="JSON results file")
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--factor", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--compensate", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.case == "speed":
        print(json.dumps(_case_speed(args)))
        return
    if args.case == "acceptance":
        print(json.dumps(_case_acceptance(args)))
        return
    if not (args.speed or args.acceptance):
        args.speed = True
    common = ["--device", args.device, "--seed", str(args.seed)]
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}

    def save() -> None:
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))

    if args.speed:
        results["speed"] = []
        for n in args.grids:
            for b in args.factors:
                results["speed"].append(
                    _run_case(
                        [
                            "--case",
                            "speed",
                            "--n",
                            str(n),
                            "--factor",
                            str(b),
                            "--steps",
                            str(args.steps),
                            *common,
                        ]
                    )
                )
                save()
    if args.acceptance:
        results["acceptance"] = {}
        for key, b, comp in (("B2", 2, False), ("B1", 1, False), ("B1-compensated", 1, True)):
            flags = ["--case", "acceptance", "--factor", str(b), "--acc-steps", str(args.acc_steps)]
            results["acceptance"][key] = _run_case(
                [*flags, *(["--compensate"] if comp else []), *common]
            )
            save()

    print(f"bigpaint.sim PM, {os.cpu_count()} cores")
    if args.speed:
        print(f"{'particles':>10}{'mesh':>7}{'steps/s':>10}{'s/step':>9}{'peak RSS [MiB]':>16}")
        for r in results["speed"]:
            sps = r["steps_per_second"]
            print(
                f"{r['particles']:>8}^3{r['force_mesh']:>5}^3{sps:>10.3f}{1 / sps:>9.2f}{r['peak_rss_mib']:>16.0f}"
            )
    if args.acceptance:
        for key, r in results["acceptance"].items():
            print(
                f"\n{key}: 128^3 particles, 256 Mpc/h, force mesh {r['force_mesh']}^3, {r['steps']} "
                f"steps to z = 0 in {r['pm_seconds']:.0f} s ({r['steps_per_second']:.2f} steps/s); "
                f"FoF {r['fof_seconds']:.1f} s, {r['n_halos_20']} halos >= 20 particles"
            )
            print("  P_nl / P_lin:  " + "  ".join(
                f"[{q['k_lo']}, {q['k_hi']}) {q['p_nl_over_p_lin']:.2f}" for q in r["power"]))  # fmt: skip
            print(
                f"  {'particles':>12}{'halos':>7}{'/Watson13':>11}{'/Tinker08':>11}{'Poisson':>9}"
            )
            for q in r["mass_function"]:
                err = f"{q['poisson_rel_err']:.2f}" if q["poisson_rel_err"] else "-"
                print(f"  {q['n_lo']:>5}-{q['n_hi']:<6}{q['count']:>7}{q['over_watson13']:>11.2f}"
                      f"{q['over_tinker08']:>11.2f}{err:>9}")  # fmt: skip
            print(
                f"  all halos >= 100 particles ({r['ge100_count']}): "
                f"{r['ge100_over_watson13']:.2f} x Watson13, {r['ge100_over_tinker08']:.2f} x Tinker08"
            )
    save()


if __name__ == "__main__":
    main()
