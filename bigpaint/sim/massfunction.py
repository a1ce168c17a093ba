"""The FoF mass function of several PM boxes, pooled, against a fitting function.

One box of 128^3 particles in 256 Mpc/h holds a few dozen halos above ~700 particles, so its
mass function there carries a Poisson error of ~15 % and a sample (cosmic) variance of the
same order: one seed cannot test a 25 % agreement bin by bin. :func:`pooled_mass_function`
pools the counts of several independent seeds (the volume is the sum of the boxes) and
states both errors per bin:

* ``poisson``: ``1 / sqrt(N)`` of the pooled count ``N``;
* ``seed``: the standard error of the mean of the per-seed ratios, ``std / sqrt(n_seeds)``
  (``ddof = 1``), which holds Poisson *and* sample variance of boxes this size;
* ``error``: the larger of the two (with four seeds the seed scatter is itself uncertain,
  so the Poisson error is its floor).

:func:`pm_fof_masses` is the lean run behind it (2LPT ICs, KDK PM to ``z_final``, FoF with
``b = 0.2``), without the truth Fields of :func:`bigpaint.sim.simulate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bigpaint.errors import ConfigError

__all__ = ["pm_fof_masses", "pooled_mass_function"]


def pm_fof_masses(
    particles: int,
    box_size: float,
    seed: int,
    *,
    force_mesh_factor: int = 2,
    compensate: bool = False,
    steps: int = 40,
    z_init: float = 19.0,
    z_final: float = 0.0,
    b: float = 0.2,
    min_members: int = 20,
    power: Any = None,
    device: str = "cpu",
) -> tuple[np.ndarray, float]:
    """FoF halo masses of one PM box.

    Parameters
    ----------
    particles : int
        Particles per side.
    box_size : float
        Mpc/h.
    seed : int
        White-noise seed of the ICs (noise tile 32).
    force_mesh_factor : int
        Force-mesh cells per particle per side (FastPM's ``B``).
    compensate : bool
        Deconvolve the CIC window from the force kernel.
    steps : int
        KDK steps, linear in the scale factor, from ``z_init`` to ``z_final``.
    b : float
        Linking length in mean interparticle separations.
    min_members : int
        Smallest halo kept (particles).
    power : LinearPower, optional
        Default: :func:`bigpaint.ics.power.linear_power` of the default cosmology.
    device : str
        torch device.

    Returns
    -------
    masses : numpy.ndarray
        Halo masses in Msun/h, largest first.
    particle_mass : float
        Msun/h.
    """
    from bigpaint.ics.lpt import lpt_particles_array
    from bigpaint.ics.power import linear_power
    from bigpaint.sim.fof import fof_groups, particle_mass
    from bigpaint.sim.pm import ParticleMesh, initial_state, run_pm, time_steps

    lp = power or linear_power()
    a0, a1 = 1.0 / (1.0 + z_init), 1.0 / (1.0 + z_final)
    pos, vel, _ = lpt_particles_array(
        particles, box_size, seed=seed, power=lp, redshift=z_init, tile=32
    )
    pm = ParticleMesh(
        force_mesh_factor * particles,
        box_size,
        lp.cosmology.Omega_m,
        device=device,
        compensate=compensate,
    )
    state = run_pm(
        initial_state(pos, vel, a0, device=str(pm.device)),
        time_steps(a0, a1, steps),
        pm,
        lp.background,
    )
    x = state.x.cpu().numpy()
    del state, pm, pos, vel
    sizes = np.bincount(fof_groups(x, box_size, b * box_size / particles))
    mp = particle_mass(lp.cosmology.Omega_m, box_size, particles**3)
    return np.sort(sizes[sizes >= min_members])[::-1] * mp, mp


def pooled_mass_function(
    masses: Sequence[np.ndarray],
    box_size: float,
    edges: np.ndarray,
    model: np.ndarray,
) -> dict[str, np.ndarray]:
    """Pool the mass functions of equal boxes and compare them with a model, bin by bin.

    Parameters
    ----------
    masses : sequence of arrays
        Halo masses (Msun/h) of each box (one array per seed).
    box_size : float
        Side of each box, Mpc/h.
    edges : array
        Mass-bin edges, Msun/h.
    model : array
        The model's bin-averaged ``dn/dln M`` in (h/Mpc)^3, one per bin (e.g.
        :func:`bigpaint.sim.fof.model_mass_function` with ``edges``).

    Returns
    -------
    dict
        ``counts`` (pooled), ``per_seed_counts`` (seeds x bins), ``dndlnm`` ((h/Mpc)^3),
        ``ratio`` (pooled over the model), ``per_seed_ratio``, ``poisson``, ``seed`` and
        ``error`` (relative errors of ``ratio``, see the module docstring).
    """
    if len(masses) < 2:
        raise ConfigError(
            f"pooling needs at least two boxes (seeds), got {len(masses)}; run more seeds"
        )
    edges = np.asarray(edges, np.float64)
    model = np.asarray(model, np.float64)
    if model.shape != (len(edges) - 1,):
        raise ConfigError(
            f"model must have one value per bin ({len(edges) - 1}), got {model.shape}"
        )
    per = np.stack([np.histogram(np.asarray(m, np.float64), bins=edges)[0] for m in masses])
    dln = np.diff(np.log(edges))
    per_ratio = per / (box_size**3 * dln) / model
    counts = per.sum(axis=0)
    dn = counts / (len(masses) * box_size**3 * dln)
    ratio = dn / model
    with np.errstate(divide="ignore", invalid="ignore"):
        poisson = np.where(counts > 0, 1.0 / np.sqrt(counts), np.inf)
        seed = per_ratio.std(axis=0, ddof=1) / np.sqrt(len(masses)) / ratio
    return {
        "counts": counts,
        "per_seed_counts": per,
        "dndlnm": dn,
        "ratio": ratio,
        "per_seed_ratio": per_ratio,
        "poisson": poisson,
        "seed": seed,
        "error": np.fmax(poisson, seed),
    }
