"""Judge a painted halo field against the true halo counts and against baseline paintings.

``evaluate(painted, truth, baselines={"linear": ..., "quadratic": ...})`` compares halo-count
Fields (one channel per mass bin) per mass bin and for the total, and returns an
:class:`Evaluation`: four tables (xarray Datasets) and a :class:`~bigpaint.stats.verdict.Verdict`.

* ``levels``: per mass bin and the total, the abundance ratio ``N_painted / N_true`` with its
  Poisson error ``ratio / sqrt(N_true)`` (a painting is an expectation; the truth a Poisson
  draw), k averages over ``k <= kmax`` (mode-weighted: the weights are the inverse variances
  of spectra of Gaussian fields) of ``|T - 1|``, ``r_c``, the stochasticity ratio to each
  baseline and ``r_c - r_c,baseline``, and the total-variation distance of the counts PDF.
* ``spectra``: P, T(k), r_c(k), s(k) of every model and ``r_c - r_c,baseline`` per k bin,
  with Gaussian errors; fine bins (width ``dk``, default ``k_F``) up to ``kmax`` for the
  verdict, then ``coarse_bins`` logarithmic bins to ``k_Nyq`` for the figures.
* ``bispectrum``: ``B(k1, k2, theta)`` and ``B / B_true`` with noise terms removed.
* ``pdf``: counts in cells, truth against prediction.

The statistics and their shot-noise treatment are in :mod:`bigpaint.stats.comparison`, the
error model in :mod:`bigpaint.stats.gaussian_errors`, the verdict in
:mod:`bigpaint.stats.verdict`; docs/evaluate.md explains them for users.

Inputs are checked before any data is read (:mod:`bigpaint.stats.evaluate_inputs`). No window
is compensated, and each Field's record is reported. The one pass over the data then refuses
NaN/inf, a truth that is not non-negative integers, and a mass bin in which the truth has no
halos (exclude it with ``exclude_bins``).

The truth's noise. Given the simulation's matter (``matter=``), it is measured
(:mod:`bigpaint.stats.truth_noise`); otherwise it is taken as Poisson, ``V / N_true``, which
understates the clustering of halos, whose noise is sub-Poisson on large scales.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from bigpaint.errors import ConfigError, MetadataError, NonFiniteError
from bigpaint.stats.comparison import (
    PAINTED,
    TRUTH,
    Level,
    bispectrum_table,
    pdf_table,
    spectra_tables,
)
from bigpaint.stats.evaluate_config import DEFAULT_THETA, EvaluateConfig
from bigpaint.stats.evaluate_inputs import Source, check_inputs, k_nyquist, open_matter
from bigpaint.stats.truth_noise import truth_noise
from bigpaint.stats.verdict import Verdict, judge

__all__ = ["DEFAULT_THETA", "EvaluateConfig", "Evaluation", "check_inputs", "evaluate"]

WHERE = "evaluate"
logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- the scan


def _levels(edges: np.ndarray, cfg: EvaluateConfig) -> list[Level]:
    chans = [c for c in range(len(edges) - 1) if c not in cfg.exclude_bins]
    levels = [Level(f"bin{c}", (c,), float(edges[c]), float(edges[c + 1])) for c in chans]
    total = tuple(c for c in chans if c >= cfg.total_from)
    levels.append(Level("total", total, float(edges[total[0]]), float(edges[total[-1] + 1])))
    return levels


_SCAN_KEYS = ("sum", "min", "max", "nonint", "nonfinite")


def _block_scan(block: np.ndarray) -> np.ndarray:
    """Per channel of a 4-D block: sum, min, max, non-integer and non-finite cells."""
    v = np.asarray(block, np.float64).reshape(block.shape[0], -1)
    finite = np.isfinite(v)
    out = np.empty((block.shape[0], 1, 1, 1, len(_SCAN_KEYS)))
    out[:, 0, 0, 0, 0] = np.where(finite, v, 0).sum(axis=1)
    out[:, 0, 0, 0, 1] = np.where(finite, v, np.inf).min(axis=1)
    out[:, 0, 0, 0, 2] = np.where(finite, v, -np.inf).max(axis=1)
    out[:, 0, 0, 0, 3] = (finite & (v != np.floor(np.where(finite, v, 0)))).sum(axis=1)
    out[:, 0, 0, 0, 4] = (~finite).sum(axis=1)
    return out


def _scan(sources: Sequence[Source], channels: Sequence[int]) -> dict[str, dict[str, np.ndarray]]:
    """Per Field and channel: sum, min, max, non-integer and non-finite cells.

    One task per block returns a few numbers per channel; the client combines them.
    """
    lazy = [
        da.map_blocks(
            _block_scan,
            s.data,
            chunks=(
                s.data.chunks[0],
                *((1,) * g for g in s.data.numblocks[1:]),
                (len(_SCAN_KEYS),),
            ),
            new_axis=4,
            dtype=np.float64,
            meta=np.array((), np.float64),
        )
        for s in sources
    ]
    done = dask.compute(*lazy)
    out = {}
    for s, per_block in zip(sources, done, strict=True):
        flat = per_block.reshape(per_block.shape[0], -1, len(_SCAN_KEYS))[list(channels)]
        out[s.name] = {
            "sum": flat[..., 0].sum(axis=1),
            "min": flat[..., 1].min(axis=1),
            "max": flat[..., 2].max(axis=1),
            "nonint": flat[..., 3].sum(axis=1),
            "nonfinite": flat[..., 4].sum(axis=1),
        }
    return out


def _validate_scan(
    sources: Sequence[Source], scan: Mapping[str, Mapping[str, np.ndarray]],
    channels: Sequence[int], cfg: EvaluateConfig,
) -> dict[str, bool]:  # fmt: skip
    """Refuse bad values; decide which models are Poisson draws."""
    edges = sources[0].edges
    for s in sources:
        bad = scan[s.name]["nonfinite"]
        if bad.any():
            c = channels[int(np.argmax(bad > 0))]
            raise NonFiniteError(
                f"{WHERE}: {s.name} ({s.label}) holds {int(bad.sum())} NaN/inf values (mass bin "
                f"{c}); clean the field first"
            )
    t = scan[TRUTH]
    if t["nonint"].any() or (t["min"] < 0).any():
        raise MetadataError(
            f"{WHERE}: truth ({sources[0].label}) holds values that are not non-negative integers "
            f"(smallest {t['min'].min():g}); give NGP halo counts as the truth"
        )
    for i, c in enumerate(channels):
        if t["sum"][i] == 0:
            raise ConfigError(
                f"{WHERE}: the truth has no halos in mass bin {c} [{edges[c]:.3g}, "
                f"{edges[c + 1]:.3g}) Msun/h, so nothing can be judged there; leave it out with "
                f"--exclude-bin {c} (exclude_bins)"
            )
    sampled = {TRUTH: True}
    for s in sources[1:]:
        integer = not scan[s.name]["nonint"].any() and bool((scan[s.name]["min"] >= 0).all())
        if cfg.noise == "poisson" and not integer:
            raise MetadataError(
                f"{WHERE}: noise 'poisson' was given but {s.name} ({s.label}) holds non-integer "
                "or negative values, so it is not a Poisson draw; use noise 'auto'"
            )
        sampled[s.name] = integer if cfg.noise == "auto" else cfg.noise == "poisson"
    return sampled


def _edges(n: int, box: float, cfg: EvaluateConfig) -> np.ndarray:
    from bigpaint.stats.bins import kbins

    kf = 2 * math.pi / box
    count = max(1, round((cfg.kmax - kf) / (cfg.dk or kf)))  # kmax is an edge: no sliver bin
    fine = kbins(box, n, kmin=kf, kmax=cfg.kmax, nbins=count)
    if cfg.coarse_bins == 0:
        return fine
    coarse = np.geomspace(cfg.kmax, k_nyquist(n, box), cfg.coarse_bins + 1)[1:]
    return np.concatenate([fine, coarse])


# ---------------------------------------------------------------- result


@dataclass(frozen=True)
class Evaluation:
    """The tables and verdict of :func:`evaluate`.

    Attributes
    ----------
    levels : xarray.Dataset
        Per mass bin and the total (dimension ``level``; ``model``, ``baseline``): abundance,
        k averages, stochasticity ratios, PDF distances.
    spectra : xarray.Dataset
        Per level, model and k bin: P, T, r_c, s and ``delta_r_c`` with ``sigma_*`` errors.
    bispectrum : xarray.Dataset
        Per level, model and triangle: B, Poisson-corrected B and ``ratio`` to the truth.
    pdf : xarray.Dataset
        Counts-in-cells PDFs per level.
    verdict : Verdict
    config : EvaluateConfig
    inputs : dict
        Field name (``truth``, ``painted``, baselines) to its path.
    """

    levels: xr.Dataset
    spectra: xr.Dataset
    bispectrum: xr.Dataset
    pdf: xr.Dataset
    verdict: Verdict
    config: EvaluateConfig
    inputs: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Headline numbers of the total (and abundance per bin), for reports."""
        lv = self.levels
        tot = lv.sel(level="total")
        out: dict[str, Any] = {"verdict": self.verdict.overall}
        for lev in lv.level.values:
            if lev != "total":
                out[f"abundance ratio {lev}"] = float(
                    lv.abundance_ratio.sel(level=lev, model=PAINTED)
                )
        out["abundance ratio total"] = float(tot.abundance_ratio.sel(model=PAINTED))
        k = self.config.kmax
        out[f"mean |T-1| (k <= {k:g})"] = float(tot.mean_abs_T_minus_1.sel(model=PAINTED))
        out[f"mean r_c (k <= {k:g})"] = float(tot.mean_r_c.sel(model=PAINTED))
        for b in lv.baseline.values:
            out[f"s / s_{b}"] = float(tot.stochasticity_ratio.sel(baseline=b))
        bisp = next(
            (c for c in self.verdict.criteria if c.name == "bispectrum" and c.level == "total"),
            None,
        )
        out["mean B/B_true"] = math.nan if bisp is None else bisp.value
        out["sigma mean B/B_true"] = math.nan if bisp is None else bisp.error
        return out

    def verdict_json(self) -> dict[str, Any]:
        """What ``verdict.json`` holds: the verdict, thresholds, settings and inputs."""
        return {
            **self.verdict.to_dict(),
            "settings": json.loads(self.config.model_dump_json()),
            "inputs": self.inputs,
            "shot_noise": self.levels.attrs.get("shot_noise_treatment", ""),
            "summary": {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                        for k, v in self.summary().items()},
        }  # fmt: skip

    def write(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write the tables (CSV per level, netCDF whole), ``verdict.json`` and PNG figures.

        Returns the paths written.
        """
        from bigpaint.stats.evaluate_output import write_evaluation

        return write_evaluation(self, Path(directory))


def evaluate(
    painted: Any,
    truth: Any,
    baselines: Mapping[str, Any] | None = None,
    *,
    matter: Any = None,
    config: EvaluateConfig | Mapping[str, Any] | None = None,
    **settings: Any,
) -> Evaluation:
    """Judge a painted halo-count Field against the truth and baseline paintings.

    Parameters
    ----------
    painted : Field path or opened Field
        Expected halo counts per cell (what painters output), one channel per mass bin.
    truth : Field path or opened Field
        Integer NGP halo counts from the simulation, the same mass bins.
    baselines : mapping of name to Field, optional
        Baseline paintings like ``painted``; the names ``linear`` and ``quadratic`` have
        roles in the verdict (:mod:`bigpaint.stats.verdict`).
    matter : Field path or opened Field, optional
        The matter density (or contrast) of the truth's simulation on the same grid. Given,
        the truth's noise is measured against it (:mod:`bigpaint.stats.truth_noise`) rather
        than assumed Poisson, ``V / N_true``; halos are not Poisson tracers, so judge with it
        whenever the simulation's matter is at hand.
    config : EvaluateConfig or mapping, optional
        Settings and thresholds.
    **settings
        Fields of :class:`EvaluateConfig` that replace those of ``config`` (e.g. ``kmax=0.1``).

    Returns
    -------
    Evaluation

    Raises
    ------
    MetadataError, ShapeError, ConfigError, NonFiniteError
        Fields that disagree (kind, grid, box, redshift, mass bins), a truth that is not NGP
        integer counts or has no halos in a bin, NaN/inf, bad settings.
    """
    from bigpaint.config import parse_config

    base = config.model_dump() if isinstance(config, EvaluateConfig) else dict(config or {})
    cfg = parse_config(EvaluateConfig, {**base, **settings}, WHERE)
    sources = check_inputs(painted, truth, baselines, cfg, matter)
    t = sources[0]
    n, box = t.shape[0], float(t.meta.box_size[0])
    vol = box**3
    levels = _levels(t.edges, cfg)
    channels = sorted({c for lev in levels for c in lev.channels})
    scan = _scan(sources, channels)
    sampled = _validate_scan(sources, scan, channels, cfg)
    pos = {c: i for i, c in enumerate(channels)}

    def per_level(name: str, key: str) -> np.ndarray:
        vals = scan[name][key]
        return np.array([sum(vals[pos[c]] for c in lev.channels) for lev in levels])

    totals = {s.name: per_level(s.name, "sum") for s in sources}
    cells = float(n) ** 3
    means = {k: v / cells for k, v in totals.items()}
    with np.errstate(divide="ignore"):
        noise = {k: (vol / v if sampled[k] else np.zeros_like(v)) for k, v in totals.items()}
    fields = {s.name: s.data for s in sources}
    edges = _edges(n, box, cfg)
    poisson = noise[TRUTH].copy()
    sigma_noise = np.zeros_like(poisson)
    if matter is None:
        logger.warning(
            "evaluate: no matter Field given, so the truth's shot noise is taken as Poisson "
            "(V/N); halos are less noisy than that, which biases T and the bispectrum; give "
            "the simulation's matter density (--matter, matter=) to measure it"
        )
    else:
        noise[TRUTH], sigma_noise = truth_noise(
            t.data, open_matter(matter, t), levels, means, box, edges, cfg.kmax
        )
    spectra, averages = spectra_tables(fields, levels, means, noise, box, edges, cfg.kmax)
    bisp = bispectrum_table(fields, levels, means, noise, spectra, box, cfg.k1, cfg.k2, cfg.theta,
                            cfg.shell_width)  # fmt: skip
    pdf, extras = pdf_table(fields, levels, sampled, {k: per_level(k, "max") for k in totals})
    models = [s.name for s in sources[1:]]
    n_true = totals[TRUTH]
    n_mod = np.stack([totals[m] for m in models], axis=1)
    ratio = n_mod / n_true[:, None]
    lv = xr.Dataset(
        {
            "N_true": ("level", n_true, {"units": "halos", "long_name": "halos in the truth"}),
            "N": (("level", "model"), n_mod, {"units": "halos", "long_name": "halos in the model (sum of expectations)"}),
            "abundance_ratio": (("level", "model"), ratio, {"units": "1", "long_name": "N / N_true"}),
            "sigma_abundance_ratio": (("level", "model"), ratio / np.sqrt(n_true)[:, None], {"units": "1", "long_name": "Poisson error of the truth: ratio / sqrt(N_true)"}),
            "shot_noise_true": ("level", noise[TRUTH], {"units": "(Mpc/h)^3", "long_name": "noise power removed from the truth: " + ("P_tt - P_tm^2 / P_mm, k <= kmax" if matter is not None else "V / N_true (Poisson)")}),
            "sigma_shot_noise_true": ("level", sigma_noise, {"units": "(Mpc/h)^3", "long_name": "Gaussian error of shot_noise_true (0: assumed, not measured)"}),
            "poisson_noise_true": ("level", poisson, {"units": "(Mpc/h)^3", "long_name": "V / N_true"}),
            **{k: v.assign_attrs(units="1") for k, v in averages.items()},
            **{k: v.assign_attrs(units="1") for k, v in extras.items()},
        },
        coords={
            "level": [lev.name for lev in levels],
            "m_lo": ("level", [lev.m_lo for lev in levels], {"units": "Msun/h"}),
            "m_hi": ("level", [lev.m_hi for lev in levels], {"units": "Msun/h"}),
            "model": models,
            "baseline": models[1:],
        },
    )  # fmt: skip
    lv["stochasticity_ratio"].attrs["long_name"] = "sum N_k s_k / sum N_k s_baseline,k, k <= kmax"
    mean_rc = lv.mean_r_c.values[:, 1:]
    best = [
        str(models[1 + int(np.nanargmax(row))]) if np.isfinite(row).any() else "" for row in mean_rc
    ]
    lv["best_baseline"] = ("level", np.array(best, dtype=str))
    attrs = _attrs(sources, sampled, levels, cfg, box, n, matter)
    for ds in (lv, spectra, bisp, pdf):
        ds.attrs.update(attrs)
    judged = ["total"] if cfg.judge == "total" else [lev.name for lev in levels]
    verdict = judge(lv, spectra, bisp, cfg.thresholds, judge_levels=judged)
    labels = {s.name: s.label for s in sources}
    if matter is not None:
        labels["matter"] = _label(matter)
    return Evaluation(lv, spectra, bisp, pdf, verdict, cfg, labels)


def _label(obj: Any) -> str:
    if obj is None:
        return ""
    if isinstance(obj, (str, os.PathLike)):
        return str(obj)
    return str(getattr(obj, "encoding", {}).get("bigpaint_url", "an opened Field"))


def shot_noise_text(measured: bool) -> str:
    """How the evaluation treats shot noise, for the tables' attributes and the report."""
    truth = (
        "truth: noise N_t measured against the simulation's matter, P_tt - P_tm^2/P_mm "
        "averaged over k <= kmax (halos are not Poisson tracers)"
        if measured
        else "truth: Poisson draw, noise N_t = V/N_true (white: NGP counts, no window "
        "compensated; halos are not exactly Poisson: give the matter to measure it)"
    )
    return (
        f"{truth}; T = sqrt((P - N_model)/(P_true - N_t)); r_c = P_cross/sqrt((P - N_model) "
        "P_true) and s = P_true (1 - r_c^2) keep the truth's noise; N_model = V/N for "
        "Poisson-sampled models, 0 for expectations; bispectrum: noise terms "
        "(P1+P2+P3) N + N^2 (shell powers noise-free) removed from the truth (N = N_t) and "
        "sampled models (N = V/N)"
    )


def _attrs(
    sources: Sequence[Source], sampled: Mapping[str, bool], levels: Sequence[Level],
    cfg: EvaluateConfig, box: float, n: int, matter: Any,
) -> dict[str, Any]:  # fmt: skip
    total = next(lev for lev in levels if lev.name == "total")
    return {
        "statistic": "evaluation of a painted halo field",
        "box_size": box,
        "box_size_units": "Mpc/h",
        "grid": n,
        "kmax": cfg.kmax,
        "kmax_units": "h/Mpc",
        "mass_bins": [float(e) for e in sources[0].edges],
        "mass_units": "Msun/h",
        "total_channels": [int(c) for c in total.channels],
        "excluded_channels": [int(c) for c in cfg.exclude_bins],
        "fields": json.dumps({s.name: s.label for s in sources}),
        "noise": json.dumps({s.name: ("poisson" if sampled[s.name] else "expectation") for s in sources}),
        "mass_assignment": json.dumps({s.name: s.window for s in sources}),
        "compensation": "none (all fields compared on the grid as stored)",
        "shot_noise_treatment": shot_noise_text(matter is not None),
        "matter": _label(matter),
        "errors": "Gaussian, linear propagation of Cov(P_ab, P_cd) = (P_ad P_bc + P_ac P_bd)/(2 N_eff); "
        "abundance: Poisson of the truth",
    }  # fmt: skip
