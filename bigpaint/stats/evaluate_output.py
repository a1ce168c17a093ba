"""What an evaluation writes: tables, ``verdict.json`` and figures, in one directory.

=========================  ==============================================================
``verdict.json``           the verdict, every criterion, thresholds, settings, inputs and
                           headline numbers (strict JSON: undefined numbers are null)
``verdict.csv``            the criteria as a table
``levels.csv``             per mass bin and the total: abundance, k averages, ratios, PDF
                           distances (one column per model or baseline: ``name:model``)
``spectra_<level>.csv``    P, T, r_c, s, ``delta_r_c`` and their errors per k bin
``bispectrum_<level>.csv`` B, Poisson-corrected B and ``B / B_true`` per triangle
``pdf_<level>.csv``        counts-in-cells PDFs
``*.nc``                   the same four tables whole (netCDF, every level)
``spectra_<level>.png``,   the figures: painted, truth and baselines on the same axes
``bispectrum_<level>.png``,  with error bars
``pdf.png``,
``abundance.png``
=========================  ==============================================================

Levels are ``bin0``, ``bin1``, ... (mass bins) and ``total``. Files of these names are
replaced; nothing else in the directory is touched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import xarray as xr

from bigpaint.stats.plots import (
    level_title,
    plot_abundance,
    plot_evaluation_bispectrum,
    plot_evaluation_pdf,
    plot_evaluation_spectra,
)
from bigpaint.stats.tables import write_table

if TYPE_CHECKING:
    from bigpaint.stats.evaluate import Evaluation

__all__ = ["flatten", "write_evaluation"]


def flatten(ds: xr.Dataset, dim: str) -> xr.Dataset:
    """A one-dimensional table along ``dim``: a variable along ``(dim, other)`` becomes one
    column per label of ``other``, named ``name:label``."""
    out = {}
    for name, var in ds.data_vars.items():
        others = [d for d in var.dims if d != dim]
        if not others:
            out[name] = var
            continue
        (other,) = others
        for label in ds[other].values:
            out[f"{name}:{label}"] = var.sel({other: label}, drop=True)
    coords = {k: v for k, v in ds.coords.items() if v.dims == (dim,)}
    flat = xr.Dataset(out, coords=coords)
    flat.attrs.update(ds.attrs)
    return flat


def write_evaluation(ev: Evaluation, directory: Path) -> list[Path]:
    """Write everything of ``ev`` into ``directory`` (created); returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    verdict = directory / "verdict.json"
    verdict.write_text(json.dumps(ev.verdict_json(), indent=2) + "\n")
    paths.append(verdict)
    paths.append(write_table(ev.verdict.to_dataset(), directory / "verdict.csv"))
    paths.append(write_table(flatten(ev.levels, "level"), directory / "levels.csv"))
    tables = {
        "levels": ev.levels,
        "spectra": ev.spectra,
        "bispectrum": ev.bispectrum,
        "pdf": ev.pdf,
    }
    for name, ds in tables.items():
        paths.append(write_table(ds, directory / f"{name}.nc"))
    th = ev.config.thresholds
    for lev in (str(v) for v in ev.levels.level.values):
        title = level_title(ev.levels.attrs, lev)
        spec = ev.spectra.sel(level=lev)
        spec.attrs["shot_noise_true"] = float(ev.levels.shot_noise_true.sel(level=lev))
        spec.attrs["title"] = title
        paths.append(write_table(flatten(spec, "bin"), directory / f"spectra_{lev}.csv"))
        paths.append(
            plot_evaluation_spectra(spec, directory / f"spectra_{lev}.png", kmax=ev.config.kmax)
        )
        bisp = ev.bispectrum.sel(level=lev)
        bisp.attrs["title"] = title
        paths.append(write_table(flatten(bisp, "theta"), directory / f"bispectrum_{lev}.csv"))
        paths.append(
            plot_evaluation_bispectrum(
                bisp, directory / f"bispectrum_{lev}.png", tolerance=th.bispectrum
            )
        )
        paths.append(write_table(flatten(ev.pdf.sel(level=lev), "n"), directory / f"pdf_{lev}.csv"))
    paths.append(plot_evaluation_pdf(ev.pdf, directory / "pdf.png"))
    paths.append(plot_abundance(ev.levels, directory / "abundance.png", tolerance=th.abundance))
    return paths
