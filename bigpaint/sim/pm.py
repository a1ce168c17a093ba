"""A small FastPM-style particle-mesh N-body solver in torch (CPU or GPU), for training truth.

Equations (comoving positions ``x`` in Mpc/h, time in units of 1/H0)::

    dx/da = p / (a^3 E(a)),      dp/da = F / (a^2 E(a)),      F = -grad phi,  nabla^2 phi = 3/2 Omega_m delta

with ``p = a^2 dx/dt`` (so the peculiar velocity is ``v = 100 p / a`` km/s) and ``delta`` the
density contrast of the particles deposited on the force mesh. The integrator is FastPM's
kick-drift-kick (Feng et al. 2016): the kick and drift factors are ratios of growth functions,

    kick  a_i -> a_f, force at a_c:  p += F(a_c) (G_f(a_f) - G_f(a_i)) / (g_f(a_c) a_c^2 E(a_c))
    drift a_i -> a_f, momenta at a_c: x += p(a_c) (D1(a_f) - D1(a_i)) / (g_p(a_c) a_c^3 E(a_c))

(``G_f = a^3 E dD1/da``, ``g_f = dG_f/da``, ``g_p = dD1/da``; :class:`bigpaint.ics.cosmology.Background`),
which makes the linear growth exact for any number of steps, so a few tens of steps
(linear in ``a``) reproduce the large scales of a full N-body run, and a force mesh ``B``
times finer than the particle grid (``B = 2``, FastPM's default) resolves halos of ~100
particles.

Force on the mesh: CIC deposit, ``rfftn``, the exact Green's function ``-1/k^2`` and the
4-point finite-difference gradient ``(8 sin(k H) - sin(2 k H)) / (6 H)`` (FastPM's default
kernels; ``gradient="spectral"`` uses ``i k`` with the Nyquist plane zeroed), inverse FFT per
axis, CIC readout at the particles. ``compensate=True`` also divides by the CIC window of the
deposit and the readout; with ``B = 2`` the default (no compensation) matches the Watson13 FoF
mass function best, with ``B = 1`` compensation recovers part of the small-halo deficit
(``benchmarks/bench_pm.py --acceptance`` measures both). On the CPU the deposit and readout are bigpaint's numba
kernels (:func:`bigpaint.mesh.assign.deposit` / :func:`~bigpaint.mesh.assign.readout`, called
on the tensors' numpy views, no copies); on a GPU they are the torch ``index_add_``/gather
kernels here (:func:`cic_deposit_torch`, :func:`cic_readout_torch`), tested against the numba
ones. FFTs are ``torch.fft`` on either device.

Why hand-written: FastPM itself needs MPI (and a C build), pmesh/nbodykit likewise; a single-
node PM for boxes up to 256^3 particles is a hundred lines of torch around bigpaint's own
mass-assignment kernels.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from bigpaint.errors import ConfigError, MissingDependencyError
from bigpaint.ics.cosmology import Background
from bigpaint.mesh.assign import deposit, readout

__all__ = [
    "PMState",
    "ParticleMesh",
    "cic_deposit_torch",
    "cic_readout_torch",
    "drift_factor",
    "initial_state",
    "kick_factor",
    "run_pm",
    "time_steps",
]

Gradient = Literal["fd4", "spectral"]


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:n]"``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MissingDependencyError(
            f"device {device!r} asked for, but torch sees no CUDA GPU; use device 'cpu' or 'auto', "
            "or install a CUDA build of torch"
        )
    return dev


# ---------------------------------------------------------------- torch CIC kernels


def _cic_nodes(pos: torch.Tensor, n: int, box: float) -> tuple[torch.Tensor, torch.Tensor]:
    """First node (wrapped) and the fraction toward the next node, per axis (cell centres)."""
    u = pos * (n / box) - 0.5
    i0 = torch.floor(u)
    f = u - i0
    return torch.remainder(i0.to(torch.int64), n), f


def cic_deposit_torch(
    pos: torch.Tensor, nmesh: int, box_size: float, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """CIC deposit of unit-mass particles on a periodic ``nmesh^3`` grid (torch, any device).

    Same convention as :func:`bigpaint.mesh.assign.deposit` (values at cell centres
    ``(i + 1/2) L / n``). Accumulates in float64 with ``index_add_`` (on a GPU the order of
    the atomic adds is not fixed, so results may differ in the last bits between runs).

    Parameters
    ----------
    pos : (N, 3) tensor
        Positions in Mpc/h.
    nmesh : int
    box_size : float
        Mpc/h.

    Returns
    -------
    torch.Tensor
        ``(nmesh, nmesh, nmesh)`` particle counts per cell, ``dtype``.
    """
    n = int(nmesh)
    i0, f = _cic_nodes(pos.to(torch.float64), n, box_size)
    grid = torch.zeros(n**3, dtype=torch.float64, device=pos.device)
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1 - f[:, 0]
        ix = torch.remainder(i0[:, 0] + dx, n)
        for dy in (0, 1):
            wy = wx * (f[:, 1] if dy else 1 - f[:, 1])
            iy = torch.remainder(i0[:, 1] + dy, n)
            for dz in (0, 1):
                w = wy * (f[:, 2] if dz else 1 - f[:, 2])
                iz = torch.remainder(i0[:, 2] + dz, n)
                grid.index_add_(0, (ix * n + iy) * n + iz, w)
    return grid.view(n, n, n).to(dtype)


def cic_readout_torch(grid: torch.Tensor, pos: torch.Tensor, box_size: float) -> torch.Tensor:
    """CIC interpolation of a periodic grid at particle positions (adjoint of the deposit).

    Returns
    -------
    torch.Tensor
        ``(N,)`` float64 values.
    """
    n = grid.shape[0]
    i0, f = _cic_nodes(pos.to(torch.float64), n, box_size)
    flat = grid.reshape(-1).to(torch.float64)
    out = torch.zeros(pos.shape[0], dtype=torch.float64, device=pos.device)
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1 - f[:, 0]
        ix = torch.remainder(i0[:, 0] + dx, n)
        for dy in (0, 1):
            wy = wx * (f[:, 1] if dy else 1 - f[:, 1])
            iy = torch.remainder(i0[:, 1] + dy, n)
            for dz in (0, 1):
                w = wy * (f[:, 2] if dz else 1 - f[:, 2])
                iz = torch.remainder(i0[:, 2] + dz, n)
                out += w * flat[(ix * n + iy) * n + iz]
    return out


# ---------------------------------------------------------------- the mesh force


class ParticleMesh:
    """Gravitational accelerations of particles from a periodic force mesh.

    Parameters
    ----------
    nmesh : int
        Force-mesh cells per side.
    box_size : float
        Box side in Mpc/h.
    omega_m : float
        Matter density today (the source ``3/2 Omega_m delta``).
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    gradient : {"fd4", "spectral"}
        4-point finite difference (FastPM) or exact ``i k``.
    compensate : bool
        Divide the Green's function by the CIC window twice, ``prod_i sinc^4(pi m_i / n)``
        (once for the deposit, once for the readout; Hockney & Eastwood), which sharpens the
        force near the mesh scale. It matters with a coarse mesh (``B = 1``).
    """

    def __init__(
        self,
        nmesh: int,
        box_size: float,
        omega_m: float,
        *,
        device: str = "cpu",
        gradient: Gradient = "fd4",
        compensate: bool = False,
    ) -> None:
        if nmesh < 4:
            raise ConfigError(f"the force mesh needs at least 4 cells per side, got {nmesh}")
        if gradient not in ("fd4", "spectral"):
            raise ConfigError(f"gradient must be 'fd4' or 'spectral', got {gradient!r}")
        self.nmesh = int(nmesh)
        self.box_size = float(box_size)
        self.omega_m = float(omega_m)
        self.device = resolve_device(device)
        self.gradient = gradient
        n, h = self.nmesh, self.box_size / self.nmesh
        k = 2 * math.pi * np.fft.fftfreq(n, d=h)
        kz = 2 * math.pi * np.fft.rfftfreq(n, d=h)
        self._k1 = [k, k, kz]
        k2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kz[None, None, :] ** 2
        with np.errstate(divide="ignore"):
            green = np.where(k2 > 0, -1.5 * self.omega_m / np.where(k2 > 0, k2, 1), 0.0)
        self.compensate = bool(compensate)
        if compensate:
            m = np.fft.fftfreq(n) * n
            wx = np.sinc(m / n) ** 2  # CIC window per axis, sinc(x) = sin(pi x) / (pi x)
            wz = np.sinc(np.fft.rfftfreq(n)) ** 2
            window = wx[:, None, None] * wx[None, :, None] * wz[None, None, :]
            green = green / window**2
        self._green = torch.from_numpy(green.astype(np.float32)).to(self.device)
        self._grad = []
        for axis, kk in enumerate(self._k1):
            if gradient == "fd4":
                d = (8 * np.sin(kk * h) - np.sin(2 * kk * h)) / (6 * h)
            else:
                d = kk.copy()
                if axis < 2 and n % 2 == 0:
                    d[n // 2] = 0.0
                elif axis == 2 and n % 2 == 0:
                    d[-1] = 0.0
            shape = [1, 1, 1]
            shape[axis] = -1
            # -i D(k): one complex multiply per mode turns phi_k into the force component
            self._grad.append(
                torch.from_numpy((-1j * d).astype(np.complex64)).to(self.device).view(shape)
            )

    def density(self, pos: torch.Tensor) -> torch.Tensor:
        """Density contrast of unit-mass particles on the mesh (float32 tensor)."""
        n = self.nmesh
        if self.device.type == "cpu":
            counts = torch.from_numpy(
                deposit(pos.numpy(), n, self.box_size, scheme="cic", dtype="float32")
            )
        else:
            counts = cic_deposit_torch(pos, n, self.box_size)
        return counts * (n**3 / pos.shape[0]) - 1.0

    def accelerations(self, pos: torch.Tensor) -> torch.Tensor:
        """``F = -grad phi`` (``nabla^2 phi = 3/2 Omega_m delta``) at the particles, (N, 3) float64."""
        n = self.nmesh
        phi_k = torch.fft.rfftn(self.density(pos)).mul_(self._green)
        out = torch.empty((pos.shape[0], 3), dtype=torch.float64, device=pos.device)
        for axis in range(3):
            f = torch.fft.irfftn(phi_k * self._grad[axis], s=(n, n, n))
            if self.device.type == "cpu":
                out[:, axis] = torch.from_numpy(
                    readout(f.numpy(), pos.numpy(), self.box_size, scheme="cic")
                )
            else:
                out[:, axis] = cic_readout_torch(f, pos, self.box_size)
        return out


# ---------------------------------------------------------------- integrator


@dataclass
class PMState:
    """Particles at scale factor ``a``: positions ``x`` (Mpc/h) and momenta ``p = a^2 dx/dt``
    (Mpc/h in units H0 = 1), both ``(N, 3)`` float64 tensors; ``force`` at ``a`` once known."""

    a: float
    x: torch.Tensor
    p: torch.Tensor
    force: torch.Tensor | None = None

    def velocities(self) -> torch.Tensor:
        """Peculiar velocities in km/s: ``v = 100 p / a``."""
        return self.p * (100.0 / self.a)


def kick_factor(bg: Background, ai: float, af: float, ac: float) -> float:
    """FastPM's kick factor from ``ai`` to ``af`` with the force evaluated at ``ac``."""
    return float((bg.Gf(af) - bg.Gf(ai)) / (bg.gf(ac) * ac**2 * bg.E(ac)))


