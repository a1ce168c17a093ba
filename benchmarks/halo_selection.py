"""Choosing a halo-painter snapshot by its verdict on several selection boxes.

One 256 Mpc/h box measures the figures the selection decides on about as precisely as the
candidates differ: the bispectrum mean to 0.05-0.08, the stochasticity ratio to 0.02, the
r_c gain to 0.003. So every candidate is judged on each selection box
(:func:`bigpaint.stats.evaluate.evaluate`, the truth's noise measured against its matter),
and each criterion of the total (and the abundance of each mass bin) is pooled over the
boxes as an inverse-variance mean: independent volumes, so the pooled error shrinks as
one over the square root of the boxes.

The choice is the candidate most likely to pass the verdict on a box it never saw
(:func:`pass_probability`): per criterion, the chance that a new box's value meets the
default threshold (:class:`bigpaint.stats.verdict.Thresholds`), for a normal spread around the
mean over the selection boxes whose width is the larger of the typical error and the scatter
between the boxes (two bigpaint boxes of this size differ by more than their Gaussian errors
in some figures: 0.08 in the stochasticity ratio against errors of 0.02); the criteria taken
as independent. Unlike "passes as pooled, then the lowest stochasticity", this weighs how far
inside each threshold a candidate sits: one that passes the transfer criterion by 0.002 on
the pooled boxes fails it on about half of new boxes. Ties go to the lower :func:`score`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import norm

from bigpaint.stats.verdict import Thresholds

Pooled = dict[str, dict[str, float]]


def criteria(verdict: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """``{"name [level]": (value, error)}`` of a ``verdict.json``-like dict."""
    return {
        f"{c['name']} [{c['level']}]": (c["value"], c["error"])
        for c in verdict["criteria"]
        if c["value"] is not None and c["error"] is not None
    }


def pool(verdicts: Sequence[Mapping[str, Any]]) -> Pooled:
    """Each criterion pooled over the boxes: inverse-variance mean, its error, box count."""
    per_box = [criteria(v) for v in verdicts]
    out: Pooled = {}
    for key in per_box[0]:
        vals = [b[key] for b in per_box if key in b and b[key][1] > 0 and np.isfinite(b[key][0])]
        if not vals:
            continue
        w = np.array([1 / e**2 for _, e in vals])
        x = np.array([v for v, _ in vals])
        out[key] = {
            "value": float(w @ x / w.sum()),
            "error": float(w.sum() ** -0.5),
            "boxes": len(vals),
        }
    return out


def score(pooled: Pooled, th: Thresholds | None = None) -> float:
    """Lower is better: the pooled stochasticity over the linear baseline's, plus each
    tolerance criterion's excess over its threshold and the r_c gain's shortfall."""
    th = th or Thresholds()

    def get(key: str) -> float:
        return pooled[key]["value"] if key in pooled else float("nan")

    s = get("stochasticity vs linear [total]")
    excess = [
        get("transfer [total]") - th.transfer,
        abs(get("bispectrum [total]") - 1) - th.bispectrum,
        th.r_c_gain - get("r_c mean [total]"),
        *(abs(c["value"] - 1) - th.abundance
          for k, c in pooled.items() if k.startswith("abundance ")),
    ]  # fmt: skip
    return float(s + sum(max(0.0, x) for x in excess if np.isfinite(x)))


def pass_probability(
    verdicts: Sequence[Mapping[str, Any]], th: Thresholds | None = None
) -> tuple[float, dict[str, float]]:
    """The chance that a new box passes every criterion, and per criterion (see above)."""
    th = th or Thresholds()
    per_box = [criteria(v) for v in verdicts]
    parts: dict[str, float] = {}
    for key in per_box[0]:
        vals = np.array([b[key][0] for b in per_box if key in b])
        errs = np.array([b[key][1] for b in per_box if key in b])
        if not np.isfinite(vals).all() or not np.isfinite(errs).all():
            parts[key] = 0.0
            continue
        mu = float(vals.mean())
        sd = max(float(errs.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
        name = key.split(" [")[0]
        if name in ("abundance", "bispectrum"):
            tol = th.abundance if name == "abundance" else th.bispectrum
            p = norm.cdf((1 + tol - mu) / sd) - norm.cdf((1 - tol - mu) / sd)
        elif name in ("transfer", "stochasticity vs linear", "stochasticity vs quadratic"):
            top = {"transfer": th.transfer, "stochasticity vs linear": th.stochasticity_linear,
                   "stochasticity vs quadratic": th.stochasticity_quadratic}[name]  # fmt: skip
            p = norm.cdf((top - mu) / sd)
        elif name == "r_c mean":
            p = norm.cdf((mu - th.r_c_gain) / sd)
        elif name == "r_c every bin":
            p = norm.cdf((mu + th.r_c_sigmas * float(errs.mean())) / sd)
        else:
            continue
        parts[key] = float(p)
    total = math.exp(sum(math.log(max(p, 1e-300)) for p in parts.values()))
    return total, parts


def best(table: Mapping[str, Mapping[str, Any]]) -> str:
    """The key of the chosen candidate in a table of ``{"pass_probability": ..., "score":
    ...}``: the highest chance to pass a new box, then the lower score."""
    return min(table, key=lambda k: (-table[k]["pass_probability"], table[k]["score"]))
