"""Halo mass functions of catalogues, their comparison with a truth catalogue, and a plot.

Conventions: masses in Msun/h, volumes in (Mpc/h)^3, bins in log10 M. Each bin carries its
count ``N`` and the count ``N(>M) = N(>= M_lo)`` of the bin and every heavier one, each with
its Poisson error ``sqrt(N)``. The differential mass function is
``dn/dlog10M = N_bin / (V_box * dlog10M)`` and the cumulative one ``n(>M) = N(>M) / V_box``,
both in (Mpc/h)^-3 (per dex for the first), their errors ``sqrt(N)`` scaled the same way. A
comparison adds the ratio to the truth with the errors of both counts,
``ratio * sqrt(1/N + 1/N_truth)`` (independent Poisson counts; for a catalogue segmented from
the truth's own map the two are correlated and this overstates the error).

**Which truth.** ``bigpaint simulate`` writes two: the FoF catalogue (``halos.parquet``) and
the connected truth (``protohalos_connected.parquet``, :mod:`bigpaint.sim.connected_truth`):
each halo's largest face-connected Lagrangian region, the object its distance map is made
of. A segmentation yields connected regions, so FoF masses, whose Lagrangian regions are
often in pieces, are out of its reach; the connected truth is the fair reference. The kind
of a truth file is read from its metadata (or named: ``truth_kind``). The connected truth
holds every object above its ``complete_above`` mass only, so bins starting below it are
marked ``truth_complete = False`` and not judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bigpaint.errors import ConfigError, MetadataError
from bigpaint.segment.catalog import catalog_meta, read_catalog

__all__ = [
    "TRUTH_KINDS",
    "catalog_masses",
    "compare_mass_functions",
    "hmf_report",
    "mass_bins",
    "mass_function",
    "plot_mass_function",
    "truth_masses",
]

#: Kinds of truth catalogue ``truth_kind`` may name (``auto``: read from the metadata).
TRUTH_KINDS = ("auto", "connected", "fof")

_TRUTH_LABEL = {"connected": "connected truth", "fof": "FoF truth"}

_KIND_TEXT = {
    "connected": "a connected-truth catalogue (protohalos_connected.parquet of bigpaint simulate)",
    "fof": "a FoF halo catalogue (halos.parquet of bigpaint simulate)",
    "catalog": "neither a connected-truth nor a FoF halo catalogue of bigpaint simulate (its "
    "metadata names neither)",
}


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
    masses: np.ndarray, volume: float, bins: int | Sequence[float] = 12
) -> xr.Dataset:
    """Differential and cumulative halo mass function with Poisson errors.

    Parameters
    ----------
    masses : numpy.ndarray
        Halo masses in Msun/h (non-positive or non-finite ones are ignored).
    volume : float
        Survey (box) volume in (Mpc/h)^3.
    bins : int or sequence of float
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
    bins: int | Sequence[float] = 12,
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
    bins : int or sequence of float
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


def catalog_masses(
    path: str | Path,
    *,
    column: str = "mass",
    box_size: float | Sequence[float] | None = None,
    table: Any = None,
) -> tuple[np.ndarray, float]:
    """Masses (Msun/h) and box volume ((Mpc/h)^3) of a Parquet catalogue.

    The box comes from ``box_size`` if given, else from the catalogue's metadata (bigpaint's
    ``bigpaint`` key, or a ``box_size`` entry in any JSON schema metadata value). ``table``
    is the file already read, if it was.
    """
    table = read_catalog(path) if table is None else table
    if column not in table.column_names:
        raise MetadataError(
            f"{path} has no {column!r} column (columns: {', '.join(table.column_names)}); "
            "name the mass column"
        )
    masses = np.asarray(table[column].to_numpy(zero_copy_only=False), dtype=np.float64)
    if box_size is None:
        box_size = _box_from_metadata(table)
        if box_size is None:
            raise MetadataError(f"{path} does not record its box size; give it (--box, Mpc/h)")
    box = np.broadcast_to(np.asarray(box_size, dtype=np.float64), (3,))
    return masses, float(np.prod(box))


