"""Meshes: particle deposition and readout kernels (numba), Fourier windows, distributed FFT, k-grids.

The names below are imported on first use, so ``from bigpaint.mesh.assign import deposit``
costs numpy and numba only (not dask, zarr or xarray, which the chunked deposit needs).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bigpaint.mesh.assign import SCHEMES, interlace_grids, readout, scan_particles
    from bigpaint.mesh.deposit import DepositPlan, deposit_blocks, deposit_to_field
    from bigpaint.mesh.fft import irfftn, register_fft_backend, rfftn
    from bigpaint.mesh.fft_plan import plan_fft
    from bigpaint.mesh.kgrid import (
        fundamental,
        independent_modes,
        mode_numbers,
        nyquist,
        wavenumbers,
    )
    from bigpaint.mesh.window import compensate, interlace, mas_order, power_compensation

_WHERE = {
    "SCHEMES": "assign",
    "interlace_grids": "assign",
    "readout": "assign",
    "scan_particles": "assign",
    "DepositPlan": "deposit",
    "deposit_blocks": "deposit",
    "deposit_to_field": "deposit",
    "irfftn": "fft",
    "plan_fft": "fft_plan",
    "register_fft_backend": "fft",
    "rfftn": "fft",
    "fundamental": "kgrid",
    "independent_modes": "kgrid",
    "mode_numbers": "kgrid",
    "nyquist": "kgrid",
    "wavenumbers": "kgrid",
    "compensate": "window",
    "interlace": "window",
    "mas_order": "window",
    "power_compensation": "window",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"bigpaint.mesh.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'bigpaint.mesh' has no attribute {name!r}")


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
