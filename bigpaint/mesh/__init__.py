"""Meshes: particle deposition and readout kernels (numba), Fourier windows, distributed FFT, k-grids."""

from bigpaint.mesh.assign import SCHEMES, interlace_grids, readout, scan_particles
from bigpaint.mesh.deposit import DepositPlan, deposit_blocks, deposit_to_field
from bigpaint.mesh.fft import irfftn, plan_fft, register_fft_backend, rfftn
from bigpaint.mesh.kgrid import fundamental, independent_modes, mode_numbers, nyquist, wavenumbers
from bigpaint.mesh.window import compensate, interlace, mas_order, power_compensation

__all__ = [
    "SCHEMES",
    "DepositPlan",
    "compensate",
    "deposit_blocks",
    "deposit_to_field",
    "fundamental",
    "independent_modes",
    "interlace",
    "interlace_grids",
    "irfftn",
    "mas_order",
    "mode_numbers",
    "nyquist",
    "plan_fft",
    "power_compensation",
    "readout",
    "register_fft_backend",
    "rfftn",
    "scan_particles",
    "wavenumbers",
]
