"""Halo mass functions of catalogues, their comparison with a truth catalogue, and a plot.

Conventions: masses in Msun/h, volumes in (Mpc/h)^3, bins in log10 M. Each bin carries its
count ``N`` and the count ``N(>M) = N(>= M_lo)`` of the bin and every heavier one, each with
its Poisson error ``sqrt(N)``. The differential mass function is
``dn/dlog10M = N_bin / (V_box * dlog10M)`` and the cumulative one ``n(>M) = N(>M) / V_box``,
both in (Mpc/h)^-3 (per dex for the first), their errors ``sqrt(N)`` scaled the same way. A
comparison adds the ratio to the truth with the errors of both counts,
``ratio * sqrt(1/N + 1/N_truth)`` (independent Poisson counts; for a catalogue segmented from
the truth's own map the two are correlated and this overstates the error).

Which truth a catalogue is judged against, and the report that judges it, live in
:mod:`bigpaint.segment.hmf_truth`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bigpaint.errors import ConfigError

__all__ = ["compare_mass_functions", "mass_bins", "mass_function", "plot_mass_function"]

_TRUTH_LABEL = {"connected": "connected truth", "fof": "FoF truth"}


def mass_bins(masses: Sequence[np.ndarray], bins: int = 12) -> np.ndarray:
    """Log-spaced bin edges in Msun/h spanning every positive mass of the catalogues."""
    allm = np.concatenate([np.asarray(m, dtype=np.float64) for m in masses])
    allm = allm[np.isfinite(allm) & (allm > 0)]
    if allm.size == 0:
        return np.array([1.0, 10.0])
    lo, hi = np.log10(allm.min()), np.log10(allm.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    edges = np.logspace(lo, hi + 1e-9 * max(1.0, abs(hi)), int(bins) + 1)
    # 10**log10(m) may round above m: the lightest halo must not fall below the first bin
    edges[0] = min(edges[0], allm.min())
    return edges


def mass_function(
    masses: np.ndarray, volume: float, bins: int | Sequence[float] | np.ndarray = 12
) -> xr.Dataset:
    """Differential and cumulative halo mass function with Poisson errors.

    Parameters
    ----------
    masses : numpy.ndarray
        Halo masses in Msun/h (non-positive or non-finite ones are ignored).
    volume : float
        Survey (box) volume in (Mpc/h)^3.
    bins : int or sequence or array of float
        Number of log-spaced bins over the masses, or edges in Msun/h.

    Returns
    -------
    xarray.Dataset
        Dimension ``bin``; coordinates ``m_lo``, ``m_hi``, ``m_centre`` (geometric) in
        Msun/h; variables ``count``, ``count_err`` (``sqrt(count)``), ``count_above``,
        ``count_above_err`` (haloes with M >= m_lo and ``sqrt`` of that), ``dn_dlog10m``,
        ``dn_dlog10m_err`` [(Mpc/h)^-3 dex^-1], ``n_above``, ``n_above_err`` [(Mpc/h)^-3].
    """
    m = np.asarray(masses, dtype=np.float64)
    m = m[np.isfinite(m) & (m > 0)]
    if not np.isfinite(volume) or volume <= 0:
        raise ConfigError(f"volume must be > 0 (Mpc/h)^3, got {volume}")
    edges = mass_bins([m], bins) if isinstance(bins, (int, np.integer)) else np.asarray(bins, float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] <= 0:
        raise ConfigError("mass bin edges must be at least two positive increasing values (Msun/h)")
    count, _ = np.histogram(m, edges)
    dlog = np.diff(np.log10(edges))
    above = np.array([np.count_nonzero(m >= e) for e in edges[:-1]])
    units_d = "(Mpc/h)^-3 dex^-1"
    ds = xr.Dataset(
        {
            "count": ("bin", count, {"units": "1", "long_name": "haloes in the bin"}),
            "count_err": ("bin", np.sqrt(count), {"units": "1", "long_name": "sqrt(count)"}),
            "count_above": ("bin", above, {"units": "1", "long_name": "haloes with M >= m_lo"}),
            "count_above_err": (
                "bin",
                np.sqrt(above),
                {"units": "1", "long_name": "sqrt(count_above)"},
            ),
            "dn_dlog10m": ("bin", count / (volume * dlog), {"units": units_d}),
            "dn_dlog10m_err": ("bin", np.sqrt(count) / (volume * dlog), {"units": units_d}),
            "n_above": ("bin", above / volume, {"units": "(Mpc/h)^-3"}),
            "n_above_err": ("bin", np.sqrt(above) / volume, {"units": "(Mpc/h)^-3"}),
        },
        coords={
            "m_lo": ("bin", edges[:-1], {"units": "Msun/h"}),
            "m_hi": ("bin", edges[1:], {"units": "Msun/h"}),
            "m_centre": ("bin", np.sqrt(edges[:-1] * edges[1:]), {"units": "Msun/h"}),
        },
        attrs={"volume": float(volume), "volume_units": "(Mpc/h)^3", "n_haloes": int(m.size)},
    )
    return ds


def compare_mass_functions(
    masses: np.ndarray,
    truth: np.ndarray,
    volume: float,
    bins: int | Sequence[float] | np.ndarray = 12,
    *,
    min_count: int = 20,
    truth_complete_above: float = 0.0,
) -> xr.Dataset:
    """Mass function of a catalogue next to a truth catalogue's, with ratios.

    Parameters
    ----------
    masses, truth : numpy.ndarray
        Halo masses of the catalogue and of the truth in Msun/h.
    volume : float
        Box volume in (Mpc/h)^3.
    bins : int or sequence or array of float
        Number of log-spaced bins over both catalogues, or edges in Msun/h.
    min_count : int
        Truth haloes a bin needs to be judged.
    truth_complete_above : float
        Mass (Msun/h) above which the truth holds every halo; bins whose lower edge lies
        below it are not judged.

    Returns
    -------
    xarray.Dataset
        The :func:`mass_function` variables, the same with ``_truth`` appended, ``ratio``
        and ``ratio_err`` (differential), ``ratio_above`` and ``ratio_above_err``
        (cumulative), ``well_sampled`` (the truth bin holds >= ``min_count`` haloes) and
        ``truth_complete`` (``m_lo >= truth_complete_above``).
        ``attrs['max_abs_deviation']`` is the largest ``|ratio - 1|`` over bins both
        well sampled and complete.
    """
    edges = (
        mass_bins([masses, truth], bins)
        if isinstance(bins, (int, np.integer))
        else np.asarray(bins, dtype=np.float64)
    )
    a = mass_function(masses, volume, edges)
    b = mass_function(truth, volume, edges)
    out = a.copy()
    for name in b.data_vars:
        out[f"{name}_truth"] = b[name]
    with np.errstate(divide="ignore", invalid="ignore"):
        na, nb = a["count"].values.astype(float), b["count"].values.astype(float)
        ratio = na / nb
        out["ratio"] = ("bin", ratio, {"units": "1"})
        out["ratio_err"] = ("bin", ratio * np.sqrt(1 / na + 1 / nb), {"units": "1"})
        ca = a["count_above"].values.astype(float)
        cb = b["count_above"].values.astype(float)
        ra = ca / cb
        out["ratio_above"] = ("bin", ra, {"units": "1"})
        out["ratio_above_err"] = ("bin", ra * np.sqrt(1 / ca + 1 / cb), {"units": "1"})
    good = nb >= min_count
    out["well_sampled"] = ("bin", good, {"long_name": f"truth bin holds >= {min_count} haloes"})
    # masses from rho_bar V and from particle_mass * cells agree to rounding only: a bin
    # starting at the completeness mass is complete
    complete = edges[:-1] >= truth_complete_above * (1 - 1e-9)
    out["truth_complete"] = (
        "bin",
        complete,
        {"long_name": f"the truth holds every halo of the bin (M >= {truth_complete_above:.4g})"},
    )
    dev = np.abs(ratio[good & complete] - 1)
    out.attrs.update(
        {
            "n_haloes_truth": int(b.attrs["n_haloes"]),
            "min_count": int(min_count),
            "truth_complete_above": float(truth_complete_above),
            "max_abs_deviation": float(dev.max()) if dev.size else float("nan"),
        }
    )
    return out


def plot_mass_function(ds: xr.Dataset, path: str | Path, *, label: str = "catalogue") -> Path:
    """PNG of dn/dlog10M (with the truth and a ratio panel when ``ds`` is a comparison)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compare = "ratio" in ds
    fig = Figure(figsize=(6.4, 6.4 if compare else 4.4))
    FigureCanvasAgg(fig)
    if compare:
        ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    else:
        ax, rax = fig.subplots(1, 1), None
    m = ds["m_centre"].values
    ok = ds["count"].values > 0
    ax.errorbar(
        m[ok],
        ds["dn_dlog10m"].values[ok],
        ds["dn_dlog10m_err"].values[ok],
        fmt="o",
        ms=4,
        label=label,
    )
    if compare:
        okt = ds["count_truth"].values > 0
        ax.errorbar(
            m[okt],
            ds["dn_dlog10m_truth"].values[okt],
            ds["dn_dlog10m_err_truth"].values[okt],
            fmt="s",
            ms=4,
            mfc="none",
            label=_TRUTH_LABEL.get(ds.attrs.get("truth_kind", ""), "truth"),
        )
        r = ds["ratio"].values
        judged = ds["well_sampled"].values & ds["truth_complete"].values
        good = judged & np.isfinite(r)
        rest = ~judged & np.isfinite(r)
        rax.axhspan(0.95, 1.05, color="0.85", label="±5%")
        rax.axhline(1.0, color="k", lw=0.8)
        rax.errorbar(m[good], r[good], ds["ratio_err"].values[good], fmt="o", ms=4, color="C0")
        rax.errorbar(
            m[rest], r[rest], ds["ratio_err"].values[rest], fmt="o", ms=4, color="C0", alpha=0.35
        )
        rax.set_ylabel("ratio to truth")
        rax.set_xlabel(r"$M$ [$M_\odot/h$]")
        rax.set_xscale("log")
        rax.legend(loc="best", fontsize=8)
        with np.errstate(invalid="ignore"):
            err = np.nan_to_num(ds["ratio_err"].values, nan=0.0, posinf=0.0)
        lo = np.min(np.where(good, r - err, 0.8), initial=0.8)
        hi = np.max(np.where(good, r + err, 1.2), initial=1.2)
        rax.set_ylim(min(0.8, lo), max(1.2, hi))
    else:
        ax.set_xlabel(r"$M$ [$M_\odot/h$]")
    ax.set_xscale("log")
    if ok.any() or (compare and (ds["count_truth"].values > 0).any()):
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no haloes", transform=ax.transAxes, ha="center")
    ax.set_ylabel(r"$dn/d\log_{10}M$ [$(h/\mathrm{Mpc})^3$]")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
