"""PNG figures of the statistics: P(k) with ratio panels, T/r_c/stochasticity, B(theta), PDFs.

Figures are drawn with matplotlib's object API on an Agg canvas (``Figure`` +
``FigureCanvasAgg``), so no global backend is switched and nothing needs a display. Every
function takes the Datasets the statistics return (or a mapping ``label -> Dataset`` to
overlay several) and writes one PNG.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter

__all__ = [
    "level_title",
    "model_colors",
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
    if axr is not None and ratio_to:
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
#
# The figures of bigpaint.stats.evaluate share one vocabulary so that a reader can move
# between them: the labels of model_label, one colour per field in every figure (truth
# black), units on every axis, 1-sigma error bars, the verdict's kmax marked and the k
# range beyond it (coarser bins, drawn but not judged) shaded, and one legend per figure.

#: Colours of the fields with a role; other baselines take the next free colours.
_ROLE_COLORS = {"truth": "k", "painted": "C3", "linear": "C0", "quadratic": "C2"}
_MORE_COLORS = ("C1", "C4", "C5", "C6", "C8", "C9", "C7")


def model_label(name: str) -> str:
    """The legend label of an evaluated field: ``painted``, ``truth`` or ``baseline: NAME``."""
    return name if name in ("painted", "truth") else f"baseline: {name}"


def model_colors(names: Sequence[str]) -> dict[str, str]:
    """A matplotlib colour per field name: fixed for ``truth``, ``painted``, ``linear`` and
    ``quadratic``, the next free one for any other baseline (in the order given)."""
    extra = iter(_MORE_COLORS * (1 + len(names) // len(_MORE_COLORS)))
    return {str(n): _ROLE_COLORS.get(str(n)) or next(extra) for n in names}


def level_title(attrs: Mapping[str, Any], level: str) -> str:
    """``"bin1: halos of [2e+13, 8e+13) Msun/h"``, or ``"total: ..."``, from the mass bins an
    evaluation records in its tables' attributes (the level name alone when none are)."""
    edges: Any = attrs.get("mass_bins")  # JSON, or absent: a TypeError below
    try:
        edges = [float(e) for e in (json.loads(edges) if isinstance(edges, str) else edges)]
        if level == "total":
            chans: Any = attrs.get("total_channels")
            chans = [int(c) for c in (json.loads(chans) if isinstance(chans, str) else chans)]
            lo, hi = edges[chans[0]], edges[chans[-1] + 1]
        else:
            c = int(level.removeprefix("bin"))
            lo, hi = edges[c], edges[c + 1]
    except (TypeError, ValueError, IndexError, json.JSONDecodeError):
        return level
    return f"{level}: halos of [{lo:.3g}, {hi:.3g}) Msun/h"


def _errorbar(ax, x, y, err, label: str, color: str, xerr=None, **kw) -> None:
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return
    e = np.where(np.isfinite(err), err, 0.0)[ok]
    xe = None if xerr is None else xerr[:, ok]
    ax.errorbar(x[ok], y[ok], yerr=e, xerr=xe, label=label, color=color, marker="o", ms=3,
                capsize=2, lw=1, elinewidth=0.8, **kw)  # fmt: skip


def _figure_legend(fig: Figure, axes, ncol: int = 4) -> None:
    """One legend under the panels with every label once: the fields first (truth,
    painted, baselines), then the reference lines."""
    seen: dict[str, Any] = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)

    def rank(label: str) -> int:
        return {"truth": 0, "painted": 1}.get(label, 2 if label.startswith("baseline: ") else 3)

    labels = sorted(seen, key=rank)  # stable: appearance order within a rank
    fig.legend([seen[lab] for lab in labels], labels, loc="outside lower center", ncol=ncol,
               fontsize=8, frameon=False)  # fmt: skip


def _k_axis(ax, lo: float, hi: float) -> None:
    """A logarithmic k axis over ``[lo, hi]`` h/Mpc with plain-number ticks (0.05, 0.1, ...)."""
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = [m * 10.0**e for e in range(-4, 3) for m in (1, 2, 5)]
    ax.set_xticks([t for t in ticks if lo <= t <= hi])
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _k_range(ds: xr.Dataset) -> tuple[float, float]:
    """k_F and k_Nyq in h/Mpc from the box and grid an evaluation records (else the bins)."""
    box, grid = ds.attrs.get("box_size"), ds.attrs.get("grid")
    if isinstance(box, (int, float)) and isinstance(grid, (int, float, np.integer)):
        return 2 * np.pi / float(box), np.pi * float(grid) / float(box)
    return float(ds.k_lo.values[0]), float(ds.k_hi.values[-1])


