"""The verdict on a painting: each criterion PASS, FAIL or NOT JUDGED, against set thresholds.

:func:`judge` reads the tables :func:`bigpaint.stats.evaluate.evaluate` computes and applies
the :class:`Thresholds` (defaults below; docs/evaluate.md says where they come from):

=============================  ========================================================
``abundance``                  ``|N_painted / N_true - 1| <= 0.05`` in every mass bin
``transfer``                   mode-weighted mean of ``|T(k) - 1|`` over ``k <= kmax``
                               ``<= 0.05`` (the total)
``stochasticity vs linear``    ``sum N_k s_k / sum N_k s_linear,k <= 0.8`` (k <= kmax)
``stochasticity vs quadratic`` the same ratio against the ``quadratic`` baseline ``< 1``
``r_c every bin``              ``r_c >= r_c`` of the better baseline in every k bin, within
                               ``r_c_sigmas`` (1) times the error of the difference
``r_c mean``                   mode-weighted mean of ``r_c - r_c,better`` ``>= 0.02``
``bispectrum``                 ``|mean B / B_true - 1| <= 0.15``, the mean over the
                               triangles weighted by the truth's ``(B / sigma_B)^2``
                               (triangles are independent at Gaussian order)
=============================  ========================================================

The "better" baseline is the one with the highest mode-weighted mean ``r_c`` at ``k <=
kmax``. A criterion that compares with a baseline role (``linear``, ``quadratic``) is NOT
JUDGED when no baseline of that name was given, never PASS.

Error bars decide when the data cannot. A tolerance criterion (abundance, transfer,
bispectrum) whose 1-sigma error exceeds its tolerance cannot tell a pass from a fail: it is
NOT JUDGED, unless the value misses the tolerance by more than ``decisive_sigmas`` (2) errors,
which is a FAIL whatever the error. Otherwise a value is compared with its threshold as
measured. The overall verdict is FAIL when any criterion fails, PASS when all pass, and
INCOMPLETE otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LINEAR", "QUADRATIC", "Criterion", "Thresholds", "Verdict", "judge"]

#: Baseline names with a role in the verdict.
LINEAR = "linear"
QUADRATIC = "quadratic"

Status = Literal["PASS", "FAIL", "NOT JUDGED"]


class Thresholds(BaseModel):
    """What a painting must reach; every value dimensionless.

    Attributes
    ----------
    abundance : float
        Largest ``|N_painted / N_true - 1|`` in any mass bin.
    transfer : float
        Largest mode-weighted mean ``|T - 1|`` over ``k <= kmax``.
    stochasticity_linear : float
        Largest ratio of mode-weighted stochasticity to the ``linear`` baseline's.
    stochasticity_quadratic : float
        The ratio to the ``quadratic`` baseline's must be below this.
    r_c_gain : float
        Smallest mode-weighted mean ``r_c - r_c,better``.
    r_c_sigmas : float
        Errors of the difference ``r_c - r_c,better`` a k bin may fall short by.
    bispectrum : float
        Largest ``|B / B_true - 1|`` on any triangle.
    decisive_sigmas : float
        A tolerance missed by more than this many errors fails even when the error is
        larger than the tolerance.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    abundance: float = Field(0.05, gt=0)
    transfer: float = Field(0.05, gt=0)
    stochasticity_linear: float = Field(0.8, gt=0)
    stochasticity_quadratic: float = Field(1.0, gt=0)
    r_c_gain: float = 0.02
    r_c_sigmas: float = Field(1.0, ge=0)
    bispectrum: float = Field(0.15, gt=0)
    decisive_sigmas: float = Field(2.0, ge=0)


@dataclass(frozen=True)
class Criterion:
    """One judged criterion at one level (a mass bin or the total).

    Attributes
    ----------
    name : str
    level : str
        ``"bin0"``, ... or ``"total"``.
    status : {"PASS", "FAIL", "NOT JUDGED"}
    value, error : float
        The statistic and its 1-sigma error (NaN when undefined).
    threshold : str
        What the value is held against, e.g. ``"|x - 1| <= 0.05"``.
    detail : str
        Why, in words (the bin, the baseline, or what is missing).
    """

    name: str
    level: str
    status: Status
    value: float
    error: float
    threshold: str
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """Every criterion, and the overall verdict."""

    criteria: tuple[Criterion, ...]

    @property
    def overall(self) -> Literal["PASS", "FAIL", "INCOMPLETE"]:
        statuses = {c.status for c in self.criteria}
        if "FAIL" in statuses:
            return "FAIL"
        return "PASS" if statuses == {"PASS"} else "INCOMPLETE"

    def counts(self) -> dict[str, int]:
        return {
            s: sum(c.status == s for c in self.criteria) for s in ("PASS", "FAIL", "NOT JUDGED")
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN and infinities become None."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "verdict": self.overall,
            "counts": self.counts(),
            "criteria": [{k: clean(v) for k, v in asdict(c).items()} for c in self.criteria],
        }

    def to_dataset(self) -> xr.Dataset:
        """The criteria as a one-dimensional table (dimension ``criterion``)."""
        rows = self.criteria
        ds = xr.Dataset(
            {
                "name": ("criterion", [c.name for c in rows]),
                "level": ("criterion", [c.level for c in rows]),
                "status": ("criterion", [c.status for c in rows]),
                "value": ("criterion", np.array([c.value for c in rows], np.float64)),
                "error": ("criterion", np.array([c.error for c in rows], np.float64)),
                "threshold": ("criterion", [c.threshold for c in rows]),
                "detail": ("criterion", [c.detail for c in rows]),
            }
        )
        ds.attrs["verdict"] = self.overall
        return ds

    def table(self) -> str:
        """The criteria as aligned text, with the overall verdict last."""
        head = ("criterion", "level", "value", "threshold", "status")
        rows = [
            (c.name, c.level, _pm(c.value, c.error), c.threshold, c.status + _note(c))
            for c in self.criteria
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
                 for r in [head, *rows]]  # fmt: skip
        n = self.counts()
        lines.append(
            f"verdict: {self.overall} ({n['PASS']} passed, {n['FAIL']} failed, "
            f"{n['NOT JUDGED']} not judged)"
        )
        return "\n".join(lines)


