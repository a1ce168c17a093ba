"""PNG figures of the statistics: P(k) with ratio panels, T/r_c/stochasticity, B(theta), PDFs.

Figures are drawn with matplotlib's object API on an Agg canvas (``Figure`` +
``FigureCanvasAgg``), so no global backend is switched and nothing needs a display. Every
function takes the Datasets the statistics return (or a mapping ``label -> Dataset`` to
overlay several) and writes one PNG.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

__all__ = [
    "model_label",
    "plot_abundance",
    "plot_bispectrum",
    "plot_comparison",
    "plot_dice",
    "plot_evaluation_bispectrum",
    "plot_evaluation_pdf",
    "plot_evaluation_spectra",
    "plot_onepoint",
    "plot_power",
]


def _many(data: xr.Dataset | Mapping[str, xr.Dataset]) -> dict[str, xr.Dataset]:
    if isinstance(data, xr.Dataset):
        return {str(data.attrs.get("field", data.attrs.get("fields", "field"))): data}
    return dict(data)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def plot_power(
    spectra: xr.Dataset | Mapping[str, xr.Dataset],
    path: str | Path,
    *,
    var: str = "P0",
    ratio_to: str | None = None,
) -> Path:
    """P(k) of one or more spectra on log axes; with ``ratio_to``, a ratio panel below.

    Shot noise (attr ``shot_noise``, when finite) is drawn as a dashed line.
    """
    many = _many(spectra)
    fig = Figure(figsize=(6, 6 if ratio_to else 4.5))
    if ratio_to:
        ax, axr = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        ax, axr = fig.subplots(1, 1), None
    for label, ds in many.items():
        k, p = _finite(ds.k.values, ds[var].values)
        line = ax.loglog(k, np.abs(p), label=label)[0]
        sn = ds.attrs.get("shot_noise")
        if isinstance(sn, (int, float)) and np.isfinite(sn):
            ax.axhline(sn, ls="--", lw=0.8, color=line.get_color())
    units = next(iter(many.values()))[var].attrs.get("units", "")
    ax.set_ylabel(f"|{var}(k)| [{units}]")
    ax.legend(fontsize=8)
    if axr is not None:
        ref = many[ratio_to]
        for label, ds in many.items():
            with np.errstate(invalid="ignore", divide="ignore"):
                k, r = _finite(ds.k.values, ds[var].values / ref[var].values)
            axr.semilogx(k, r, label=label)
        axr.axhline(1.0, color="k", lw=0.6)
        axr.set_ylabel(f"ratio to {ratio_to}")
        axr.set_xlabel("k [h/Mpc]")
    else:
        ax.set_xlabel("k [h/Mpc]")
    fig.tight_layout()
    return _save(fig, path)


def plot_comparison(ds: xr.Dataset, path: str | Path) -> Path:
    """Four panels from :func:`~bigpaint.stats.power.compare_spectra`: P, T, r_c, stochasticity."""
    fig = Figure(figsize=(10, 7))
    axes = fig.subplots(2, 2, sharex=True)
    k = ds.k.values
    ax = axes[0, 0]
    for name, lab in (("P_true", "truth"), ("P_pred", "prediction")):
        ax.loglog(*_finite(k, ds[name].values), label=lab)
    for name, style in (("shot_noise_true", "--"), ("shot_noise_pred", ":")):
        sn = ds.attrs.get(name)
        if isinstance(sn, (int, float)) and np.isfinite(sn):
            ax.axhline(sn, ls=style, color="grey", lw=0.8, label=name.replace("_", " "))
    ax.set_ylabel(f"P(k) [{ds.P_true.attrs.get('units', '')}]")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.semilogx(*_finite(k, ds["T"].values))
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_ylabel("T(k) = sqrt(P_pred / P_true)")
    ax = axes[1, 0]
    ax.semilogx(*_finite(k, ds.r_c.values))
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_ylabel("r_c(k)")
    ax.set_xlabel("k [h/Mpc]")
    ax = axes[1, 1]
    kk, s = _finite(k, ds.stochasticity.values)
    ax.loglog(kk, np.abs(s), label="|s(k)|")
    sn = ds.attrs.get("shot_noise_true")
    if isinstance(sn, (int, float)) and np.isfinite(sn):
        ax.axhline(sn, ls="--", color="grey", lw=0.8, label="shot noise (truth)")
    ax.set_ylabel(f"s(k) = P_true (1 - r_c^2) [{ds.stochasticity.attrs.get('units', '')}]")
    ax.set_xlabel("k [h/Mpc]")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_bispectrum(
    data: xr.Dataset | Mapping[str, xr.Dataset], path: str | Path, *, ratio_to: str | None = None
) -> Path:
    """B and Q against theta (or k for equilateral); with ``ratio_to``, a ratio panel of B."""
    many = _many(data)
    first = next(iter(many.values()))
    dim = "theta" if "theta" in first.dims else "k"
    rows = 3 if ratio_to else 2
    fig = Figure(figsize=(6, 2.6 * rows))
    axes = fig.subplots(rows, 1, sharex=True)
    for label, ds in many.items():
        x = ds[dim].values
        axes[0].plot(*_finite(x, ds.B.values), marker="o", ms=3, label=label)
        axes[1].plot(*_finite(x, ds.Q.values), marker="o", ms=3, label=label)
        if ratio_to:
            with np.errstate(invalid="ignore", divide="ignore"):
                axes[2].plot(
                    *_finite(x, ds.B.values / many[ratio_to].B.values),
                    marker="o",
                    ms=3,
                    label=label,
                )
    axes[0].set_ylabel(f"B [{first.B.attrs.get('units', '')}]")
    axes[0].set_yscale(
        "symlog", linthresh=max(1e-30, float(np.nanmax(np.abs(first.B.values))) * 1e-3)
    )
    axes[1].set_ylabel("Q")
    if ratio_to:
        axes[2].axhline(1.0, color="k", lw=0.6)
        axes[2].set_ylabel(f"B / B[{ratio_to}]")
    if dim == "theta":
        title = f"k1 = {first.attrs.get('k1', float('nan')):.4g}, k2 = {first.attrs.get('k2', float('nan')):.4g} h/Mpc"
        axes[0].set_title(title, fontsize=9)
        axes[-1].set_xlabel("theta [rad]")
    else:
        axes[-1].set_xlabel("k [h/Mpc] (equilateral)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_onepoint(
    pdfs: Mapping[str, xr.Dataset],
    path: str | Path,
    *,
    peaks: Mapping[str, xr.Dataset] | None = None,
    means: Mapping[str, xr.Dataset] | None = None,
) -> Path:
    """Pixel PDF, peak counts and the distribution of sub-volume means, overlaid per field."""
    panels = 1 + (peaks is not None) + (means is not None)
    fig = Figure(figsize=(4.5 * panels, 4))
    axes = np.atleast_1d(fig.subplots(1, panels))
    ax = axes[0]
    for label, ds in pdfs.items():
        ax.step(ds.centre.values, ds.pdf.values, where="mid", label=label)
    first = next(iter(pdfs.values()))
    if first.attrs.get("log_bins") == "True":
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"voxel value [{first.attrs.get('units', '')}]")
    ax.set_ylabel("PDF")
    ax.legend(fontsize=8)
    i = 1
    if peaks is not None:
        ax = axes[i]
        i += 1
        for label, ds in peaks.items():
            ax.step(ds.centre.values, ds["count"].values, where="mid", label=label)
        ax.set_yscale("log")
        ax.set_xlabel("peak height")
        ax.set_ylabel("peaks per bin")
    if means is not None:
        ax = axes[i]
        vals = [np.asarray(ds["mean"].values).ravel() for ds in means.values()]
        lo = min(float(v.min()) for v in vals)
        hi = max(float(v.max()) for v in vals)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, 21)
        for label, v in zip(means, vals, strict=True):
            ax.hist(v, edges, histtype="step", label=label)
        ax.set_xlabel("sub-volume mean")
        ax.set_ylabel("sub-volumes")
    fig.tight_layout()
    return _save(fig, path)


def plot_dice(ds: xr.Dataset, path: str | Path) -> Path:
    """Dice vs top fraction with the random baseline (left) and eqs 10-11 (right)."""
    fig = Figure(figsize=(10, 4))
    ax, ax2 = fig.subplots(1, 2)
    top = 100 * ds.top.values
    order = np.argsort(top)
    top = top[order]

    def v(name: str) -> np.ndarray:
        return ds[name].values[order]

    ax.plot(top, v("dice_mean"), marker="o", label="matched sub-volumes")
    ax.fill_between(top, v("dice_mean") - v("dice_std"), v("dice_mean") + v("dice_std"), alpha=0.3)
    ax.plot(top, v("dice"), ls="--", label="whole box")
    ax.plot(top, v("random_mean"), color="k", label="random pairs")
    ax.fill_between(
        top,
        v("random_mean") - v("random_std"),
        v("random_mean") + v("random_std"),
        color="k",
        alpha=0.2,
    )
    ax.set_xlabel("top n% of voxels")
    ax.set_ylabel("Sorensen-Dice")
    ax.legend(fontsize=8)
    ax2.plot(top, v("normalized"), marker="o", label="normalized (eq. 10)")
    ax2.set_xlabel("top n% of voxels")
    ax2.set_ylabel("normalized")
    ax3 = ax2.twinx()
    ax3.plot(top, v("significance"), marker="s", color="C3", label="significance (eq. 11)")
    ax3.set_ylabel("significance", color="C3")
    ax2.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------- evaluation figures


def model_label(name: str) -> str:
    """The legend label of an evaluated field: ``painted``, ``truth`` or ``baseline: NAME``."""
    return name if name in ("painted", "truth") else f"baseline: {name}"


def _errorbar(ax, x: np.ndarray, y: np.ndarray, err: np.ndarray, label: str, **kw) -> None:
    ok = np.isfinite(x) & np.isfinite(y)
    e = np.where(np.isfinite(err), err, 0.0)
    ax.errorbar(x[ok], y[ok], yerr=e[ok], label=label, marker="o", ms=3, capsize=2, lw=1, **kw)


def plot_evaluation_spectra(ds: xr.Dataset, path: str | Path, *, kmax: float | None = None) -> Path:
    """P(k), T(k), r_c(k) and s(k) of the truth, painting and baselines with Gaussian errors.

    ``ds`` is one level of :attr:`bigpaint.stats.evaluate.Evaluation.spectra` (dimensions
    ``model`` and ``bin``); ``kmax`` (h/Mpc) is marked on every panel.
    """
    fig = Figure(figsize=(10, 7.5))
    axes = fig.subplots(2, 2, sharex=True)
    k = ds.k.values
    ax = axes[0, 0]
    _errorbar(ax, k, ds.P_true.values, ds.sigma_P_true.values, "truth", color="k")
    noise = ds.attrs.get("shot_noise_true")
    for m in ds.model.values:
        row = ds.sel(model=m)
        _errorbar(ax, k, row.P.values, row.sigma_P.values, model_label(str(m)))
    if isinstance(noise, (int, float)) and np.isfinite(noise):
        ax.axhline(noise, ls="--", color="grey", lw=0.8, label="truth shot noise")
        ax.plot(*_finite(k, ds.P_true.values - noise), ls="--", color="k", lw=0.8,
                label="truth - shot noise")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel(f"P(k) [{ds.P_true.attrs.get('units', '')}]")
    panels = (
        (axes[0, 1], "T", "T(k)", 1.0),
        (axes[1, 0], "r_c", "r_c(k)", 1.0),
        (axes[1, 1], "stochasticity", "s(k) = P_true (1 - r_c^2)", None),
    )
    for ax, var, title, ref in panels:
        for m in ds.model.values:
            row = ds.sel(model=m)
            _errorbar(ax, k, row[var].values, row[f"sigma_{var}"].values, model_label(str(m)))
        if ref is not None:
            ax.axhline(ref, color="k", lw=0.6)
        ax.set_xscale("log")
        units = ds[var].attrs.get("units", "1")
        ax.set_ylabel(title + (f" [{units}]" if units != "1" else ""))
    sax = axes[1, 1]
    if isinstance(noise, (int, float)) and np.isfinite(noise):
        sax.axhline(noise, ls="--", color="grey", lw=0.8, label="truth shot noise (floor)")
    sax.set_yscale("log")
    for ax in axes.ravel():
        if kmax is not None:
            ax.axvline(kmax, color="grey", ls=":", lw=0.8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("k [h/Mpc]")
    fig.suptitle(str(ds.attrs.get("title", "")), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_evaluation_bispectrum(
    ds: xr.Dataset, path: str | Path, *, tolerance: float | None = None
) -> Path:
    """B(theta) of the truth and models (Poisson terms removed) and B / B_true with errors.

    ``ds`` is one level of :attr:`bigpaint.stats.evaluate.Evaluation.bispectrum`;
    ``tolerance`` draws the band ``1 +- tolerance`` on the ratio panel.
    """
    fig = Figure(figsize=(6, 6))
    ax, axr = fig.subplots(2, 1, sharex=True)
    th = ds.theta.values
    _errorbar(ax, th, ds.B_true_corrected.values, ds.sigma_B_true.values,
              "truth (Poisson terms removed)", color="k")  # fmt: skip
    for m in ds.model.values:
        row = ds.sel(model=m)
        _errorbar(ax, th, row.B_corrected.values, row.sigma_B.values, model_label(str(m)))
        _errorbar(axr, th, row.ratio.values, row.sigma_ratio.values, model_label(str(m)))
    ax.set_ylabel(f"B [{ds.B_true.attrs.get('units', '')}]")
    ax.set_title(
        f"k1 = {ds.attrs.get('k1', float('nan')):.3g}, k2 = {ds.attrs.get('k2', float('nan')):.3g}"
        f" h/Mpc {ds.attrs.get('title', '')}",
        fontsize=9,
    )
    axr.axhline(1.0, color="k", lw=0.6)
    if tolerance is not None:
        axr.axhspan(1 - tolerance, 1 + tolerance, color="grey", alpha=0.2)
    axr.set_ylabel("B / B_true")
    axr.set_xlabel("theta [rad]")
    ax.legend(fontsize=7)
    axr.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_evaluation_pdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Counts-in-cells PDF per level: the truth against each model's prediction."""
    levels = [str(v) for v in ds.level.values]
    fig = Figure(figsize=(4 * len(levels), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(levels)))
    n = ds.n.values
    for ax, lev in zip(axes, levels, strict=True):
        sel = ds.sel(level=lev)
        ax.step(n, sel.pdf_true.values, where="mid", color="k", label="truth")
        for m in ds.model.values:
            ax.step(n, sel.pdf.sel(model=m).values, where="mid", label=model_label(str(m)))
        ax.set_yscale("log")
        ax.set_title(lev, fontsize=9)
        ax.set_xlabel("halos per cell")
        last = np.nonzero(sel.pdf_true.values)[0]
        if last.size:
            ax.set_xlim(-0.5, max(3, last[-1] + 1.5))
    axes[0].set_ylabel("share of cells")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_abundance(ds: xr.Dataset, path: str | Path, *, tolerance: float | None = None) -> Path:
    """N / N_true per level (mass bins, then the total) with the truth's Poisson errors."""
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots(1, 1)
    levels = [str(v) for v in ds.level.values]
    x = np.arange(len(levels), dtype=float)
    models = list(ds.model.values)
    for i, m in enumerate(models):
        off = (i - (len(models) - 1) / 2) * 0.12
        ax.errorbar(
            x + off,
            ds.abundance_ratio.sel(model=m).values,
            yerr=ds.sigma_abundance_ratio.sel(model=m).values,
            marker="o",
            ls="none",
            capsize=3,
            label=model_label(str(m)),
        )
    ax.axhline(1.0, color="k", lw=0.6)
    if tolerance is not None:
        ax.axhspan(1 - tolerance, 1 + tolerance, color="grey", alpha=0.2)
    ax.set_xticks(x)
    ax.set_xticklabels(levels)
    ax.set_ylabel("N / N_true")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