def plot_evaluation_spectra(ds: xr.Dataset, path: str | Path, *, kmax: float | None = None) -> Path:
    """P(k), T(k), r_c(k) and s(k) of the truth, painting and baselines with Gaussian errors.

    ``ds`` is one level of :attr:`bigpaint.stats.evaluate.Evaluation.spectra` (dimensions
    ``model`` and ``bin``; attributes ``box_size`` in Mpc/h, ``grid``, ``title`` and
    ``shot_noise_true`` in (Mpc/h)^3). k runs from ``k_F`` to ``k_Nyq``; horizontal bars
    show each bin's extent, so the coarser bins beyond ``kmax`` (h/Mpc; marked, and shaded
    as not judged) read as such. The r_c panel draws ``sqrt(1 - N_true / P_true)`` and the s
    panel ``N_true``: the ceiling and floor of a perfect expectation for Poisson halos, or,
    with the noise measured against the matter (attribute ``matter`` set), what the best
    linear function of the matter reaches, which a painting can beat.
    """
    models = [str(m) for m in ds.model.values]
    colors = model_colors(["truth", *models])
    k, lo, hi = ds.k.values, ds.k_lo.values, ds.k_hi.values
    xerr = np.stack([k - lo, hi - k])
    kf, knyq = _k_range(ds)
    fig = Figure(figsize=(10, 8.4), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    noise = ds.attrs.get("shot_noise_true")
    has_noise = isinstance(noise, (int, float)) and np.isfinite(noise)
    if ds.attrs.get("matter"):
        noise_label = "truth noise N_t = P_tt - P_tm^2/P_mm"
        cap_label = "best linear function of the matter"
    else:
        noise_label = "truth shot noise V/N_true"
        cap_label = "perfect prediction (truth's shot noise caps r_c)"
    ax = axes[0, 0]
    _errorbar(ax, k, ds.P_true.values, ds.sigma_P_true.values, "truth", colors["truth"], xerr)
    for m in models:
        row = ds.sel(model=m)
        _errorbar(ax, k, row.P.values, row.sigma_P.values, model_label(m), colors[m], xerr)
    if has_noise:
        ax.axhline(noise, ls="--", color="grey", lw=0.8, label=noise_label)
        ax.plot(*_finite(k, ds.P_true.values - noise), ls="--", color="k", lw=0.8,
                label="truth minus its noise")  # fmt: skip
    ax.set_yscale("log")
    ax.set_title("power spectrum P(k)", fontsize=9)
    ax.set_ylabel(f"P(k) [{ds.P_true.attrs.get('units', '(Mpc/h)^3')}]")
    panels = (
        (axes[0, 1], "T", "transfer function T(k): 1 is right"),
        (axes[1, 0], "r_c", "cross-correlation r_c(k) with the truth: higher is better"),
        (
            axes[1, 1],
            "stochasticity",
            "stochasticity s(k) = P_true (1 - r_c^2): lower is better",
        ),
    )
    for ax, var, title in panels:
        for m in models:
            row = ds.sel(model=m)
            _errorbar(ax, k, row[var].values, row[f"sigma_{var}"].values, model_label(m),
                      colors[m], xerr)  # fmt: skip
        units = ds[var].attrs.get("units", "1")
        name = "s(k)" if var == "stochasticity" else f"{var}(k)"
        ax.set_ylabel(f"{name} [{'dimensionless' if units == '1' else units}]")
        ax.set_title(title, fontsize=9)
    axes[0, 1].axhline(1.0, color="k", lw=0.6, label="truth")
    if has_noise:
        with np.errstate(invalid="ignore", divide="ignore"):
            ceiling = np.sqrt(1 - noise / ds.P_true.values)
        axes[1, 0].plot(*_finite(k, ceiling), ls="-.", color="k", lw=0.8,
                        label=cap_label)  # fmt: skip
        axes[1, 1].axhline(noise, ls="--", color="grey", lw=0.8, label=noise_label)
    axes[1, 1].set_yscale("log")
    for ax in axes.ravel():
        _k_axis(ax, kf / 1.1, knyq * 1.1)
        if kmax is not None:
            ax.axvline(kmax, color="grey", ls=":", lw=1.0, label=f"verdict kmax = {kmax:g} h/Mpc")
            ax.axvspan(kmax, knyq * 1.1, color="grey", alpha=0.12, lw=0,
                       label="k > kmax: coarser bins, not judged")  # fmt: skip
    for ax in axes[1]:
        ax.set_xlabel("k [h/Mpc]")
    fig.suptitle(
        f"{ds.attrs.get('title', '')}\nk from k_F = {kf:.3g} to k_Nyq = {knyq:.3g} h/Mpc; "
        "horizontal bars: k bin widths, vertical bars: 1-sigma Gaussian errors",
        fontsize=9,
    )
    _figure_legend(fig, axes)
    return _save(fig, path)


#: A ratio panel spanning more than this switches to a scale linear within ``±_RATIO_LINEAR``.
_RATIO_SPAN = 8.0
_RATIO_LINEAR = 2.0


def _ratio_limits(r: np.ndarray, tolerance: float | None) -> tuple[float, float]:
    """y limits that show every ratio and the tolerance band; error bars may run off."""
    vals = r[np.isfinite(r)]
    lo = min([1 - (tolerance or 0.1), *vals.tolist()])
    hi = max([1 + (tolerance or 0.1), *vals.tolist()])
    pad = 0.08 * (hi - lo)
    return lo - pad, hi + pad


def plot_evaluation_bispectrum(
    ds: xr.Dataset, path: str | Path, *, tolerance: float | None = None
) -> Path:
    """B(theta) of the truth and models (noise terms removed) and B / B_true with errors.

    ``ds`` is one level of :attr:`bigpaint.stats.evaluate.Evaluation.bispectrum`;
    ``tolerance`` draws the verdict's band ``1 +- tolerance`` on the ratio panel, whose y
    range shows every ratio (error bars of triangles where ``B_true`` is near 0 run off it).
    """
    models = [str(m) for m in ds.model.values]
    colors = model_colors(["truth", *models])
    fig = Figure(figsize=(7, 7.4), layout="constrained")
    ax, axr = fig.subplots(2, 1, sharex=True)
    th = ds.theta.values
    _errorbar(ax, th, ds.B_true_corrected.values, ds.sigma_B_true.values, "truth", colors["truth"])
    for m in models:
        row = ds.sel(model=m)
        _errorbar(ax, th, row.B_corrected.values, row.sigma_B.values, model_label(m), colors[m])
        _errorbar(axr, th, row.ratio.values, row.sigma_ratio.values, model_label(m), colors[m])
    ax.axhline(0.0, color="k", lw=0.4)
    ax.set_ylabel(f"B, noise terms removed [{ds.B_true.attrs.get('units', '(Mpc/h)^6')}]")
    ax.set_title("bispectrum B(k1, k2, theta)", fontsize=9)
    axr.axhline(1.0, color="k", lw=0.6, label="truth")
    if tolerance is not None:
        axr.axhspan(1 - tolerance, 1 + tolerance, color="grey", alpha=0.2,
                    label=f"verdict tolerance 1 ± {tolerance:g}")  # fmt: skip
    lo, hi = _ratio_limits(ds.ratio.values, tolerance)
    axr.set_ylim(lo, hi)
    scale = ""
    if hi - lo > _RATIO_SPAN:  # a triangle with B_true near 0: keep the band near 1 readable
        axr.set_yscale("symlog", linthresh=_RATIO_LINEAR)
        axr.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        scale = f", logarithmic beyond ±{_RATIO_LINEAR:g}"
    axr.set_ylabel(f"B / B_true [dimensionless{scale}]")
    axr.set_title("ratio to the truth: 1 is right", fontsize=9)
    axr.set_xlabel("theta, the angle between k1 and k2 [rad]")
    width = ds.attrs.get("shell_width")
    shells = f", shells {width:.3g} h/Mpc wide" if isinstance(width, (int, float)) else ""
    fig.suptitle(
        f"{ds.attrs.get('title', '')}\nk1 = {ds.attrs.get('k1', float('nan')):.3g}, k2 = "
        f"{ds.attrs.get('k2', float('nan')):.3g} h/Mpc{shells}; 1-sigma Gaussian errors",
        fontsize=9,
    )
    _figure_legend(fig, (ax, axr), ncol=3)
    return _save(fig, path)


def plot_evaluation_pdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Counts-in-cells PDF per level: the truth (points) against each model's prediction.

    The truth's error bars are the counting errors ``sqrt(p (1 - p) / N_cells)`` of the
    share ``p`` of ``N_cells`` cells, cells taken as independent: a lower bound, since
    neighbouring cells are correlated. The y axis stops at a tenth of one cell.
    """
    levels = [str(v) for v in ds.level.values]
    models = [str(m) for m in ds.model.values]
    colors = model_colors(["truth", *models])
    grid: Any = ds.attrs.get("grid")
    box: Any = ds.attrs.get("box_size")
    cells = float(grid) ** 3 if isinstance(grid, (int, float, np.integer)) else math.nan
    cell = f" {float(box) / float(grid):.3g} Mpc/h" if math.isfinite(cells) else ""
    fig = Figure(figsize=(4 * len(levels), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(levels), sharey=True))
    n = ds.n.values
    for ax, lev in zip(axes, levels, strict=True):
        sel = ds.sel(level=lev)
        p = sel.pdf_true.values
        seen = p > 0
        err = np.sqrt(p * (1 - p) / cells) if math.isfinite(cells) else np.zeros_like(p)
        ax.errorbar(n[seen], p[seen], yerr=err[seen], color=colors["truth"], marker="o", ms=4,
                    ls="none", capsize=2, label="truth")  # fmt: skip
        for m in models:
            ax.step(n, sel.pdf.sel(model=m).values, where="mid", color=colors[m],
                    label=model_label(m))  # fmt: skip
        ax.set_yscale("log")
        if math.isfinite(cells):
            ax.set_ylim(0.1 / cells, 1.5)
        ax.set_title(level_title(ds.attrs, lev), fontsize=9)
        ax.set_xlabel(f"n [halos per{cell} cell]")
        last = np.nonzero(p)[0]
        if last.size:
            ax.set_xlim(-0.5, max(3, last[-1] + 1.5))
    axes[0].set_ylabel("share of cells [dimensionless]")
    fig.suptitle(
        "counts-in-cells PDF: the truth's histogram against each model's prediction "
        f"(the last n, {ds.attrs.get('overflow_from', n[-1])}, counts that many or more)\n"
        "truth's error bars: counting errors with cells taken as independent (a lower bound)",
        fontsize=9,
    )
    _figure_legend(fig, axes[:1], ncol=len(models) + 1)
    return _save(fig, path)


def plot_abundance(ds: xr.Dataset, path: str | Path, *, tolerance: float | None = None) -> Path:
    """N / N_true per level (mass bins, then the total) with the truth's Poisson errors.

    ``ds`` is :attr:`bigpaint.stats.evaluate.Evaluation.levels` (coordinates ``m_lo`` and
    ``m_hi`` in Msun/h label the mass bins); ``tolerance`` draws the verdict's band.
    """
    models = [str(m) for m in ds.model.values]
    colors = model_colors(models)
    fig = Figure(figsize=(7, 4.6), layout="constrained")
    ax = fig.subplots(1, 1)
    levels = [str(v) for v in ds.level.values]
    x = np.arange(len(levels), dtype=float)
    for i, m in enumerate(models):
        off = (i - (len(models) - 1) / 2) * 0.12
        ax.errorbar(x + off, ds.abundance_ratio.sel(model=m).values,
                    yerr=ds.sigma_abundance_ratio.sel(model=m).values, marker="o", ls="none",
                    capsize=3, color=colors[m], label=model_label(m))  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.6, label="truth")
    if tolerance is not None:
        ax.axhspan(1 - tolerance, 1 + tolerance, color="grey", alpha=0.2,
                   label=f"verdict tolerance 1 ± {tolerance:g}")  # fmt: skip
    ax.set_xticks(x)
    if "m_lo" in ds.coords and "m_hi" in ds.coords:
        ticks = [f"{lev}\n[{lo:.2g}, {hi:.2g})" for lev, lo, hi
                 in zip(levels, ds.m_lo.values, ds.m_hi.values, strict=True)]  # fmt: skip
        ax.set_xlabel("mass bin [Msun/h]")
    else:
        ticks = levels
    ax.set_xticklabels(ticks, fontsize=8)
    ax.set_ylabel("N / N_true [dimensionless]")
    ax.set_title(
        "abundance: halos in the model / halos in the truth, 1 is right\n"
        "(errors: Poisson of the truth, ratio / sqrt(N_true))",
        fontsize=9,
    )
    _figure_legend(fig, [ax], ncol=3)
    return _save(fig, path)
