"""Bispectrum by the FFT shell estimator, for (k1, k2, theta) triangles and equilateral ones.

For shells ``S_i = {k : k_i - w/2 <= |k| < k_i + w/2}`` the estimator (Scoccimarro 2015;
Pylians' ``Bk``) filters the field to each shell, ``D_i(x) = IFFT[delta_k 1_{S_i}]``, does the
same with unit amplitudes, ``I_i(x) = IFFT[1_{S_i}]``, and takes

    B(k1, k2, k3) = V^2 / N^9 * sum_x D_1 D_2 D_3 / sum_x I_1 I_2 I_3,

the mean of ``delta_k1 delta_k2 delta_k3`` over all mode triplets of the shells with
``k1 + k2 + k3 = 0`` (units (Mpc/h)^6 for a dimensionless field). The shell powers
``P_i = V / N^6 sum_x D_i^2 / sum_x I_i^2`` (units (Mpc/h)^3) give the reduced bispectrum
``Q = B / (P_1 P_2 + P_2 P_3 + P_3 P_1)``. ``k3 = |k1 + k2| = sqrt(k1^2 + k2^2 + 2 k1 k2
cos theta)`` with ``theta`` the angle between ``k1`` and ``k2`` (Pylians' convention).
Shot noise is not subtracted (as in Pylians).

Two executions give the same numbers:

* ``"crop"``: every shell lies inside the cube ``|m_i| <= K`` of mode numbers. When the grid
  has ``n >= 3K + 1`` cells, triangles closing modulo the grid are exactly the closed ones,
  and so they are on any grid of ``M >= 3K + 1`` cells: the modes of that cube are cut out of
  the distributed FFT (a few MB, whatever the box) and the filtered fields are inverse
  transformed in memory on the ``M^3`` grid. This is what makes low-k bispectra of a 2048^3
  box cheap (DESIGN: crop the k-space cube first).
* ``"distributed"``: the filtered fields are inverse transformed with the distributed FFT on
  the full grid and the products summed chunk by chunk. Needed when the shells reach
  ``n / 3`` (there, as in Pylians, triangles closing modulo the grid count too).

Deliberate difference from Pylians: the default shell width is ``k_F`` (``w = k_F``: shells
``[k - k_F/2, k + k_F/2)``); Pylians uses ``[k - k_F, k + k_F)``, i.e. ``shell_width=2 k_F``.

Why hand-written: Pylians' ``Bk`` needs the whole field in one process; bskit and BiG need
MPI or JAX. Filtering, inverse transforms and sums on dask blocks are a few lines here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import scipy.fft
import xarray as xr

from bigpaint.errors import ConfigError
from bigpaint.mesh.fft import RechunkMethod, irfftn, rfftn
from bigpaint.mesh.kgrid import block_modes
from bigpaint.mesh.window import compensate
from bigpaint.stats.inputs import as_input, check_cubic, resolve_interlaced, resolve_mas
from bigpaint.stats.power_prepare import field_mean, uses_contrast

__all__ = ["Shell", "bispectrum", "bispectrum_equilateral", "crop_size"]

Method = Literal["auto", "crop", "distributed"]
DEFAULT_MAX_CROP = 256


@dataclass(frozen=True)
class Shell:
    """Modes with ``lo2 <= m_x^2 + m_y^2 + m_z^2 < hi2`` (integer mode numbers, units k_F^2)."""

    lo2: float
    hi2: float

    @property
    def reach(self) -> int:
        """Largest mode number a shell member can have along one axis."""
        return math.isqrt(max(0, math.ceil(self.hi2) - 1))

    def contains(self, k2: np.ndarray) -> np.ndarray:
        return (k2 >= self.lo2) & (k2 < self.hi2)


def _snap(u: float) -> float:
    r = round(u)
    return float(r) if abs(u - r) < 1e-9 else u


def _k_top(kf: float, n: int) -> float:
    return math.sqrt(3.0) * math.pi * n * kf / (2 * math.pi)


def _shell(k: float, width: float, kf: float, n: int) -> Shell:
    """The shell of a triangle side the user chose (k1, k2, equilateral k): must fit the grid."""
    lo, hi = k - width / 2, k + width / 2
    top = _k_top(kf, n)
    if lo <= 0 or hi > top * (1 + 1e-9):
        raise ConfigError(
            f"bispectrum shell [{lo:.6g}, {hi:.6g}) h/Mpc around k={k:.6g} leaves (0, sqrt(3) k_Nyq = "
            f"{top:.6g}]; choose k and shell_width so that k - w/2 > 0 and k + w/2 <= {top:.6g}"
        )
    return Shell(_snap(lo / kf) ** 2, _snap(hi / kf) ** 2)


def _k3_shell(k: float, width: float, kf: float, n: int) -> Shell:
    """The shell of a derived side ``k3 = |k1 + k2|``, clipped to the grid (never the DC mode).

    Near ``theta = pi`` with ``k1 = k2`` the shell reaches below 0; its part on the grid
    (``0 < |k| < k3 + w/2``) is used, and an empty shell gives NaN with 0 triangles.
    """
    lo = max(k - width / 2, 0.0)
    hi = min(k + width / 2, _k_top(kf, n) * (1 + 1e-9))
    return Shell(max(_snap(lo / kf) ** 2, 0.5), max(_snap(hi / kf) ** 2, 0.5))


def crop_size(reach: int) -> int:
    """Smallest fast FFT size ``M >= 3 * reach + 1`` (no triangle can close modulo ``M``)."""
    return int(scipy.fft.next_fast_len(3 * reach + 1, real=True))


# ---------------------------------------------------------------- filtered-field sums


def _mask_block(
    block: np.ndarray,
    shape: tuple[int, int, int],
    shell: Shell,
    unit: bool,
    block_info: dict | None = None,
) -> np.ndarray:
    assert block_info is not None  # dask passes it to functions that take it
    loc = [tuple(r) for r in block_info[0]["array-location"]]
    mx, my, mz = block_modes(shape, loc)
    inside = shell.contains((mx * mx + my * my) + mz * mz)
    if unit:
        return np.broadcast_to(inside, block.shape).astype(block.dtype)
    return np.where(inside, block, 0).astype(block.dtype, copy=False)


def _sums_distributed(
    fk: da.Array,
    shape: tuple[int, int, int],
    shells: Sequence[Shell],
    triples: Sequence[tuple[int, int, int]],
    backend: str,
    rechunk_method: RechunkMethod,
    block_bytes: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d: list[da.Array] = []
    unit: list[da.Array] = []
    for s in shells:
        for flag, out in ((False, d), (True, unit)):
            masked = da.map_blocks(
                _mask_block, fk, shape, s, flag, dtype=fk.dtype, meta=np.array((), fk.dtype)
            )
            out.append(
                irfftn(
                    masked,
                    shape,
                    backend=backend,
                    rechunk_method=rechunk_method,
                    block_bytes=block_bytes,
                ).astype(np.float64)
            )
    terms = []
    for i, j, q in triples:
        terms.append((d[i] * d[j] * d[q]).sum())
        terms.append((unit[i] * unit[j] * unit[q]).sum())
    for i in range(len(shells)):
        terms.append((d[i] * d[i]).sum())
        terms.append((unit[i] * unit[i]).sum())
    vals = np.asarray(dask.compute(*terms), dtype=np.float64)
    nt = len(triples)
    return vals[0 : 2 * nt : 2], vals[1 : 2 * nt : 2], vals[2 * nt :: 2], vals[2 * nt + 1 :: 2]


def _crop_modes(fk: da.Array, n: int, reach: int, m: int) -> np.ndarray:
    """The modes ``|m_i| <= reach`` of the distributed FFT, placed on an ``m``-grid half space."""
    comps = np.arange(-reach, reach + 1)
    idx = comps % n
    sub = fk[idx][:, idx][:, :, : reach + 1]
    small = np.asarray(sub.compute())
    out = np.zeros((m, m, m // 2 + 1), dtype=np.complex128)
    tgt = comps % m
    out[np.ix_(tgt, tgt, np.arange(reach + 1))] = small
    return out


def _sums_crop(
    cube: np.ndarray,
    m: int,
    shells: Sequence[Shell],
    triples: Sequence[tuple[int, int, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """In-memory sums on the cropped ``m``-grid; a filtered field is kept only while reused."""
    mx, my, mz = block_modes((m, m, m), [(0, m), (0, m), (0, m // 2 + 1)])
    k2 = (mx * mx + my * my) + mz * mz
    uses = Counter(i for t in triples for i in set(t))
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    dd = np.zeros(len(shells))
    ii = np.zeros(len(shells))

    def fields(i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in cache:
            return cache[i]
        inside = shells[i].contains(k2)
        a = scipy.fft.irfftn(np.where(inside, cube, 0), s=(m, m, m), axes=(0, 1, 2), workers=-1)
        ia = scipy.fft.irfftn(inside.astype(np.float64), s=(m, m, m), axes=(0, 1, 2), workers=-1)
        dd[i] = float(np.sum(a * a))
        ii[i] = float(np.sum(ia * ia))
        if uses[i] > 1:
            cache[i] = (a, ia)
        return a, ia

    ddd, iii = [], []
    for t in triples:
        local = {i: fields(i) for i in set(t)}
        (a, ia), (b, ib), (c, ic) = (local[i] for i in t)
        ddd.append(float(np.sum(a * b * c)))
        iii.append(float(np.sum(ia * ib * ic)))
        for i in set(t):
            uses[i] -= 1
            if uses[i] <= 1:
                cache.pop(i, None)
    return np.array(ddd), np.array(iii), dd, ii


# ---------------------------------------------------------------- public API


@dataclass(frozen=True)
class _Field:
    fk: da.Array
    n: int
    box: float
    scale: float
    label: str
    mas: str | int | None
    mas_source: str
    interlaced: bool
    contrast: bool


def _prepare(
    field: Any,
    box_size: Any,
    mas: str | None,
    contrast: bool | None,
    backend: str,
    rechunk_method: RechunkMethod,
    block_bytes: int | None,
    where: str,
) -> _Field:
    inp = as_input(field, box_size=box_size, where=where)
    n, box = check_cubic(inp, where)
    use = uses_contrast(inp, contrast)
    mean = field_mean(inp) if use else 1.0
    m, source = resolve_mas(inp, mas, where)
    fk = rfftn(inp.data, backend=backend, rechunk_method=rechunk_method, block_bytes=block_bytes)
    fk = compensate(fk, (n, n, n), m)
    return _Field(fk, n, box, 1.0 / mean, inp.label, m, source, resolve_interlaced(inp, None), use)


def _run(
    f: _Field,
    shells: list[Shell],
    triples: list[tuple[int, int, int]],
    method: Method,
    max_crop: int,
    backend: str,
    rechunk_method: RechunkMethod,
    block_bytes: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, str]:
    reach = max(s.reach for s in shells)
    m = crop_size(reach)
    can_crop = m <= f.n and 3 * reach + 1 <= f.n
    if method == "auto":
        method = "crop" if can_crop and m <= max_crop else "distributed"
    if method == "crop":
        if not can_crop:
            raise ConfigError(
                f"cannot crop: shells reach mode {reach}, which needs a grid of >= {3 * reach + 1} "
                f"cells but the field has {f.n}; use method='distributed'"
            )
        cube = _crop_modes(f.fk, f.n, reach, m)
        return (*_sums_crop(cube, m, shells, triples), m, f"crop (M={m})")
    if method != "distributed":
        raise ConfigError(f"method must be 'auto', 'crop' or 'distributed', got {method!r}")
    shape = (f.n,) * 3
    sums = _sums_distributed(f.fk, shape, shells, triples, backend, rechunk_method, block_bytes)
    return (*sums, f.n, "distributed")


def _finish(
    f: _Field, ddd: np.ndarray, iii: np.ndarray, dd: np.ndarray, ii: np.ndarray, grid: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """B, shell powers and triangle counts. ``sum_x I1 I2 I3 = N_triangles / grid^6``."""
    vol = f.box**3
    tri = np.rint(iii * float(grid) ** 6).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where(tri > 0, ddd / iii, np.nan) * vol**2 / float(f.n) ** 9 * f.scale**3
        p = np.where(ii > 0, dd / ii, np.nan) * vol / float(f.n) ** 6 * f.scale**2
    return b, p, tri


def _attrs(f: _Field, width: float, how: str) -> dict[str, Any]:
    return {
        "statistic": "bispectrum (FFT shell estimator)",
        "field": f.label,
        "box_size": f.box,
        "box_size_units": "Mpc/h",
        "grid": f.n,
        "k_fundamental": 2 * math.pi / f.box,
        "shell_width": width,
        "shell_width_units": "h/Mpc",
        "mas": str(f.mas),
        "interlaced": str(f.interlaced),
        "mas_source": f.mas_source,
        "contrast": str(f.contrast),
        "method": how,
        "conventions": "B = V^2/N^9 <d_k1 d_k2 d_k3> over closed triangles; theta is the angle between k1 "
        "and k2, k3 = |k1 + k2|; no shot-noise subtraction",
    }


def bispectrum(
    field: Any,
    k1: float,
    k2: float,
    theta: Sequence[float] | np.ndarray,
    *,
    box_size: float | Sequence[float] | None = None,
    mas: str | None = "auto",
    shell_width: float | None = None,
    contrast: bool | None = None,
    method: Method = "auto",
    max_crop: int = DEFAULT_MAX_CROP,
    backend: str = "slab",
    rechunk_method: RechunkMethod = "auto",
    block_bytes: int | None = None,
) -> xr.Dataset:
    """Bispectrum ``B(k1, k2, theta)`` and reduced ``Q`` of a field, Pylians' ``Bk`` conventions.

    Parameters
    ----------
    field : Field URL, opened Field or 3-D numpy/dask array (cubic)
    k1, k2 : float
        Triangle sides in h/Mpc.
    theta : sequence of float
        Angles between ``k1`` and ``k2`` in radians, in ``[0, pi]``.
    box_size : float, optional
        Box side in Mpc/h for array inputs.
    mas : {"auto", "NGP", "CIC", "TSC", "PCS", None}
        Mass-assignment window to divide out (sinc^p). ``"auto"`` reads the Field's
        ``mass_assignment`` record and refuses a deposit-like Field without one, as
        :func:`bigpaint.stats.power.power_spectrum` does.
    shell_width : float, optional
        Full shell width in h/Mpc (default ``k_F``; ``2 k_F`` reproduces Pylians).
    contrast : bool, optional
        As in :func:`bigpaint.stats.power.power_spectrum`.
    method : {"auto", "crop", "distributed"}
        See the module docstring; ``"auto"`` crops when the shells allow and the crop grid
        has at most ``max_crop`` cells per side.

    Returns
    -------
    xarray.Dataset
        Dimension ``theta`` (radians) with coordinate ``k3`` (h/Mpc); variables ``B``
        ((Mpc/h)^6), ``Q`` (1), ``P3`` ((Mpc/h)^3, power in the k3 shell) and ``triangles``
        (ordered mode triplets); attrs ``k1``, ``k2``, ``P1``, ``P2`` and the conventions.
    """
    th = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    if (
        th.ndim != 1
        or th.size == 0
        or np.any(~np.isfinite(th))
        or np.any((th < 0) | (th > math.pi + 1e-12))
    ):
        raise ConfigError(f"theta must be angles in [0, pi] radians, got {th.tolist()}")
    if not (k1 > 0 and k2 > 0):
        raise ConfigError(f"k1 and k2 must be positive (h/Mpc), got {k1}, {k2}")
    f = _prepare(field, box_size, mas, contrast, backend, rechunk_method, block_bytes, "bispectrum")
    kf = 2 * math.pi / f.box
    width = kf if shell_width is None else float(shell_width)
    if not width > 0:
        raise ConfigError(f"shell_width must be positive (h/Mpc), got {shell_width}")
    k3 = np.sqrt((k2 * np.sin(th)) ** 2 + (k2 * np.cos(th) + k1) ** 2)
    shells = [_shell(k1, width, kf, f.n), _shell(k2, width, kf, f.n)]
    shells += [_k3_shell(float(k), width, kf, f.n) for k in k3]
    triples = [(0, 1, 2 + j) for j in range(len(th))]
    ddd, iii, dd, ii, grid, how = _run(
        f, shells, triples, method, max_crop, backend, rechunk_method, block_bytes
    )
    b, p, tri = _finish(f, ddd, iii, dd, ii, grid)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = b / (p[0] * p[1] + p[1] * p[2:] + p[2:] * p[0])
    ds = xr.Dataset(
        {
            "B": ("theta", b, {"units": "(Mpc/h)^6", "long_name": "bispectrum"}),
            "Q": ("theta", q, {"units": "1", "long_name": "reduced bispectrum B/(P1P2+P2P3+P3P1)"}),
            "P3": ("theta", p[2:], {"units": "(Mpc/h)^3", "long_name": "power in the k3 shell"}),
            "triangles": ("theta", tri, {"units": "1", "long_name": "closed mode triplets"}),
        },
        coords={
            "theta": ("theta", th, {"units": "rad", "long_name": "angle between k1 and k2"}),
            "k3": ("theta", k3, {"units": "h/Mpc", "long_name": "|k1 + k2|"}),
        },
    )
    ds.attrs.update(_attrs(f, width, how))
    ds.attrs.update(
        {
            "k1": float(k1),
            "k2": float(k2),
            "k_units": "h/Mpc",
            "P1": float(p[0]),
            "P2": float(p[1]),
            "P_units": "(Mpc/h)^3",
        }
    )
    return ds


def bispectrum_equilateral(
    field: Any,
    k: Sequence[float] | np.ndarray,
    *,
    box_size: float | Sequence[float] | None = None,
    mas: str | None = "auto",
    shell_width: float | None = None,
    contrast: bool | None = None,
    method: Method = "auto",
    max_crop: int = DEFAULT_MAX_CROP,
    backend: str = "slab",
    rechunk_method: RechunkMethod = "auto",
    block_bytes: int | None = None,
) -> xr.Dataset:
    """Equilateral bispectrum ``B(k, k, k)`` and ``Q(k)`` (one filtered field per ``k``).

    Parameters as in :func:`bispectrum`; ``k`` in h/Mpc.

    Returns
    -------
    xarray.Dataset
        Dimension ``k`` (h/Mpc); variables ``B`` ((Mpc/h)^6), ``Q`` (1), ``P`` ((Mpc/h)^3,
        shell power) and ``triangles``.
    """
    ks = np.atleast_1d(np.asarray(k, dtype=np.float64))
    if ks.ndim != 1 or ks.size == 0 or np.any(~(ks > 0)):
        raise ConfigError(f"k must be positive wavenumbers in h/Mpc, got {ks.tolist()}")
    f = _prepare(
        field,
        box_size,
        mas,
        contrast,
        backend,
        rechunk_method,
        block_bytes,
        "equilateral bispectrum",
    )
    kf = 2 * math.pi / f.box
    width = kf if shell_width is None else float(shell_width)
    if not width > 0:
        raise ConfigError(f"shell_width must be positive (h/Mpc), got {shell_width}")
    shells = [_shell(float(v), width, kf, f.n) for v in ks]
    triples = [(i, i, i) for i in range(len(ks))]
    ddd, iii, dd, ii, grid, how = _run(
        f, shells, triples, method, max_crop, backend, rechunk_method, block_bytes
    )
    b, p, tri = _finish(f, ddd, iii, dd, ii, grid)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = b / (3 * p**2)
    ds = xr.Dataset(
        {
            "B": ("k", b, {"units": "(Mpc/h)^6", "long_name": "equilateral bispectrum"}),
            "Q": ("k", q, {"units": "1", "long_name": "reduced bispectrum B/(3P^2)"}),
            "P": ("k", p, {"units": "(Mpc/h)^3", "long_name": "power in the shell"}),
            "triangles": ("k", tri, {"units": "1", "long_name": "closed mode triplets"}),
        },
        coords={"k": ("k", ks, {"units": "h/Mpc"})},
    )
    ds.attrs.update(_attrs(f, width, how))
    return ds