def drift_factor(bg: Background, ai: float, af: float, ac: float) -> float:
    """FastPM's drift factor from ``ai`` to ``af`` with momenta at ``ac``."""
    return float((bg.D1(af) - bg.D1(ai)) / (bg.gp(ac) * ac**3 * bg.E(ac)))


def time_steps(a_init: float, a_final: float, n_steps: int) -> np.ndarray:
    """``n_steps + 1`` scale factors, linear in ``a`` (FastPM's default)."""
    if not 0 < a_init < a_final:
        raise ConfigError(f"need 0 < a_init < a_final, got {a_init} and {a_final}")
    if n_steps < 1:
        raise ConfigError(f"the number of PM steps must be >= 1, got {n_steps}")
    return np.linspace(a_init, a_final, int(n_steps) + 1)


def _wrap(x: torch.Tensor, box: float) -> torch.Tensor:
    x = torch.remainder(x, box)
    return torch.where(x >= box, x - box, x)


def run_pm(
    state: PMState,
    steps: np.ndarray,
    pm: ParticleMesh,
    bg: Background,
    *,
    callback: Callable[[PMState, float], None] | None = None,
) -> PMState:
    """Integrate particles through the scale factors ``steps`` with kick-drift-kick.

    Parameters
    ----------
    state : PMState
        At ``steps[0]`` (its ``force`` is computed if missing). Updated in place.
    steps : array
        Increasing scale factors.
    pm : ParticleMesh
    bg : Background
    callback : callable, optional
        ``callback(state, seconds_for_the_step)`` after each step.

    Returns
    -------
    PMState
        At ``steps[-1]``.
    """
    if abs(state.a - steps[0]) > 1e-12:
        raise ConfigError(f"the state is at a = {state.a}, the steps start at {steps[0]}")
    box = pm.box_size
    if state.force is None:
        state.force = pm.accelerations(state.x)
    for ai, af in itertools.pairwise(steps):
        t0 = time.perf_counter()
        ai, af = float(ai), float(af)
        ah = 0.5 * (ai + af)
        state.p += state.force * kick_factor(bg, ai, ah, ai)
        state.x = _wrap(state.x + state.p * drift_factor(bg, ai, af, ah), box)
        state.force = pm.accelerations(state.x)
        state.p += state.force * kick_factor(bg, ah, af, af)
        state.a = af
        if callback is not None:
            callback(state, time.perf_counter() - t0)
    return state


def initial_state(
    positions: np.ndarray, velocities: np.ndarray, a: float, *, device: Any = "cpu"
) -> PMState:
    """A :class:`PMState` from LPT positions (Mpc/h) and peculiar velocities (km/s) at ``a``."""
    dev = resolve_device(str(device))
    x = torch.as_tensor(np.ascontiguousarray(positions, np.float64), device=dev)
    p = torch.as_tensor(np.ascontiguousarray(velocities, np.float64) * (a / 100.0), device=dev)
    return PMState(float(a), x, p)
