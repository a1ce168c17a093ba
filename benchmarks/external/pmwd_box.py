"""A simulation bigpaint did not make: pmwd's 2LPT and PM N-body of one periodic box.

Painters are judged on boxes they never saw; this one is also made by another code. pmwd
(Y. Li et al., "Differentiable Cosmological Simulation with the Adjoint Method",
arXiv:2211.09958; https://github.com/eelregit/pmwd) draws its own white noise, uses its own
Eisenstein & Hu transfer function and growth, and its own 2LPT and PM integrator. This
script writes, for one seed:

- ``lpt_z0.npy``: (N, 3) float32 positions in Mpc/h of pmwd's 2LPT evaluated at z = 0, one
  particle per Lagrangian cell (the cheap field a user would deposit with ``bigpaint
  deposit``);
- ``nbody_z0.npy``: positions (Mpc/h) and ``nbody_vel_z0.npy`` velocities of pmwd's PM run
  from 2LPT at ``--z-init`` to z = 0 (the truth, from which halos are found);
- ``meta.json``: the code, its version (git commit), cosmology, box, grid, mesh and steps.

It runs in an environment with pmwd and JAX, not bigpaint's own: pmwd is not on PyPI::

    python -m venv pmwd-venv
    pmwd-venv/bin/pip install jax mcfit "pmwd @ git+https://github.com/eelregit/pmwd"
    pmwd-venv/bin/python benchmarks/external/pmwd_box.py --seed 4001 --out runs/pmwd-4001

``benchmarks/train_pretrained_halo.py --external`` runs it and takes the files from there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--particles", type=int, default=128, help="per side")
    p.add_argument("--box", type=float, default=256.0, help="Mpc/h")
    p.add_argument("--mesh", type=float, default=2.0, help="force mesh cells per particle")
    p.add_argument("--z-init", type=float, default=19.0)
    p.add_argument("--steps", type=int, default=40, help="PM steps, linear in a")
    p.add_argument("--Omega-m", type=float, default=0.3175)
    p.add_argument("--Omega-b", type=float, default=0.049)
    p.add_argument("--h", type=float, default=0.6711)
    p.add_argument("--n-s", type=float, default=0.9624)
    p.add_argument("--sigma-8", type=float, default=0.834)
    p.add_argument("--pmwd-commit", default=None, help="git commit of the pmwd used (recorded)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    import pmwd
    from pmwd import Configuration, Cosmology, boltzmann, linear_modes, lpt, nbody, white_noise

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n, box = args.particles, args.box
    a0 = 1.0 / (1.0 + args.z_init)
    conf = Configuration(
        ptcl_spacing=box / n,
        ptcl_grid_shape=(n,) * 3,
        mesh_shape=args.mesh,
        a_start=a0,
        a_nbody_maxstep=(1.0 - a0) / args.steps,
        lpt_order=2,
    )
    cosmo_kw = {
        "n_s": args.n_s,
        "Omega_m": args.Omega_m,
        "Omega_b": args.Omega_b,
        "h": args.h,
    }
    t0 = time.perf_counter()
    cosmo = boltzmann(Cosmology.from_sigma8(conf, args.sigma_8, **cosmo_kw), conf)
    modes = linear_modes(white_noise(args.seed, conf), cosmo, conf)

    # the cheap field: 2LPT at z = 0 from the same modes
    conf_z0 = dataclasses.replace(conf, a_start=1.0)
    cosmo_z0 = boltzmann(Cosmology.from_sigma8(conf_z0, args.sigma_8, **cosmo_kw), conf_z0)
    ptcl, _ = lpt(modes, cosmo_z0, conf_z0)
    np.save(out / "lpt_z0.npy", np.asarray(ptcl.pos(), dtype=np.float32) % np.float32(box))
    t_lpt = time.perf_counter() - t0

    # the truth: PM from 2LPT at z_init to z = 0
    ptcl, obsvbl = lpt(modes, cosmo, conf)
    ptcl, obsvbl = nbody(ptcl, obsvbl, cosmo, conf)
    pos = np.asarray(ptcl.pos(), dtype=np.float32) % np.float32(box)
    np.save(out / "nbody_z0.npy", pos)
    np.save(out / "nbody_vel_z0.npy", np.asarray(ptcl.vel, dtype=np.float32))
    meta = {
        "code": "pmwd",
        "version": getattr(pmwd, "__version__", "unknown"),
        "commit": args.pmwd_commit,
        "seed": args.seed,
        "particles": n,
        "box_size": box,
        "mesh_per_particle": args.mesh,
        "z_init": args.z_init,
        "steps": conf.a_nbody_num,
        "cosmology": {**cosmo_kw, "sigma_8": args.sigma_8},
        "transfer": "Eisenstein & Hu fit (pmwd)",
        "lpt_seconds": t_lpt,
        "total_seconds": time.perf_counter() - t0,
        "jax": jax.__version__,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
