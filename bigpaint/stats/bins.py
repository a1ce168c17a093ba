"""Wavenumber bins for spectra: Pylians' default, linear or logarithmic, validated.

Bins are edges in h/Mpc. A mode with ``|k|`` in ``[edge_i, edge_{i+1})`` belongs to bin ``i``;
the last bin is closed (``|k| = edge_last`` belongs to it, as in ``numpy.histogram``). Edges
must lie in ``(0, sqrt(3) k_Nyq]``: 0 would take the DC mode and beyond ``sqrt(3) k_Nyq``
(the corner of the grid) no modes exist. The default upper edge is the largest
``|k|`` on the grid, :func:`kmax_grid`.

The default reproduces Pylians' ``Pk_library``: shells of width ``k_F`` starting at ``k_F``
(the DC bin ``[0, k_F)`` is dropped), the last bin ending at ``sqrt(3) k_Nyq`` (Pylians'
last bin ``[k_max, k_max + k_F)`` holds the same modes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from bigpaint.errors import ConfigError

__all__ = ["check_kbins", "kbins", "kmax_grid"]


def kmax_grid(box_size: float, n: int) -> float:
    """The largest ``|k|`` on a cubic grid, ``sqrt(3) (n // 2) k_F`` in h/Mpc.

    It is ``sqrt(3) k_Nyq`` for even ``n`` (for odd ``n`` the largest mode per axis is
    ``(n - 1) / 2``, Pylians' ``middle``).
    """
    return math.sqrt(3.0) * (n // 2) * 2.0 * math.pi / box_size


def _k_limit(box_size: float, n: int) -> float:
    """``sqrt(3) k_Nyq = sqrt(3) pi n / L``: the upper end allowed for bin edges."""
    return math.sqrt(3.0) * math.pi * n / box_size


def check_kbins(edges: ArrayLike, box_size: float, n: int) -> np.ndarray:
    """Validate bin edges (h/Mpc) for a cubic grid of ``n`` cells and side ``box_size`` Mpc/h.

    Returns float64 edges; edges within 1e-9 k_F of a multiple of ``k_F`` are snapped to it, so
    bins given as ``np.arange(1, 10) * kF`` bin modes exactly like integer shells.

    Raises
    ------
    ConfigError
        Fewer than two edges, not increasing, not finite, or outside ``(0, sqrt(3) k_Nyq]``.
    """
    e = np.asarray(edges, dtype=np.float64).ravel()
    kf = 2.0 * math.pi / box_size
    top = _k_limit(box_size, n)
    if e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise ConfigError(
            f"k bins need at least two finite increasing edges in h/Mpc, got {e.tolist()}"
        )
    if e[0] <= 0 or e[-1] > top * (1 + 1e-9):
        raise ConfigError(
            f"k bins [{e[0]:.6g}, {e[-1]:.6g}] h/Mpc leave the range (0, sqrt(3) k_Nyq = {top:.6g}] of "
            f"this grid (k_F = {kf:.6g} h/Mpc); choose kmin > 0 and kmax <= {top:.6g}"
        )
    u = e / kf
    snap = np.abs(u - np.round(u)) < 1e-9
    e = np.where(snap, np.round(u) * kf, e)
    return e


def kbins(
    box_size: float,
    n: int,
    *,
    edges: Sequence[float] | None = None,
    dk: float | None = None,
    kmin: float | None = None,
    kmax: float | None = None,
    nbins: int | None = None,
    log: bool = False,
) -> np.ndarray:
    """Bin edges in h/Mpc for a cubic grid of ``n`` cells per side and ``box_size`` Mpc/h.

    Parameters
    ----------
    edges : sequence of float, optional
        Explicit edges (h/Mpc); the other options must then be unset.
    dk : float, optional
        Linear bin width in h/Mpc (default ``k_F``).
    kmin, kmax : float, optional
        Lowest and highest edge in h/Mpc (default ``k_F`` and ``sqrt(3) k_Nyq``). A last
        linear bin narrower than ``dk`` ends at ``kmax``.
    nbins : int, optional
        Number of bins: for log bins (default 20), or linear bins of equal width between
        ``kmin`` and ``kmax`` instead of ``dk``.
    log : bool
        Logarithmically spaced edges.

    Returns
    -------
    numpy.ndarray
        Validated edges (see :func:`check_kbins`).
    """
    kf = 2.0 * math.pi / box_size
    top = kmax_grid(box_size, n)
    if edges is not None:
        if any(v is not None for v in (dk, kmin, kmax, nbins)) or log:
            raise ConfigError(
                "give either explicit k bin edges or dk/kmin/kmax/nbins/log, not both"
            )
        return check_kbins(edges, box_size, n)
    lo = kf if kmin is None else float(kmin)
    hi = top if kmax is None else float(kmax)
    if not (lo > 0 and hi > lo):
        raise ConfigError(f"need 0 < kmin < kmax, got kmin={lo:.6g}, kmax={hi:.6g} h/Mpc")
    if log:
        if dk is not None:
            raise ConfigError("log k bins take nbins, not dk")
        m = 20 if nbins is None else int(nbins)
        if m < 1:
            raise ConfigError(f"nbins must be >= 1, got {nbins}")
        return check_kbins(np.geomspace(lo, hi, m + 1), box_size, n)
    if nbins is not None:
        if dk is not None:
            raise ConfigError("give dk or nbins for linear k bins, not both")
        if int(nbins) < 1:
            raise ConfigError(f"nbins must be >= 1, got {nbins}")
        return check_kbins(np.linspace(lo, hi, int(nbins) + 1), box_size, n)
    step = kf if dk is None else float(dk)
    if not step > 0:
        raise ConfigError(f"dk must be positive (h/Mpc), got {dk}")
    count = math.floor((hi - lo) / step * (1 + 1e-12))
    e = lo + step * np.arange(count + 1)
    if hi - e[-1] > 1e-9 * step:
        e = np.append(e, hi)
    return check_kbins(e, box_size, n)
