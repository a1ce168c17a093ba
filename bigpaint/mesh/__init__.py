"""Meshes: particle deposition and readout kernels (numba), Fourier windows, distributed FFT, k-grids."""

from bigpaint.mesh.fft import irfftn, plan_fft, register_fft_backend, rfftn
from bigpaint.mesh.kgrid import fundamental, independent_modes, mode_numbers, nyquist, wavenumbers
from bigpaint.mesh.window import compensate, interlace, mas_order, power_compensation

__all__ = [
    "compensate",
    "fundamental",
    "independent_modes",
    "interlace",
    "irfftn",
    "mas_order",
    "mode_numbers",
    "nyquist",
    "plan_fft",
    "power_compensation",
    "register_fft_backend",
    "rfftn",
    "wavenumbers",
]
