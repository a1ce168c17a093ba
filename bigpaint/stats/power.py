"""Auto and cross power spectra, multipoles, T(k), r_c(k) and stochasticity, chunk by chunk.

The fields go through the distributed real FFT (:func:`bigpaint.mesh.fft.rfftn`), and every
block of its output is reduced to per-bin sums where it lies; only those sums (a few numbers
per bin) travel to the client, so no box is ever gathered. numpy arrays are already in
memory: they are transformed whole on threads (:func:`bigpaint.mesh.fft.rfftn_memory`, no
transposes) and binned by one threaded pass. Either way the bin key of a mode is its integer
``k^2 = m_x^2 + m_y^2 + m_z^2``: one compiled pass accumulates per distinct ``k^2`` and the
sums are folded into the requested bins (:mod:`bigpaint.stats.power_modes`).

Conventions (chosen to match Pylians3 ``Pk_library.Pk`` / ``XPk`` so results compare):

* ``P(k) = <|delta_k|^2> V / N^6`` with ``delta_k`` numpy's unnormalised FFT: units
  (Mpc/h)^3 for a dimensionless field (``(units)^2 (Mpc/h)^3`` otherwise).
* Mass-assignment compensation divides ``delta_k`` by ``prod_i sinc(pi m_i / n)^p``
  (Pylians' ``MAS_correction``); ``compensation="aliased"`` instead divides the power by
  Jing's alias sum (flat Poisson shot noise for non-interlaced fields; see
  :mod:`bigpaint.mesh.window`). ``mas="auto"`` takes the scheme from the Field's
  ``mass_assignment`` record and refuses a deposit-like Field without one
  (:func:`bigpaint.stats.inputs.resolve_mas`); the table's attributes say which scheme was
  divided out, whether the field was interlaced, and where that came from.
* Only independent modes count: one per conjugate pair in the ``k_z = 0`` and Nyquist
  planes, Pylians' rule (:func:`bigpaint.mesh.kgrid.independent_modes`).
* ``k`` of a bin is the mean ``|k|`` of its modes; the DC mode is never binned.
* Default bins are Pylians' (width ``k_F`` from ``k_F``, see :mod:`bigpaint.stats.bins`).
* Multipoles ``P_l = (2l + 1) <|delta_k|^2 L_l(mu)>`` with ``mu = k_los / |k|`` along an axis.
* Cross spectra use ``Re(delta_a delta_b^*)``, as ``XPk``.

Deliberate differences from Pylians: sums are float64 from the first product (Pylians forms
``|delta_k|^2`` in float32 for float32 fields), so results agree to float32 rounding, not
bit for bit; bins may be any edges (Pylians: integer shells only); the last default bin is
labelled by its true upper edge ``sqrt(3) k_Nyq``; a bin without modes gives NaN. Density
and count fields are turned into contrasts by default (``contrast=None``), which Pylians
leaves to the caller. Shot noise is reported in the attributes and never subtracted
(nbodykit's convention; Pylians reports none).

T(k), r_c(k) and s(k) follow Kodi Ramanah et al. (halo painting WGAN, eqs 6.3-6.5):
``T = sqrt(P_pred / P_true)``, ``r_c = P_x / sqrt(P_pred P_true)`` (sign kept),
``s = P_true (1 - r_c^2)``.

Why hand-written: Pylians and nbodykit hold the whole FFT on one process (or need MPI);
binning chunk by chunk over a dask FFT is what none of them does. The numba kernel replaces
numpy's ``bincount`` passes (about ten full-block temporaries for three multipoles), which
dominated the run time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from bigpaint.errors import ConfigError
from bigpaint.mesh.fft import RechunkMethod
from bigpaint.mesh.window import Compensation
from bigpaint.stats.bins import kbins
from bigpaint.stats.inputs import COUNT_KINDS, FieldInput
from bigpaint.stats.power_modes import BinPlan, binned_sums, plan_bins
from bigpaint.stats.power_prepare import Prepared, prepare, prepared_sums, transform_norm

__all__ = [
    "BinPlan",
    "binned_sums",
    "compare_spectra",
    "cross_correlation",
    "plan_bins",
    "power_spectrum",
    "stochasticity",
    "transfer_function",
]

#: Line-of-sight axis by name or number.
LOS_AXES: dict[int | str, int] = {"x": 0, "y": 1, "z": 2, 0: 0, 1: 1, 2: 2}
K_UNITS = "h/Mpc"


# ---------------------------------------------------------------- helpers on spectra


def transfer_function(p_pred: Any, p_true: Any) -> np.ndarray:
    """``T(k) = sqrt(P_pred / P_true)`` (halo painting WGAN, eq. 6.3)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.asarray(p_pred, np.float64) / np.asarray(p_true, np.float64))


