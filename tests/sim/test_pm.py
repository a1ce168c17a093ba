"""Particle mesh: torch kernels equal the numba ones, forces, linear growth, conservation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigpaint.errors import ConfigError, MissingDependencyError
from bigpaint.ics.cosmology import background
from bigpaint.ics.lpt import lagrangian_grid, lpt_particles_array
from bigpaint.ics.power import linear_power
from bigpaint.mesh.assign import deposit, readout
from bigpaint.sim.pm import (
    ParticleMesh,
    cic_deposit_torch,
    cic_readout_torch,
    initial_state,
    run_pm,
    time_steps,
)

BOX = 100.0


def _positions(rng, n=5000):
    pos = rng.uniform(0, BOX, (n, 3))
    pos[:10] = [[0, 0, 0], [BOX, 1, 2], [BOX - 1e-9, 0.5, BOX], [50, 50, 50]] + [
        [0.01, 99.99, 3]
    ] * 6
    return pos


def test_torch_cic_equals_numba(rng):
    pos = _positions(rng)
    want = deposit(pos, 16, BOX, scheme="cic", dtype="float64")
    got = cic_deposit_torch(torch.from_numpy(pos), 16, BOX, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    grid = rng.standard_normal((16, 16, 16))
    np.testing.assert_allclose(
        cic_readout_torch(torch.from_numpy(grid), torch.from_numpy(pos), BOX).numpy(),
        readout(grid, pos, BOX, scheme="cic"),
        rtol=1e-12,
        atol=1e-12,
    )


def test_force_of_a_plane_wave_displacement_is_linear_theory():
    """Particles displaced by psi = A sin(k q) along x feel F = 3/2 Omega_m psi (linear regime)."""
    n, omega_m = 32, 0.3
    q = lagrangian_grid(n, BOX).reshape(3, -1).T
    k = 2 * 2 * np.pi / BOX
    psi = 0.01 * np.sin(k * q[:, 0])
    pos = q.copy()
    pos[:, 0] = np.mod(pos[:, 0] + psi, BOX)
    pm = ParticleMesh(2 * n, BOX, omega_m)  # FastPM's B = 2 and 4-point gradient
    f = pm.accelerations(torch.from_numpy(pos)).numpy()
    np.testing.assert_allclose(f[:, 0], 1.5 * omega_m * psi, atol=0.002 * 1.5 * omega_m * 0.01)
    assert np.abs(f[:, 1:]).max() < 1e-9


@pytest.mark.parametrize(
    ("gradient", "compensate"), [("fd4", False), ("spectral", False), ("fd4", True)]
)
def test_force_equals_an_independent_numpy_pipeline(rng, gradient, compensate):
    pos = np.mod(rng.normal(40, 8, (3000, 3)), BOX)
    nm, omega_m = 24, 0.27
    pm = ParticleMesh(nm, BOX, omega_m, gradient=gradient, compensate=compensate)
    got = pm.accelerations(torch.from_numpy(pos)).numpy()
    rho = deposit(pos, nm, BOX, scheme="cic", dtype="float64")
    dk = np.fft.rfftn(rho / rho.mean() - 1)
    h = BOX / nm
    k = 2 * np.pi * np.fft.fftfreq(nm, d=h)
    kz = 2 * np.pi * np.fft.rfftfreq(nm, d=h)
    ks = (k[:, None, None], k[None, :, None], kz[None, None, :])
    k2 = sum(c**2 for c in ks)
    phi = np.where(k2 > 0, -1.5 * omega_m * dk / np.where(k2 > 0, k2, 1), 0)
    if compensate:  # the CIC window sinc^2(k H / 2) per axis, once for deposit, once for readout
        for kk in ks:
            x = kk * h / 2
            w = np.where(x == 0, 1.0, np.sin(x) / np.where(x == 0, 1, x)) ** 2
            phi = phi / w**2
    for axis in range(3):
        kk = ks[axis]
        if gradient == "fd4":
            d = (8 * np.sin(kk * h) - np.sin(2 * kk * h)) / (6 * h)
        else:
            d = np.where(np.isclose(np.abs(kk), np.pi / h), 0.0, kk)
        f = np.fft.irfftn(-1j * d * phi, s=(nm,) * 3, axes=(0, 1, 2))
        want = readout(f, pos, BOX, scheme="cic")
        np.testing.assert_allclose(got[:, axis], want, atol=2e-5 * np.abs(want).max())


def test_total_force_vanishes(rng):
    pos = _positions(rng, 20000)
    pos[:5000] = np.mod(rng.normal(30, 2, (5000, 3)), BOX)  # a clump, so forces are large
    pm = ParticleMesh(32, BOX, 0.3)
    f = pm.accelerations(torch.from_numpy(pos)).numpy()
    assert np.abs(f.sum(axis=0)).max() < 1e-4 * np.abs(f).sum(axis=0).max()


def _lowpass(disp, n, kmax):
    """Keep the modes with |m| <= kmax of each displacement component (a (N^3, 3) array)."""
    m = np.fft.fftfreq(n) * n
    mz = np.fft.rfftfreq(n) * n
    keep = np.sqrt(m[:, None, None] ** 2 + m[None, :, None] ** 2 + mz[None, None, :] ** 2) <= kmax
    out = []
    for i in range(3):
        f = np.fft.rfftn(disp[:, i].reshape(n, n, n)) * keep
        out.append(np.fft.irfftn(f, s=(n, n, n), axes=(0, 1, 2)).ravel())
    return np.stack(out, 1)


def test_pm_reproduces_linear_growth():
    """A low-amplitude box integrated with a few KDK steps grows like linear theory.

    FastPM's kick and drift factors make the linear growth exact for any number of steps,
    so five steps suffice. On large scales (|k| <= 4 k_F) the PM displacement equals LPT to
    about 1% with B = 2; near the particle Nyquist frequency a perturbed lattice grows more
    slowly than the fluid (discreteness), which is physics, not integration error.
    """
    lp = linear_power({"sigma_8": 0.05})
    n = 32
    z0 = 19.0
    pos0, vel0, _ = lpt_particles_array(n, BOX, seed=5, power=lp, redshift=z0, tile=16)
    want, _, _ = lpt_particles_array(n, BOX, seed=5, power=lp, redshift=0.0, tile=16)
    q = lagrangian_grid(n, BOX).reshape(3, -1).T
    lin = _lowpass((want - q + BOX / 2) % BOX - BOX / 2, n, 4)
    v_lin = 100 * float(lp.background.E(1.0) * lp.background.f1(1.0)) * lin
    errors = {}
    for b in (2, 1):
        pm = ParticleMesh(b * n, BOX, lp.cosmology.Omega_m)
        state = initial_state(pos0, vel0, 1 / (1 + z0))
        state = run_pm(state, time_steps(1 / (1 + z0), 1.0, 5), pm, lp.background)
        disp = _lowpass((state.x.numpy() - q + BOX / 2) % BOX - BOX / 2, n, 4)
        vel = _lowpass(state.velocities().numpy(), n, 4)
        errors[b] = (
            np.sqrt(np.mean((disp - lin) ** 2) / np.mean(lin**2)),
            np.sqrt(np.mean((vel - v_lin) ** 2) / np.mean(v_lin**2)),
        )
    assert errors[2][0] < 0.02 and errors[2][1] < 0.03, errors
    assert errors[1][0] > errors[2][0]  # a force mesh equal to the particle grid is coarser


def test_time_steps_and_bad_settings():
    np.testing.assert_allclose(time_steps(0.1, 1.0, 3), [0.1, 0.4, 0.7, 1.0])
    with pytest.raises(ConfigError, match="a_init < a_final"):
        time_steps(1.0, 0.5, 3)
    with pytest.raises(ConfigError, match="steps"):
        time_steps(0.1, 1.0, 0)
    with pytest.raises(ConfigError, match="gradient"):
        ParticleMesh(16, BOX, 0.3, gradient="fd2")  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(MissingDependencyError, match="CUDA"):
            ParticleMesh(16, BOX, 0.3, device="cuda")
    bg = background()
    state = initial_state(np.full((1, 3), 1.0), np.zeros((1, 3)), 0.5)
    with pytest.raises(ConfigError, match="state is at"):
        run_pm(state, time_steps(0.1, 1.0, 2), ParticleMesh(8, BOX, 0.3), bg)