def _pm(v: float, e: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.4g} ± {e:.2g}" if math.isfinite(e) else f"{v:.4g}"


def _note(c: Criterion) -> str:
    return f" ({c.detail})" if c.detail and c.status != "PASS" else ""


# ---------------------------------------------------------------- rules


def _tolerance(dev: float, sigma: float, tol: float, decisive: float) -> tuple[Status, str]:
    """``|x - 1| = dev`` against ``tol``, with the rule for errors larger than ``tol``."""
    if not math.isfinite(dev):
        return "NOT JUDGED", "undefined"
    if not math.isfinite(sigma) or sigma <= tol:
        return ("PASS", "") if dev <= tol else ("FAIL", "")
    if dev > tol + decisive * sigma:
        return "FAIL", f"off by more than {decisive:g} errors"
    return "NOT JUDGED", f"its error {sigma:.2g} exceeds the tolerance {tol:g}"


def _f(x: Any) -> float:
    return float(np.asarray(x))


def _abundance(levels: xr.Dataset, th: Thresholds) -> list[Criterion]:
    out = []
    for lev in levels.level.values:
        if lev == "total":
            continue
        row = levels.sel(level=lev, model="painted")
        ratio = _f(row.abundance_ratio)
        sigma = _f(row.sigma_abundance_ratio)
        status, why = _tolerance(abs(ratio - 1), sigma, th.abundance, th.decisive_sigmas)
        mass = f"[{_f(levels.m_lo.sel(level=lev)):.3g}, {_f(levels.m_hi.sel(level=lev)):.3g})"
        out.append(
            Criterion("abundance", str(lev), status, ratio, sigma,
                      f"|x - 1| <= {th.abundance:g}", f"mass {mass} Msun/h; {why}".rstrip("; "))
        )  # fmt: skip
    return out


def _transfer(levels: xr.Dataset, lev: str, th: Thresholds) -> Criterion:
    row = levels.sel(level=lev, model="painted")
    v, e = _f(row.mean_abs_T_minus_1), _f(row.sigma_mean_abs_T_minus_1)
    dev = v
    status, why = _tolerance(dev, e, th.transfer, th.decisive_sigmas)
    return Criterion("transfer", lev, status, v, e, f"mean |T - 1| <= {th.transfer:g}", why)


def _stochasticity(
    levels: xr.Dataset, lev: str, role: str, limit: float, strict: bool
) -> Criterion:
    name = f"stochasticity vs {role}"
    op = "<" if strict else "<="
    thr = f"s / s_{role} {op} {limit:g}"
    if role not in levels.baseline.values:
        return Criterion(name, lev, "NOT JUDGED", math.nan, math.nan, thr,
                         f"no baseline named {role!r}")  # fmt: skip
    row = levels.sel(level=lev, baseline=role)
    v, e = _f(row.stochasticity_ratio), _f(row.sigma_stochasticity_ratio)
    if not math.isfinite(v):
        return Criterion(name, lev, "NOT JUDGED", v, e, thr, "undefined")
    ok = v < limit if strict else v <= limit
    return Criterion(name, lev, "PASS" if ok else "FAIL", v, e, thr)


