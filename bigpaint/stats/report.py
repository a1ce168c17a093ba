"""One call per ``bigpaint stats`` subcommand: compute, write the tables, draw the figures.

The CLI parses options and calls exactly one of these; they are also the quickest way to get
tables and figures from Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bigpaint.errors import ConfigError
from bigpaint.stats.bispectrum import bispectrum, bispectrum_equilateral
from bigpaint.stats.dice import DEFAULT_TOP, dice
from bigpaint.stats.onepoint import pixel_pdf, subvolume_means
from bigpaint.stats.peaks import peak_counts
from bigpaint.stats.plots import (
    plot_bispectrum,
    plot_comparison,
    plot_dice,
    plot_onepoint,
    plot_power,
)
from bigpaint.stats.power import compare_spectra, power_spectrum
from bigpaint.stats.tables import write_table

__all__ = ["bispectrum_report", "onepoint_report", "power_report"]


def power_report(
    a: Any,
    b: Any = None,
    *,
    out: str | Path | None = None,
    plot: str | Path | None = None,
    mas: str | None = "auto",
    mas_b: str | None = "auto",
    compensation: str = "sinc",
    dk: float | None = None,
    kmin: float | None = None,
    kmax: float | None = None,
    nbins: int | None = None,
    log: bool = False,
    los: int | str = 2,
    multipoles: Sequence[int] = (0, 2, 4),
    contrast: bool | None = None,
) -> xr.Dataset:
    """P(k) of ``a`` (multipoles), or, with ``b`` the reference, ``compare_spectra(a, b)``.

    Writes the table to ``out`` (.csv or .nc) and a PNG to ``plot`` when given.
    """
    common: dict[str, Any] = {
        "compensation": compensation,
        "dk": dk,
        "kmin": kmin,
        "kmax": kmax,
        "nbins": nbins,
        "log": log,
        "contrast": contrast,
    }
    if b is None:
        ds = power_spectrum(a, mas=mas, los=los, multipoles=multipoles, **common)
        if plot:
            plot_power(ds, plot)
    else:
        ds = compare_spectra(a, b, mas=mas, mas_true=mas_b, **common)
        if plot:
            plot_comparison(ds, plot)
    if out:
        write_table(ds, out)
    return ds


def bispectrum_report(
    a: Any,
    b: Any = None,
    *,
    k1: float | None = None,
    k2: float | None = None,
    theta: Sequence[float] | None = None,
    equilateral: Sequence[float] | None = None,
    out: str | Path | None = None,
    plot: str | Path | None = None,
    mas: str | None = "auto",
    shell_width: float | None = None,
    method: str = "auto",
    contrast: bool | None = None,
) -> dict[str, xr.Dataset]:
    """B(k1, k2, theta) (or equilateral B(k)) of ``a`` and optionally of the reference ``b``.

    With ``b``, the table holds ``B_b``/``Q_b`` and the ratio ``B/B_b`` too, and the figure a
    ratio panel.
    """
    opts: dict[str, Any] = {
        "mas": mas,
        "shell_width": shell_width,
        "method": method,
        "contrast": contrast,
    }
    if equilateral is not None:
        if any(v is not None for v in (k1, k2, theta)):
            raise ConfigError("give either --equilateral K,... or --k1/--k2/--theta, not both")

        def run(f: Any) -> xr.Dataset:
            return bispectrum_equilateral(f, np.asarray(equilateral, float), **opts)
    else:
        if k1 is None or k2 is None or theta is None:
            raise ConfigError("the bispectrum needs --k1, --k2 and --theta (or --equilateral)")

        def run(f: Any) -> xr.Dataset:
            return bispectrum(f, float(k1), float(k2), np.asarray(theta, float), **opts)

    results = {"a": run(a)}
    table = results["a"]
    if b is not None:
        results["b"] = run(b)
        table = table.assign(
            B_b=results["b"].B,
            Q_b=results["b"].Q,
            ratio=(table.B / results["b"].B).assign_attrs(units="1", long_name="B / B_reference"),
        )
    if out:
        write_table(table, out)
    if plot:
        labels = {
            "a": str(a) if isinstance(a, (str, Path)) else "field",
            "b": str(b) if isinstance(b, (str, Path)) else "reference",
        }
        plot_bispectrum(
            {labels[k]: v for k, v in results.items()},
            plot,
            ratio_to=labels["b"] if b is not None else None,
        )
    return results


def onepoint_report(
    a: Any,
    b: Any = None,
    *,
    out: str | Path | None = None,
    plot: str | Path | None = None,
    bins: int = 100,
    log: bool = False,
    value_range: tuple[float, float] | None = None,
    peak_bins: int = 50,
    subvolumes: int = 4,
    top: Sequence[float] = DEFAULT_TOP,
) -> dict[str, xr.Dataset]:
    """Pixel PDF, peak counts and sub-volume means of ``a`` (and ``b``), Dice of the pair.

    ``out`` is a path prefix: tables ``<out>_pdf``, ``_peaks``, ``_means`` (and ``_dice``) with
    the suffix of ``out`` (.csv default, or .nc). ``plot`` is a PNG prefix likewise
    (``<plot>_onepoint.png`` and ``<plot>_dice.png``).
    """
    fields = {"a": a} if b is None else {"a": a, "b": b}
    labels = {k: (str(v) if isinstance(v, (str, Path)) else k) for k, v in fields.items()}
    pdfs, peaks, means = {}, {}, {}
    # common edges for both fields so the PDFs compare bin by bin
    rng = value_range
    if rng is None and b is not None:
        from bigpaint.stats.inputs import as_input
        from bigpaint.stats.onepoint import extrema

        ext = [
            extrema(as_input(f, where="pixel PDF", require_box=False).data) for f in fields.values()
        ]
        rng = (min(e[2] if log else e[0] for e in ext), max(e[1] for e in ext))
    for key, f in fields.items():
        pdfs[key] = pixel_pdf(f, bins, range=rng, log=log)
        peaks[key] = peak_counts(f, peak_bins, range=rng if not log else None)
        means[key] = subvolume_means(f, subvolumes)
    results: dict[str, xr.Dataset] = {}
    for key in fields:
        results[f"pdf_{key}"] = pdfs[key]
        results[f"peaks_{key}"] = peaks[key]
        results[f"means_{key}"] = means[key]
    if b is not None:
        results["dice"] = dice(b, a, top, subvolumes=subvolumes)
    if out:
        base = Path(out)
        suffix = base.suffix or ".csv"
        stem = base.with_suffix("") if base.suffix else base
        for name, ds in results.items():
            write_table(ds, f"{stem}_{name}{suffix}")
    if plot:
        base = Path(plot)
        stem = base.with_suffix("") if base.suffix else base
        plot_onepoint(
            {labels[k]: v for k, v in pdfs.items()},
            f"{stem}_onepoint.png",
            peaks={labels[k]: v for k, v in peaks.items()},
            means={labels[k]: v for k, v in means.items()},
        )
        if b is not None:
            plot_dice(results["dice"], f"{stem}_dice.png")
    return results
