"""A noise-free check of a painting's large-scale amplitude: its cross power with the
simulation's matter over the truth's.

``bigpaint evaluate`` measures the clustering amplitude as T = sqrt((P - N) / (P_true - V/N)),
subtracting Poisson shot noise from the truth. Halos are not Poisson tracers (exclusion makes
their noise sub-Poisson on large scales), so that T can read 1 while the painted halos are
less biased than the true ones. Cross spectra with the matter of the same simulation carry no
halo shot noise at all: the ratio

    X(k) = P_painted,matter(k) / P_truth,matter(k)

is the ratio of the two fields' large-scale (cross) bias, and 1 when the painting clusters
as the halos do. This script reports X per k bin (bin width the fundamental mode, up to
``--kmax``) and over all modes up to it, for the total over mass bins, and per bin.

Usage::

    python benchmarks/check_cross_bias.py --painted RUNS/verdict/seed3002/painted.zarr \\
        --truth RUNS/sims/seed3002/counts.zarr --matter RUNS/sims/seed3002/density.zarr \\
        --out benchmarks/results/pretrained-halo/cross-bias-seed3002.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from bigpaint.field import data_var, open_field


def _load(url: str) -> tuple[np.ndarray, float]:
    ds = open_field(url)
    return np.asarray(data_var(ds).values, np.float64), float(ds.attrs["box_size"][0])


def cross_bias(
    painted: np.ndarray, truth: np.ndarray, matter: np.ndarray, box: float, kmax: float
) -> dict[str, list[float] | float]:
    """X(k) = P_painted,matter / P_truth,matter in bins of the fundamental mode up to ``kmax``
    (h/Mpc), and over every mode ``0 < k <= kmax``; 3-D arrays on one grid of side ``box``."""
    n = matter.shape[0]
    k1 = 2 * np.pi * np.fft.fftfreq(n, box / n)
    kz = 2 * np.pi * np.fft.rfftfreq(n, box / n)
    kk = np.sqrt(k1[:, None, None] ** 2 + k1[None, :, None] ** 2 + kz[None, None, :] ** 2)
    w = np.broadcast_to(np.where(kz > 0, 2.0, 1.0)[None, None, :], kk.shape)
    p, t, m = (np.fft.rfftn(a - a.mean()) for a in (painted, truth, matter))
    pm, tm = (w * (f * m.conj()).real for f in (p, t))
    edges = np.arange(0.0, kmax + 1e-9, 2 * np.pi / box)
    ratio, centre = [], []
    for lo, hi in itertools.pairwise(edges):
        sel = (kk > lo) & (kk <= hi)
        ratio.append(float(pm[sel].sum() / tm[sel].sum()))
        centre.append(float(kk[sel].mean()))
    sel = (kk > 0) & (kk <= kmax)
    return {"k": centre, "X": ratio, "X_all": float(pm[sel].sum() / tm[sel].sum())}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--painted", required=True, help="painted counts Field (channel, x, y, z)")
    ap.add_argument("--truth", required=True, help="true counts Field, the same mass bins")
    ap.add_argument("--matter", required=True, help="the simulation's matter density Field")
    ap.add_argument("--kmax", type=float, default=0.2, help="h/Mpc")
    ap.add_argument("--out", type=Path, required=True, help="JSON file")
    args = ap.parse_args()
    painted, box = _load(args.painted)
    truth, _ = _load(args.truth)
    matter, _ = _load(args.matter)
    levels = {"total": (painted.sum(0), truth.sum(0))}
    levels.update({f"bin{c}": (painted[c], truth[c]) for c in range(painted.shape[0])})
    result = {
        "statistic": "X(k) = P_painted,matter / P_truth,matter, k in h/Mpc",
        "inputs": {"painted": args.painted, "truth": args.truth, "matter": args.matter},
        "kmax": args.kmax,
        "levels": {
            name: cross_bias(p, t, matter, box, args.kmax) for name, (p, t) in levels.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for name, r in result["levels"].items():
        print(f"{name}: X(k <= {args.kmax:g}) = {r['X_all']:.3f};",
              " ".join(f"{x:.3f}" for x in r["X"]))  # fmt: skip


if __name__ == "__main__":
    main()