def _rc(levels: xr.Dataset, spectra: xr.Dataset, lev: str, th: Thresholds) -> list[Criterion]:
    thr_bin = f"r_c - r_c,better >= -{th.r_c_sigmas:g} sigma"
    thr_mean = f"mean r_c - r_c,better >= {th.r_c_gain:g}"
    if levels.sizes.get("baseline", 0) == 0:
        why = "no baseline given"
        return [
            Criterion("r_c every bin", lev, "NOT JUDGED", math.nan, math.nan, thr_bin, why),
            Criterion("r_c mean", lev, "NOT JUDGED", math.nan, math.nan, thr_mean, why),
        ]
    best = str(levels.best_baseline.sel(level=lev).values)
    if best == "":
        why = "no baseline has a defined r_c"
        return [
            Criterion("r_c every bin", lev, "NOT JUDGED", math.nan, math.nan, thr_bin, why),
            Criterion("r_c mean", lev, "NOT JUDGED", math.nan, math.nan, thr_mean, why),
        ]
    sel = spectra.sel(level=lev, baseline=best)
    use = spectra.in_verdict.values & np.isfinite(sel.delta_r_c.values)
    d = sel.delta_r_c.values[use]
    s = sel.sigma_delta_r_c.values[use]
    k = spectra.k.values[use]
    out = []
    if d.size == 0:
        out.append(Criterion("r_c every bin", lev, "NOT JUDGED", math.nan, math.nan, thr_bin,
                             "no k bin with a defined r_c"))  # fmt: skip
    else:
        margin = d + th.r_c_sigmas * s
        i = int(np.argmin(margin))
        status: Status = "PASS" if margin[i] >= 0 else "FAIL"
        out.append(Criterion("r_c every bin", lev, status, float(d[i]), float(s[i]), thr_bin,
                             f"worst bin k = {k[i]:.3g} h/Mpc vs baseline {best!r}"))  # fmt: skip
    row = levels.sel(level=lev, baseline=best)
    v, e = _f(row.delta_r_c_mean), _f(row.sigma_delta_r_c_mean)
    if not math.isfinite(v):
        out.append(Criterion("r_c mean", lev, "NOT JUDGED", v, e, thr_mean, "undefined"))
    else:
        status = "PASS" if v >= th.r_c_gain else "FAIL"
        out.append(Criterion("r_c mean", lev, status, v, e, thr_mean, f"vs baseline {best!r}"))
    return out


def _bispectrum(bisp: xr.Dataset, lev: str, th: Thresholds) -> Criterion:
    thr = f"|mean B / B_true - 1| <= {th.bispectrum:g}"
    row = bisp.sel(level=lev, model="painted")
    ratio, sigma = row.ratio.values, row.sigma_ratio.values
    true = bisp.sel(level=lev)
    snr2 = (true.B_true_corrected.values / true.sigma_B_true.values) ** 2
    theta = bisp.theta.values
    ok = np.isfinite(ratio) & np.isfinite(sigma) & np.isfinite(snr2) & (snr2 > 0)
    if not ok.any():
        return Criterion("bispectrum", lev, "NOT JUDGED", math.nan, math.nan, thr,
                         "no triangle with a defined B / B_true")  # fmt: skip
    # weights: the truth's signal-to-noise, which does not depend on the painting (weights
    # from the ratio's own error would favour the triangles where the painting is low)
    w = snr2[ok] / snr2[ok].sum()
    mean = float(np.sum(w * ratio[ok]))
    err = float(math.sqrt(np.sum((w * sigma[ok]) ** 2)))
    status, why = _tolerance(abs(mean - 1), err, th.bispectrum, th.decisive_sigmas)
    i = int(np.argmax(np.abs(ratio[ok] - 1) / sigma[ok]))
    k1, k2 = bisp.attrs.get("k1"), bisp.attrs.get("k2")
    detail = (
        f"mean of {int(ok.sum())} triangles weighted by the truth's (S/N)^2 (k1 = {k1:g}, k2 = {k2:g} h/Mpc); "
        f"farthest theta = {theta[ok][i]:.3g}: {ratio[ok][i]:.3g} +- {sigma[ok][i]:.2g}"
    )
    return Criterion("bispectrum", lev, status, mean, err, thr,
                     f"{detail}; {why}" if why else detail)  # fmt: skip


def judge(
    levels: xr.Dataset,
    spectra: xr.Dataset,
    bispectrum: xr.Dataset,
    thresholds: Thresholds | None = None,
    *,
    judge_levels: Sequence[str] = ("total",),
) -> Verdict:
    """Apply the thresholds to the tables of an evaluation.

    Parameters
    ----------
    levels, spectra, bispectrum : xarray.Dataset
        The tables of :class:`bigpaint.stats.evaluate.Evaluation`.
    thresholds : Thresholds, optional
        Default :class:`Thresholds`.
    judge_levels : sequence of str
        Levels whose spectra and bispectrum are judged (abundance is judged in every mass
        bin): ``("total",)`` by default.

    Returns
    -------
    Verdict
    """
    th = thresholds or Thresholds()
    criteria = _abundance(levels, th)
    for lev in judge_levels:
        criteria.append(_transfer(levels, lev, th))
        criteria.append(_stochasticity(levels, lev, LINEAR, th.stochasticity_linear, False))
        criteria.append(_stochasticity(levels, lev, QUADRATIC, th.stochasticity_quadratic, True))
        criteria.extend(_rc(levels, spectra, lev, th))
        criteria.append(_bispectrum(bispectrum, lev, th))
    return Verdict(tuple(criteria))