def cross_correlation(p_cross: Any, p_a: Any, p_b: Any) -> np.ndarray:
    """``r_c(k) = P_x / sqrt(P_a P_b)``, sign kept (eq. 6.4)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(p_cross, np.float64) / np.sqrt(
            np.asarray(p_a, np.float64) * np.asarray(p_b, np.float64)
        )


def stochasticity(p_true: Any, r_c: Any) -> np.ndarray:
    """``s(k) = P_true (1 - r_c^2)`` (eq. 6.5), in the units of ``P_true``."""
    return np.asarray(p_true, np.float64) * (1.0 - np.asarray(r_c, np.float64) ** 2)


# ---------------------------------------------------------------- public API


def _los_axis(los: int | str) -> int:
    try:
        return LOS_AXES[los]
    except KeyError:
        raise ConfigError(f"line of sight must be 0, 1, 2 or 'x', 'y', 'z', got {los!r}") from None


def _ells(multipoles: Sequence[int]) -> tuple[int, ...]:
    ells = tuple(sorted({int(e) for e in multipoles}))
    if not ells or any(e not in (0, 2, 4) for e in ells):
        raise ConfigError(f"multipoles must be a subset of (0, 2, 4), got {tuple(multipoles)}")
    return ells


def _shot_noise(
    inp: FieldInput, contrast: bool, mean: float, given: float | str | None
) -> tuple[float, str]:
    if given is None:
        return math.nan, "none"
    if given != "auto":
        return float(given), "given"
    n_tracers = inp.provenance.get("n_tracers") or inp.provenance.get("n_particles")
    if n_tracers:
        return inp.volume / float(n_tracers), "V / provenance n_tracers"
    if contrast and inp.kind in COUNT_KINDS:
        total = mean * math.prod(inp.shape)
        return inp.volume / total, "V / sum(counts)"
    return math.nan, "unknown (not a count field)"


def _power_units(
    inp_a: FieldInput, ca: bool, inp_b: FieldInput | None = None, cb: bool = False
) -> str:
    ua = "1" if ca else inp_a.units
    if inp_b is None:
        return "(Mpc/h)^3" if ua == "1" else f"({ua})^2 (Mpc/h)^3"
    ub = "1" if cb else inp_b.units
    if ua == "1" and ub == "1":
        return "(Mpc/h)^3"
    return f"({ua}) ({ub}) (Mpc/h)^3"


def _bins_for(
    box: float, n: int, bins: Any, dk: Any, kmin: Any, kmax: Any, nbins: Any, log: bool
) -> np.ndarray:
    if isinstance(bins, (int, np.integer)):
        if nbins is not None:
            raise ConfigError("give the number of k bins once (bins=int or nbins=)")
        return kbins(box, n, dk=dk, kmin=kmin, kmax=kmax, nbins=int(bins), log=log)
    return kbins(box, n, edges=bins, dk=dk, kmin=kmin, kmax=kmax, nbins=nbins, log=log)


def _bin_coords(plan: BinPlan, counts: np.ndarray, ksum: np.ndarray) -> dict[str, Any]:
    with np.errstate(invalid="ignore", divide="ignore"):
        kmean = np.where(counts > 0, ksum / np.maximum(counts, 1) * plan.kf, np.nan)
    return {
        "k": ("bin", kmean, {"units": K_UNITS, "long_name": "mean |k| of the modes in the bin"}),
        "k_lo": ("bin", plan.edges[:-1], {"units": K_UNITS, "long_name": "lower bin edge"}),
        "k_hi": ("bin", plan.edges[1:], {"units": K_UNITS, "long_name": "upper bin edge"}),
        "n_modes": (
            "bin",
            counts.astype(np.int64),
            {"units": "1", "long_name": "independent modes in the bin"},
        ),
    }


def power_spectrum(
    field: Any,
    other: Any = None,
    *,
    box_size: float | Sequence[float] | None = None,
    mas: str | None = "auto",
    mas_other: str | None = "auto",
    interlaced: bool | None = None,
    compensation: Compensation = "sinc",
    bins: Sequence[float] | int | None = None,
    dk: float | None = None,
    kmin: float | None = None,
    kmax: float | None = None,
    nbins: int | None = None,
    log: bool = False,
    los: int | str = 2,
    multipoles: Sequence[int] = (0, 2, 4),
    contrast: bool | None = None,
    shot_noise: float | Literal["auto"] | None = "auto",
    backend: str = "slab",
    rechunk_method: RechunkMethod = "auto",
    block_bytes: int | None = None,
) -> xr.Dataset:
    """Binned auto power spectrum of ``field`` (or its cross spectrum with ``other``).

    Parameters
    ----------
    field, other : Field URL, opened Field, or 3-D numpy/dask array
        Cubic grids of equal shape and box. Arrays need ``box_size``.
    box_size : float or 3 floats, optional
        Box side in Mpc/h for array inputs.
    mas, mas_other : {"auto", "NGP", "CIC", "TSC", "PCS", None}
        Mass-assignment scheme to compensate; ``"auto"`` reads the Field's
        ``mass_assignment`` record. A Field of a deposit kind (densities, counts, ``delta``)
        without a record is refused under ``"auto"``; other kinds and arrays get none.
        None compensates nothing.
    interlaced : bool, optional
        Recorded in the attributes (default: the Field's record). An interlaced field takes
        ``compensation="sinc"``; ``"aliased"`` is refused for it.
    compensation : {"sinc", "aliased", "none"}
        ``"sinc"`` divides by ``W(k)^2`` (Pylians); ``"aliased"`` by Jing's alias sum (use on
        non-interlaced fields for flat shot noise).
    bins : sequence of float or int, optional
        Bin edges in h/Mpc, or a number of bins. Default: Pylians' shells of width ``k_F``.
    dk, kmin, kmax, nbins, log
        Build bins instead (see :func:`bigpaint.stats.bins.kbins`); all in h/Mpc.
    los : {0, 1, 2, "x", "y", "z"}
        Line-of-sight axis of the multipoles.
    multipoles : subset of (0, 2, 4)
    contrast : bool, optional
        Use ``field / mean - 1``. Default: for density and count kinds
        (:data:`bigpaint.stats.inputs.DENSITY_KINDS`), not for ``delta`` or arrays.
    shot_noise : float, "auto" or None
        Reported in ``attrs["shot_noise"]`` ((Mpc/h)^3), never subtracted. ``"auto"``:
        ``V / provenance["n_tracers"]``, else ``V / sum(field)`` for count fields, else NaN.
    backend, rechunk_method, block_bytes
        Passed to :func:`bigpaint.mesh.fft.rfftn`.

    Returns
    -------
    xarray.Dataset
        Dimension ``bin``; coordinates ``k`` (mean |k|, h/Mpc), ``k_lo``, ``k_hi``,
        ``n_modes``; variables ``P0``, ``P2``, ``P4`` (those requested) with units; attrs with
        the conventions used (box size, grid, ``mas``, ``interlaced``, ``mas_source``,
        compensation, contrast, shot noise).

    Raises
    ------
    ShapeError, MetadataError
        Grids or boxes differ, or are not cubic; ``mas="auto"`` on a deposit-like Field
        without a mass-assignment record.
    ConfigError
        k bins outside ``(0, sqrt(3) k_Nyq]``, bad options.
    NonFiniteError
        NaN or inf in a field.
    """
    losi = _los_axis(los)
    ells = _ells(multipoles)
    objs = [field] if other is None else [field, other]
    prep = prepare(
        objs,
        box_size=box_size,
        mas=[mas, mas_other][: len(objs)],
        interlaced=[interlaced] * len(objs),
        compensation=compensation,
        contrast=contrast,
        where="power spectrum",
        backend=backend,
        rechunk_method=rechunk_method,
        block_bytes=block_bytes,
    )
    edges = _bins_for(prep.box, prep.n, bins, dk, kmin, kmax, nbins, log)
    plan = plan_bins(edges, prep.box)
    pair = (0, 0) if other is None else (0, 1)
    sums = prepared_sums(prep, plan, (pair,), losi, ells)
    counts, ksum = sums[0], sums[1]
    scale = transform_norm(prep) * prep.scales[0] * prep.scales[pair[1]]
    cross = other is not None
    ds = _table(_multipole_vars(prep, sums, ells, scale, cross), _bin_coords(plan, counts, ksum))
    ds.attrs.update(_attrs(prep, compensation, losi, "cross" if cross else "auto"))
    ds.attrs.update(_shot_noise_attrs(prep, shot_noise, cross))
    return ds


def _table(data_vars: dict[str, Any], coords: dict[str, Any]) -> xr.Dataset:
    """A Dataset of ``name: (dim, numpy values, attrs)`` entries.

    Built from ready ``xarray.Variable`` objects (``fastpath``: the values are numpy arrays
    made here), because xarray's conversion of raw arrays asks whether each is a dask array
    and imports ``dask.array`` to find out: 0.2 s of a 256^3 spectrum's whole process.
    """

    def var(entry: tuple[str, Any, dict[str, Any]]) -> xr.Variable:
        dim, values, attrs = entry
        return xr.Variable((dim,), np.asarray(values), attrs, fastpath=True)

    return xr.Dataset(
        {k: var(v) for k, v in data_vars.items()}, coords={k: var(v) for k, v in coords.items()}
    )


def _multipole_vars(
    prep: Prepared, sums: np.ndarray, ells: Sequence[int], scale: float, cross: bool
) -> dict[str, Any]:
    """The ``P{ell}`` variables of binned ``sums`` (counts, k sums, one row per multipole),
    normalized by ``scale``; NaN in empty bins."""
    counts = sums[0]
    units = _power_units(
        prep.inputs[0],
        prep.contrasts[0],
        *((prep.inputs[1], prep.contrasts[1]) if cross else ()),
    )
    data_vars = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for j, ell in enumerate(ells):
            vals = np.where(counts > 0, sums[2 + j] / counts * (2 * ell + 1) * scale, np.nan)
            data_vars[f"P{ell}"] = (
                "bin",
                vals,
                {
                    "units": units,
                    "long_name": f"{'cross ' if cross else ''}power multipole ell={ell}",
                },
            )
    return data_vars


def _shot_noise_attrs(
    prep: Prepared, shot_noise: float | Literal["auto"] | None, cross: bool
) -> dict[str, Any]:
    """The reported shot noise ((Mpc/h)^3) and where it came from: of a cross spectrum only
    a given number (the two fields' noises do not add up to it)."""
    sn, sn_src = _shot_noise(
        prep.inputs[0], prep.contrasts[0], prep.means[0], None if cross else shot_noise
    )
    if cross and shot_noise not in ("auto", None):
        sn, sn_src = float(shot_noise), "given"
    return {"shot_noise": sn, "shot_noise_units": "(Mpc/h)^3", "shot_noise_source": sn_src}


def _attrs(prep: Prepared, compensation: str, los: int, statistic: str) -> dict[str, Any]:
    return {
        "statistic": f"{statistic} power spectrum",
        "fields": ", ".join(i.label for i in prep.inputs),
        "box_size": prep.box,
        "box_size_units": "Mpc/h",
        "grid": prep.n,
        "k_fundamental": 2 * math.pi / prep.box,
        "k_nyquist": math.pi * prep.n / prep.box,
        "mas": ", ".join(str(m) for m in prep.mas),
        "interlaced": ", ".join(str(i) for i in prep.interlaced),
        "mas_source": ", ".join(prep.mas_sources),
        "compensation": compensation,
        "contrast": ", ".join(str(c) for c in prep.contrasts),
        "field_means": ", ".join(f"{m:.9g}" for m in prep.means),
        "line_of_sight_axis": "xyz"[los],
        "conventions": "Pylians3 Pk_library: P = <|delta_k|^2> V/N^6, independent modes, mean |k| per bin, "
        "DC excluded; shot noise reported, not subtracted",
    }


def compare_spectra(
    pred: Any,
    true: Any,
    *,
    box_size: float | Sequence[float] | None = None,
    mas: str | None = "auto",
    mas_true: str | None = "auto",
    compensation: Compensation = "sinc",
    bins: Sequence[float] | int | None = None,
    dk: float | None = None,
    kmin: float | None = None,
    kmax: float | None = None,
    nbins: int | None = None,
    log: bool = False,
    contrast: bool | None = None,
    shot_noise: Literal["auto"] | None = "auto",
    backend: str = "slab",
    rechunk_method: RechunkMethod = "auto",
    block_bytes: int | None = None,
) -> xr.Dataset:
    """Auto and cross spectra of a predicted and a true field, T(k), r_c(k) and s(k) in one pass.

    Both fields are transformed once; the three spectra come from the same blocks. Options are
    those of :func:`power_spectrum` (``mas`` for ``pred``, ``mas_true`` for ``true``).

    Returns
    -------
    xarray.Dataset
        Dimension ``bin``; variables ``P_pred``, ``P_true``, ``P_cross`` ((Mpc/h)^3 for
        contrasts), ``T`` (sqrt(P_pred/P_true)), ``r_c`` (P_cross / sqrt(P_pred P_true), sign
        kept) and ``stochasticity`` (P_true (1 - r_c^2)); the coordinates of
        :func:`power_spectrum`; attrs ``shot_noise_pred`` and ``shot_noise_true``.
    """
    prep = prepare(
        [pred, true],
        box_size=box_size,
        mas=[mas, mas_true],
        interlaced=[None, None],
        compensation=compensation,
        contrast=contrast,
        where="compare spectra",
        backend=backend,
        rechunk_method=rechunk_method,
        block_bytes=block_bytes,
    )
    edges = _bins_for(prep.box, prep.n, bins, dk, kmin, kmax, nbins, log)
    plan = plan_bins(edges, prep.box)
    sums = prepared_sums(prep, plan, ((0, 0), (1, 1), (0, 1)), 2, (0,))
    counts, ksum = sums[0], sums[1]
    norm = transform_norm(prep)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = [np.where(counts > 0, sums[2 + j] / counts * norm, np.nan) for j in range(3)]
    p_pred = per[0] * prep.scales[0] ** 2
    p_true = per[1] * prep.scales[1] ** 2
    p_x = per[2] * prep.scales[0] * prep.scales[1]
    r_c = cross_correlation(p_x, p_pred, p_true)
    up = _power_units(prep.inputs[0], prep.contrasts[0])
    ut = _power_units(prep.inputs[1], prep.contrasts[1])
    ux = _power_units(prep.inputs[0], prep.contrasts[0], prep.inputs[1], prep.contrasts[1])
    ds = xr.Dataset(
        {
            "P_pred": (
                "bin",
                p_pred,
                {"units": up, "long_name": "power spectrum of the prediction"},
            ),
            "P_true": ("bin", p_true, {"units": ut, "long_name": "power spectrum of the truth"}),
            "P_cross": ("bin", p_x, {"units": ux, "long_name": "cross power spectrum"}),
            "T": (
                "bin",
                transfer_function(p_pred, p_true),
                {"units": "1", "long_name": "transfer function sqrt(P_pred/P_true)"},
            ),
            "r_c": ("bin", r_c, {"units": "1", "long_name": "cross-correlation coefficient"}),
            "stochasticity": (
                "bin",
                stochasticity(p_true, r_c),
                {"units": ut, "long_name": "P_true (1 - r_c^2)"},
            ),
        },
        coords=_bin_coords(plan, counts, ksum),
    )
    ds.attrs.update(_attrs(prep, compensation, 2, "auto and cross"))
    for name, i in (("pred", 0), ("true", 1)):
        sn, src = _shot_noise(prep.inputs[i], prep.contrasts[i], prep.means[i], shot_noise)
        ds.attrs[f"shot_noise_{name}"] = sn
        ds.attrs[f"shot_noise_{name}_source"] = src
    ds.attrs["shot_noise_units"] = "(Mpc/h)^3"
    return ds