def truth_masses(
    path: str | Path,
    *,
    kind: str = "auto",
    column: str = "mass",
    box_size: float | Sequence[float] | None = None,
) -> tuple[np.ndarray, float, str, float]:
    """Masses of a truth catalogue, its box volume, its kind and its completeness mass.

    Parameters
    ----------
    path : str or Path
        Parquet catalogue.
    kind : {"auto", "connected", "fof"}
        The kind the file must be; ``auto`` reads it from the metadata and also takes any
        other catalogue with a mass column (kind ``catalog``).
    column : str
        Mass column (Msun/h).
    box_size : float or sequence of 3 float, optional
        Box side(s) in Mpc/h, else from the metadata.

    Returns
    -------
    masses : numpy.ndarray
        Msun/h.
    volume : float
        (Mpc/h)^3.
    kind : str
        ``connected``, ``fof`` or ``catalog``.
    complete_above : float
        Msun/h; the truth holds every halo above it (0 but for the connected truth).

    Raises
    ------
    ConfigError
        ``kind`` is not one of :data:`TRUTH_KINDS`, or the file is of another kind.
    MetadataError
        A connected-truth file misses a column or metadata entry.
    """
    if kind not in TRUTH_KINDS:
        raise ConfigError(f"truth kind must be one of {', '.join(TRUTH_KINDS)}, got {kind!r}")
    table = read_catalog(path)
    info = catalog_meta(table)
    found = _truth_kind(info)
    if kind != "auto" and found != kind:
        other = "halos.parquet" if kind == "fof" else "protohalos_connected.parquet"
        wanted = "" if found == "catalog" else f", not {_KIND_TEXT[kind]}"
        raise ConfigError(
            f"{path} is {_KIND_TEXT[found]}{wanted}; give the simulation's {other}, or "
            "--truth-kind auto to compare with it as it is"
        )
    complete_above = 0.0
    if found == "connected":
        from bigpaint.sim.connected_truth import check_connected_truth

        complete_above = float(check_connected_truth(table, path)["complete_above"])
    masses, volume = catalog_masses(path, column=column, box_size=box_size, table=table)
    return masses, volume, found, complete_above


def _truth_kind(info: dict[str, Any]) -> str:
    """``connected``, ``fof`` or ``catalog`` from a catalogue's ``bigpaint`` metadata."""
    from bigpaint.sim.connected_truth import CONNECTED_FORMAT

    if info.get("format") == CONNECTED_FORMAT:
        return "connected"
    if "format" not in info and "particle_mass" in info:  # bigpaint.sim.fof.write_catalogue
        return "fof"
    return "catalog"


def _box_from_metadata(table: Any) -> Any:
    info = catalog_meta(table)
    if "box_size" in info:
        return info["box_size"]
    import json

    for raw in (table.schema.metadata or {}).values():
        try:
            d = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(d, dict) and "box_size" in d:
            return d["box_size"]
    return None


def hmf_report(
    catalog: str | Path,
    *,
    truth: str | Path | None = None,
    out: str | Path | None = None,
    bins: int | Sequence[float] = 12,
    column: str = "mass",
    truth_column: str = "mass",
    box_size: float | None = None,
    min_count: int = 20,
    min_mass: float = 0.0,
    truth_kind: str = "auto",
) -> tuple[xr.Dataset, list[Path]]:
    """Mass function of a catalogue (and its comparison with a truth catalogue); ``bigpaint hmf``.

    Parameters
    ----------
    catalog : str or Path
        Parquet catalogue with a mass column (Msun/h).
    truth : str or Path, optional
        Truth catalogue: the connected truth or the FoF catalogue of ``bigpaint simulate``
        (see the module docstring), or any catalogue with a mass column.
    out : str or Path, optional
        Writes ``OUT.csv`` (the table, units in the headers) and ``OUT.png``.
    bins : int or sequence of float
        Number of log-spaced bins, or edges in Msun/h.
    column, truth_column : str
        Mass columns (Msun/h).
    box_size : float, optional
        Box side in Mpc/h when the catalogues do not record it.
    min_count : int
        Truth haloes a bin needs to be judged.
    min_mass : float
        Msun/h; lighter haloes are dropped from both catalogues first (e.g. the protohalo
        mass cut, when the truth is a FoF catalogue of all haloes).
    truth_kind : {"auto", "connected", "fof"}
        The kind the truth must be (``auto``: read from its metadata).

    Returns
    -------
    ds : xarray.Dataset
        :func:`mass_function` or :func:`compare_mass_functions`; ``attrs['truth_kind']``.
    paths : list of Path
        The files written.
    """
    from bigpaint.stats.tables import write_table

    if truth is None and truth_kind != "auto":
        raise ConfigError(f"--truth-kind {truth_kind} names the kind of --truth; give --truth")
    masses, vol = catalog_masses(catalog, column=column, box_size=box_size)
    masses = masses[masses >= min_mass]
    if truth is not None:
        tmass, tvol, kind, complete_above = truth_masses(
            truth, kind=truth_kind, column=truth_column, box_size=box_size
        )
        tmass = tmass[tmass >= min_mass]
        if not np.isclose(vol, tvol, rtol=1e-6):
            raise MetadataError(
                f"the catalogue's box ({vol:.6g} (Mpc/h)^3) differs from the truth's ({tvol:.6g}); "
                "compare catalogues of the same box"
            )
        ds = compare_mass_functions(
            masses, tmass, vol, bins, min_count=min_count, truth_complete_above=complete_above
        )
        ds.attrs["truth_kind"] = kind
    else:
        ds = mass_function(masses, vol, bins)
    ds.attrs["catalog"] = str(catalog)
    ds.attrs["min_mass"] = float(min_mass)
    if truth is not None:
        ds.attrs["truth"] = str(truth)
    paths: list[Path] = []
    if out is not None:
        out = Path(out)
        csv = ds.copy()
        for flag in ("well_sampled", "truth_complete"):
            if flag in csv:
                csv[flag] = csv[flag].astype(int)
        paths.append(write_table(csv, out.with_suffix(".csv")))
        paths.append(plot_mass_function(ds, out.with_suffix(".png"), label=Path(catalog).stem))
    return ds, paths
