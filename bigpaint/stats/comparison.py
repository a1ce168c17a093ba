"""The statistics of an evaluation: joint spectra with errors, bispectrum ratios, count PDFs.

Everything here works per *level*: one mass bin (a channel of the halo-count Fields) or the
total (a sum of channels). The fields are the truth, the painting and the baselines.

Spectra. Every field of every level is transformed once (:func:`bigpaint.mesh.fft.rfftn`;
the total's transform is the sum of its channels' transforms) and all auto and cross spectra
of a level's fields come from one chunked pass over the transforms
(:func:`bigpaint.stats.power.binned_sums`, the reduction behind
:func:`~bigpaint.stats.power.compare_spectra`, with its conventions: contrasts, independent
modes, mean ``|k|`` per bin). One pass gives what :func:`~bigpaint.stats.power.compare_spectra`
would give pair by pair (the tests hold the two equal), without transforming the truth again
for every painting, plus the painting-baseline cross spectra that the error of ``r_c -
r_c,baseline`` needs. No window is compensated: the truth is NGP counts on the grid, the
painting imitates that grid, and NGP's alias sum is 1, so the truth's Poisson noise on the
grid is white, ``1/n``, at every ``k``.

Shot noise, like with like. ``N_t`` is the truth's noise power: Poisson, ``V / N_true``, or
measured against the simulation's matter (:mod:`bigpaint.stats.truth_noise`); a
Poisson-sampled (integer) painting or baseline carries its own ``N_m = V / N_m``, an
expectation (non-integer) one none. ``T = sqrt((P_m - N_m) / (P_t - N_t))`` compares
noise-free clustering; ``r_c = P_mt / sqrt((P_m - N_m) P_t)`` and ``s = P_t (1 - r_c^2)``
keep the truth's noise, so for Poisson halos a perfect expectation reaches ``r_c = sqrt(1 -
N_t / P_t)`` and ``s = N_t``, the floor every model shares, while a model's own sampling noise
is not held against it. A measured ``N_t`` is what the best linear function of the matter
leaves, which a painting can go below. Errors: :mod:`bigpaint.stats.gaussian_errors`.

Bispectrum. :func:`bigpaint.stats.bispectrum.bispectrum` of every field and level; the
Poisson terms of a discrete field, ``(P1 + P2 + P3) / n + 1 / n^2`` with noise-free shell
powers ``P_i - 1/n``, are subtracted from the truth (and from Poisson-sampled models) before
``B / B_true`` is formed; a measured ``N_t`` takes the place of the truth's ``1/n`` (a
one-parameter model of non-Poisson noise: its three-point part is not measured separately).

Counts PDF. Per cell, the truth's count histogram against the Poisson mixture a painted
expectation predicts, ``P(n) = mean over cells of Poisson(n; lambda_cell)`` (exact, no random
draw), or the model's own histogram when it is Poisson-sampled; negative expectations
(possible for bias models) count as 0 in the mixture and are reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from bigpaint.mesh.fft import rfftn
from bigpaint.stats._reduce import blockwise_sum_lazy
from bigpaint.stats.bispectrum import bispectrum
from bigpaint.stats.gaussian_errors import (
    PairSpectra,
    bispectrum_covariance,
    combine,
    cross_coefficient,
    effective_modes,
    real_modes_per_bin,
    stochasticity,
    transfer,
    triangle_symmetry,
)
from bigpaint.stats.power import binned_sums, plan_bins

__all__ = ["Level", "bispectrum_table", "level_array", "pdf_table", "spectra_tables"]

TRUTH = "truth"
PAINTED = "painted"
K_UNITS = "h/Mpc"
P_UNITS = "(Mpc/h)^3"
#: Largest count a PDF row resolves; larger counts go to the overflow row.
PDF_NMAX = 400


@dataclass(frozen=True)
class Level:
    """A mass bin (one channel) or the total (a sum of channels).

    Attributes
    ----------
    name : str
        ``"bin<i>"`` or ``"total"``.
    channels : tuple of int
    m_lo, m_hi : float
        Mass range in Msun/h.
    """

    name: str
    channels: tuple[int, ...]
    m_lo: float
    m_hi: float


def level_array(data: da.Array, level: Level) -> da.Array:
    """The 3-D field of a level from a 4-D ``(channel, x, y, z)`` array (float64 for sums)."""
    if len(level.channels) == 1:
        return data[level.channels[0]]
    return da.stack([data[c] for c in level.channels]).sum(axis=0, dtype=np.float64)


# ---------------------------------------------------------------- spectra


def _joint_power(
    fields: Mapping[str, da.Array],
    levels: Sequence[Level],
    means: Mapping[str, np.ndarray],
    box: float,
    edges: np.ndarray,
) -> tuple[list[dict[tuple[str, str], np.ndarray]], np.ndarray, np.ndarray, Any]:
    n = int(next(iter(fields.values())).shape[-1])
    plan = plan_bins(edges, box)
    names = list(fields)
    channels = sorted({c for lev in levels for c in lev.channels})
    fk = {(a, c): rfftn(fields[a][c]) for a in names for c in channels}
    fks: list[da.Array] = []
    index: dict[tuple[int, str], int] = {}
    for li, lev in enumerate(levels):
        for a in names:
            parts = [fk[(a, c)] for c in lev.channels]
            index[(li, a)] = len(fks)
            fks.append(parts[0] if len(parts) == 1 else sum(parts[1:], parts[0]))
    pairs = tuple(
        (index[(li, a)], index[(li, b)])
        for li in range(len(levels))
        for ia, a in enumerate(names)
        for b in names[ia:]
    )
    ones = (np.ones(n), np.ones(n), np.ones(n // 2 + 1))
    sums = binned_sums(fks, (n, n, n), plan, pairs, (ones,) * len(fks), 2, (0,))
    counts, ksum = sums[0], sums[1]
    norm = box**3 / float(n) ** 6
    out: list[dict[tuple[str, str], np.ndarray]] = [{} for _ in levels]
    q = 2
    with np.errstate(invalid="ignore", divide="ignore"):
        for li in range(len(levels)):
            for ia, a in enumerate(names):
                for b in names[ia:]:
                    scale = norm / (means[a][li] * means[b][li])
                    out[li][(a, b)] = np.where(counts > 0, sums[q] / counts * scale, np.nan)
                    q += 1
        kmean = np.where(counts > 0, ksum / np.maximum(counts, 1) * plan.kf, np.nan)
    return out, counts, kmean, plan


def _weighted(
    ps: PairSpectra,
    values: np.ndarray,
    grad: Mapping[tuple[str, str], np.ndarray],
    weights: np.ndarray,
    use: np.ndarray,
) -> tuple[float, float]:
    """Mode-weighted mean of ``values`` over the bins ``use`` (finite ones), and its error."""
    ok = use & np.isfinite(values)
    if not ok.any():
        return math.nan, math.nan
    c = np.where(ok, weights, 0.0) / weights[ok].sum()
    mean = float(np.sum(np.where(ok, values, 0.0) * c))
    var = ps.variance({p: np.where(ok, g, 0.0) * c for p, g in grad.items()})
    return mean, float(math.sqrt(np.sum(np.where(ok, var, 0.0))))


def _ratio(
    ps: PairSpectra,
    a: tuple[np.ndarray, Mapping[tuple[str, str], np.ndarray]],
    b: tuple[np.ndarray, Mapping[tuple[str, str], np.ndarray]],
    weights: np.ndarray,
    use: np.ndarray,
) -> tuple[float, float]:
    """``sum w a / sum w b`` over the bins ``use`` where both are finite, and its error."""
    ok = use & np.isfinite(a[0]) & np.isfinite(b[0])
    if not ok.any():
        return math.nan, math.nan
    w = np.where(ok, weights, 0.0)
    num = float(np.sum(w * np.where(ok, a[0], 0.0)))
    den = float(np.sum(w * np.where(ok, b[0], 0.0)))
    if den == 0:
        return math.nan, math.nan
    g = combine((w / den, a[1]), (-w * num / den**2, b[1]))
    var = ps.variance({p: np.where(ok, v, 0.0) for p, v in g.items()})
    return num / den, float(math.sqrt(np.sum(np.where(ok, var, 0.0))))


@dataclass
class _SpectraArrays:
    """The per-bin arrays and k averages of :func:`spectra_tables`, filled level by level.

    ``arr`` holds ``(level, model, bin)`` spectra and their errors, ``p_true`` the truth's
    ``(level, bin)`` power, ``drc`` the ``(level, baseline, bin)`` difference ``r_c -
    r_c,baseline`` and its error, ``avg`` and ``bavg`` the ``(level, model)`` and ``(level,
    baseline)`` averages over the bins ``in_verdict``.
    """

    models: list[str]
    bases: list[str]
    counts: np.ndarray
    n_eff: np.ndarray
    in_verdict: np.ndarray
    arr: dict[str, np.ndarray]
    p_true: np.ndarray
    drc: dict[str, np.ndarray]
    avg: dict[str, np.ndarray]
    bavg: dict[str, np.ndarray]

    @classmethod
    def empty(
        cls,
        nl: int,
        models: list[str],
        bases: list[str],
        counts: np.ndarray,
        n_eff: np.ndarray,
        in_verdict: np.ndarray,
    ) -> _SpectraArrays:
        nm, nbase, nb = len(models), len(bases), len(counts)
        shape_m, shape_b = (nl, nm, nb), (nl, nbase, nb)
        arr = {k: np.full(shape_m, np.nan) for k in ("P", "P_cross", "T", "r_c", "s")}
        arr.update({f"sigma_{k}": np.full(shape_m, np.nan) for k in ("P", "T", "r_c", "s")})
        return cls(
            models, bases, counts, n_eff, in_verdict, arr,
            p_true=np.full((nl, nb), np.nan),
            drc={k: np.full(shape_b, np.nan) for k in ("d", "sd")},
            avg={k: np.full((nl, nm), np.nan) for k in ("tdev", "stdev", "rc", "src")},
            bavg={k: np.full((nl, nbase), np.nan) for k in ("sr", "ssr", "dr", "sdr")},
        )  # fmt: skip

    def fill(self, li: int, ps: PairSpectra, noise: Mapping[str, np.ndarray]) -> None:
        """Level ``li``: every model against the truth, then the painting against each
        baseline (``noise``: per field, the Poisson noise power of each level)."""
        arr, avg, counts, use = self.arr, self.avg, self.counts, self.in_verdict
        nt = float(noise[TRUTH][li])
        self.p_true[li] = ps.P(TRUTH, TRUTH)
        stats = {}
        for mi, m in enumerate(self.models):
            nm_ = float(noise[m][li])
            T, gT = transfer(ps, m, TRUTH, nm_, nt)
            r, gr = cross_coefficient(ps, m, TRUTH, nm_)
            s, gs = stochasticity(ps, m, TRUTH, nm_)
            stats[m] = {"r": (r, gr), "s": (s, gs)}
            arr["P"][li, mi] = ps.P(m, m)
            arr["sigma_P"][li, mi] = ps.P(m, m) / np.sqrt(self.n_eff)
            arr["P_cross"][li, mi] = ps.P(m, TRUTH)
            for key, (v, g) in (("T", (T, gT)), ("r_c", (r, gr)), ("s", (s, gs))):
                arr[key][li, mi] = v
                arr[f"sigma_{key}"][li, mi] = np.sqrt(ps.variance(g))
            dev = np.abs(T - 1)
            gdev = {p: np.sign(T - 1) * g for p, g in gT.items()}
            avg["tdev"][li, mi], avg["stdev"][li, mi] = _weighted(ps, dev, gdev, counts, use)
            avg["rc"][li, mi], avg["src"][li, mi] = _weighted(ps, r, gr, counts, use)
        for bi, b in enumerate(self.bases):
            (rp, grp), (rb, grb) = stats[PAINTED]["r"], stats[b]["r"]
            d, gd = rp - rb, combine((1.0, grp), (-1.0, grb))
            self.drc["d"][li, bi] = d
            self.drc["sd"][li, bi] = np.sqrt(ps.variance(gd))
            self.bavg["dr"][li, bi], self.bavg["sdr"][li, bi] = _weighted(ps, d, gd, counts, use)
            self.bavg["sr"][li, bi], self.bavg["ssr"][li, bi] = _ratio(
                ps, stats[PAINTED]["s"], stats[b]["s"], counts, use
            )

    def averages(self) -> dict[str, xr.DataArray]:
        """For the levels table: mode-weighted means and ratios over ``k <= kmax``."""
        avg, bavg = self.avg, self.bavg
        return {
            "mean_abs_T_minus_1": xr.DataArray(avg["tdev"], dims=("level", "model")),
            "sigma_mean_abs_T_minus_1": xr.DataArray(avg["stdev"], dims=("level", "model")),
            "mean_r_c": xr.DataArray(avg["rc"], dims=("level", "model")),
            "sigma_mean_r_c": xr.DataArray(avg["src"], dims=("level", "model")),
            "stochasticity_ratio": xr.DataArray(bavg["sr"], dims=("level", "baseline")),
            "sigma_stochasticity_ratio": xr.DataArray(bavg["ssr"], dims=("level", "baseline")),
            "delta_r_c_mean": xr.DataArray(bavg["dr"], dims=("level", "baseline")),
            "sigma_delta_r_c_mean": xr.DataArray(bavg["sdr"], dims=("level", "baseline")),
        }


def spectra_tables(
    fields: Mapping[str, da.Array],
    levels: Sequence[Level],
    means: Mapping[str, np.ndarray],
    noise: Mapping[str, np.ndarray],
    box: float,
    edges: np.ndarray,
    kmax: float,
) -> tuple[xr.Dataset, dict[str, xr.DataArray]]:
    """Spectra, T, r_c, s and ``r_c - r_c,baseline`` with errors; and their k averages.

    Parameters
    ----------
    fields : mapping
        ``truth``, ``painted`` and the baselines (in that order): 4-D dask arrays.
    levels : sequence of Level
    means : mapping
        Per field, the mean count per cell of each level (for the contrast).
    noise : mapping
        Per field, the Poisson noise power of each level in (Mpc/h)^3 (0 for expectations).
    box : float
        Box side in Mpc/h.
    edges : numpy.ndarray
        k bin edges in h/Mpc.
    kmax : float
        Bins with ``k_hi <= kmax`` (h/Mpc) enter the averages.

    Returns
    -------
    spectra : xarray.Dataset
        Dimensions ``level``, ``model``, ``baseline``, ``bin``.
    averages : dict of DataArray
        For the levels table: mode-weighted means and ratios over ``k <= kmax``.
    """
    names = list(fields)
    n = int(fields[TRUTH].shape[-1])
    powers, counts, kmean, plan = _joint_power(fields, levels, means, box, edges)
    n_eff = effective_modes(counts, real_modes_per_bin(n, plan.bin_of_k2, plan.nbins))
    in_verdict = (edges[1:] <= kmax * (1 + 1e-9)) & (counts > 0)
    t = _SpectraArrays.empty(len(levels), names[1:], names[2:], counts, n_eff, in_verdict)
    for li in range(len(levels)):
        t.fill(li, PairSpectra(powers[li], n_eff), noise)
    arr, drc, p_true, models, bases = t.arr, t.drc, t.p_true, t.models, t.bases
    lv, md, bs = ("level", "model", "bin"), ("level", "baseline", "bin"), ("level", "bin")

    def var(dims: tuple[str, ...], data: np.ndarray, units: str, name: str) -> tuple:
        return (dims, data, {"units": units, "long_name": name})

    ds = xr.Dataset(
        {
            "P_true": var(bs, p_true, P_UNITS, "power spectrum of the truth (with its shot noise)"),
            "sigma_P_true": var(bs, p_true / np.sqrt(n_eff), P_UNITS, "Gaussian error of P_true"),
            "P": var(lv, arr["P"], P_UNITS, "power spectrum of the model"),
            "sigma_P": var(lv, arr["sigma_P"], P_UNITS, "Gaussian error of P"),
            "P_cross": var(lv, arr["P_cross"], P_UNITS, "cross power spectrum with the truth"),
            "T": var(lv, arr["T"], "1", "sqrt((P - N_model) / (P_true - N_true))"),
            "sigma_T": var(lv, arr["sigma_T"], "1", "Gaussian error of T"),
            "r_c": var(lv, arr["r_c"], "1", "P_cross / sqrt((P - N_model) P_true)"),
            "sigma_r_c": var(lv, arr["sigma_r_c"], "1", "Gaussian error of r_c"),
            "stochasticity": var(lv, arr["s"], P_UNITS, "P_true (1 - r_c^2)"),
            "sigma_stochasticity": var(lv, arr["sigma_s"], P_UNITS, "Gaussian error of s"),
            "delta_r_c": var(md, drc["d"], "1", "r_c of the painting - r_c of the baseline"),
            "sigma_delta_r_c": var(md, drc["sd"], "1", "Gaussian error of delta_r_c"),
        },
        coords={
            "level": ("level", [lev.name for lev in levels]),
            "model": ("model", models),
            "baseline": ("baseline", bases),
            "k": ("bin", kmean, {"units": K_UNITS, "long_name": "mean |k| of the modes in the bin"}),
            "k_lo": ("bin", edges[:-1], {"units": K_UNITS, "long_name": "lower bin edge"}),
            "k_hi": ("bin", edges[1:], {"units": K_UNITS, "long_name": "upper bin edge"}),
            "n_modes": ("bin", counts.astype(np.int64), {"units": "1", "long_name": "independent modes"}),
            "n_eff": ("bin", n_eff, {"units": "1", "long_name": "effective complex modes (errors)"}),
            "in_verdict": ("bin", in_verdict, {"units": "1", "long_name": f"k_hi <= kmax = {kmax:g} h/Mpc"}),
        },
    )  # fmt: skip
    return ds, t.averages()


# ---------------------------------------------------------------- bispectrum


def _poisson_terms(b: xr.Dataset, noise: float) -> np.ndarray:
    """``(P1 + P2 + P3) / n + 1 / n^2`` with noise-free shell powers, ``1/n = noise``: the
    Poisson terms, and for a measured noise the same form with ``1/n`` replaced by it."""
    if noise == 0:
        return np.zeros(b.sizes["theta"])
    p = b.attrs["P1"] + b.attrs["P2"] + b.P3.values - 3 * noise
    return p * noise + noise**2


def bispectrum_table(
    fields: Mapping[str, da.Array],
    levels: Sequence[Level],
    means: Mapping[str, np.ndarray],
    noise: Mapping[str, np.ndarray],
    spectra: xr.Dataset,
    box: float,
    k1: float,
    k2: float,
    theta: Sequence[float],
    shell_width: float | None,
) -> xr.Dataset:
    """``B`` of every field and level, the truth's noise terms removed, ``B / B_true``.

    Returns
    -------
    xarray.Dataset
        Dimensions ``level``, ``model``, ``theta``; ``B_true`` and ``B`` as measured,
        ``*_corrected`` with the noise terms removed ((Mpc/h)^6; ``noise``: per field and
        level, the noise power, measured or ``V / N``), ``ratio`` =
        ``B_corrected / B_true_corrected`` and its Gaussian error ``sigma_ratio``.
    """
    names = list(fields)
    models = names[1:]
    th = np.asarray(theta, np.float64)
    vol = box**3
    kf = 2 * math.pi / box
    width = kf if shell_width is None else float(shell_width)
    nl, nm, nt = len(levels), len(models), len(th)
    out = {k: np.full((nl, nm, nt), np.nan) for k in ("B", "Bc", "sB", "ratio", "sratio")}
    bt = {k: np.full((nl, nt), np.nan) for k in ("B", "Bc", "sB")}
    k3 = tri = None
    for li, lev in enumerate(levels):
        # field / mean: the contrast up to its DC mode, which no shell holds (and no pass
        # over the data to find the mean again)
        res = {
            a: bispectrum(
                level_array(fields[a], lev) / means[a][li], k1, k2, th, box_size=box, mas=None,
                contrast=False, shell_width=width,
            )
            for a in names
        }  # fmt: skip
        t = res[TRUTH]
        k3, tri = t.k3.values, t.triangles.values
        sym = np.array([triangle_symmetry((k1, k2, float(k)), width) for k in k3])

        def shells(d: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return (np.full(nt, d.attrs["P1"]), np.full(nt, d.attrs["P2"]), d.P3.values)

        var_t = bispectrum_covariance(shells(t), vol, tri, sym)
        bt["B"][li] = t.B.values
        bt["Bc"][li] = t.B.values - _poisson_terms(t, float(noise[TRUTH][li]))
        bt["sB"][li] = np.sqrt(var_t)
        sel = spectra.sel(level=lev.name)
        kk = spectra.k.values
        for mi, m in enumerate(models):
            b = res[m]
            row = sel.sel(model=m)
            with np.errstate(invalid="ignore", divide="ignore"):
                r_obs = row.P_cross.values / np.sqrt(row.P.values * sel.P_true.values)
            ok = np.isfinite(r_obs) & np.isfinite(kk)
            r_at = [np.interp(k, kk[ok], r_obs[ok]) if ok.any() else np.nan for k in (k1, k2)]
            r3 = np.interp(k3, kk[ok], r_obs[ok]) if ok.any() else np.full(nt, np.nan)
            pm, pt_ = shells(b), shells(t)
            cross = tuple(
                r * np.sqrt(np.abs(x * y)) for r, x, y in zip((*r_at, r3), pm, pt_, strict=True)
            )
            var_m = bispectrum_covariance(pm, vol, tri, sym)
            cov = bispectrum_covariance(cross, vol, tri, sym)
            bc = b.B.values - _poisson_terms(b, float(noise[m][li]))
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = bc / bt["Bc"][li]
                rel = var_m / bc**2 + var_t / bt["Bc"][li] ** 2 - 2 * cov / (bc * bt["Bc"][li])
            out["B"][li, mi], out["Bc"][li, mi] = b.B.values, bc
            out["sB"][li, mi] = np.sqrt(var_m)
            out["ratio"][li, mi] = ratio
            out["sratio"][li, mi] = np.abs(ratio) * np.sqrt(np.clip(rel, 0, None))
    dims_m, dims_t = ("level", "model", "theta"), ("level", "theta")
    b6 = "(Mpc/h)^6"
    ds = xr.Dataset(
        {
            "B_true": (dims_t, bt["B"], {"units": b6, "long_name": "bispectrum of the truth as measured"}),
            "B_true_corrected": (dims_t, bt["Bc"], {"units": b6, "long_name": "truth without its Poisson terms"}),
            "sigma_B_true": (dims_t, bt["sB"], {"units": b6, "long_name": "Gaussian error of B_true"}),
            "B": (dims_m, out["B"], {"units": b6, "long_name": "bispectrum of the model as measured"}),
            "B_corrected": (dims_m, out["Bc"], {"units": b6, "long_name": "model without Poisson terms (sampled models only)"}),
            "sigma_B": (dims_m, out["sB"], {"units": b6, "long_name": "Gaussian error of B"}),
            "ratio": (dims_m, out["ratio"], {"units": "1", "long_name": "B_corrected / B_true_corrected"}),
            "sigma_ratio": (dims_m, out["sratio"], {"units": "1", "long_name": "Gaussian error of ratio"}),
        },
        coords={
            "level": ("level", [lev.name for lev in levels]),
            "model": ("model", models),
            "theta": ("theta", th, {"units": "rad", "long_name": "angle between k1 and k2"}),
            "k3": ("theta", k3, {"units": K_UNITS, "long_name": "|k1 + k2|"}),
            "triangles": ("theta", tri, {"units": "1", "long_name": "closed mode triplets"}),
        },
    )  # fmt: skip
    ds.attrs.update({"k1": float(k1), "k2": float(k2), "k_units": K_UNITS,
                     "shell_width": width, "shell_width_units": K_UNITS})  # fmt: skip
    return ds


# ---------------------------------------------------------------- counts PDF


def _pdf_block(*blocks: np.ndarray, loc: Any, nmax: int, poisson: tuple[bool, ...]) -> np.ndarray:
    """Per field: counts (or summed probabilities) of ``n = 0..nmax``, overflow, negatives."""
    out = np.zeros((len(blocks), nmax + 3))
    for i, (blk, sampled) in enumerate(zip(blocks, poisson, strict=True)):
        v = np.asarray(blk, np.float64).ravel()
        out[i, nmax + 2] = np.count_nonzero(v < 0)
        if sampled:
            idx = np.clip(np.rint(v), 0, nmax + 1).astype(np.int64)
            out[i, : nmax + 2] = np.bincount(idx, minlength=nmax + 2)
            continue
        lam = np.clip(v, 0.0, None)
        p = np.exp(-lam)
        out[i, 0] = p.sum()
        for j in range(1, nmax + 1):
            p *= lam / j
            out[i, j] = p.sum()
        out[i, nmax + 1] = max(v.size - out[i, : nmax + 1].sum(), 0.0)
    return out


def pdf_table(
    fields: Mapping[str, da.Array],
    levels: Sequence[Level],
    sampled: Mapping[str, bool],
    maxima: Mapping[str, np.ndarray],
) -> tuple[xr.Dataset, dict[str, xr.DataArray]]:
    """Counts-in-cells PDF of the truth and what each model predicts, per level.

    Parameters
    ----------
    fields : mapping
        ``truth`` first, then the models: 4-D dask arrays.
    sampled : mapping
        Per field, whether its values are Poisson draws (the truth always is).
    maxima : mapping
        Per field, an upper bound of each level's largest value (sizes the histogram).

    Returns
    -------
    pdf : xarray.Dataset
        ``pdf_true`` (level, n) and ``pdf`` (level, model, n); the last ``n`` row counts
        every larger value (attribute ``overflow_from``).
    extras : dict of DataArray
        ``tv_distance`` (total-variation distance to the truth's PDF) and
        ``negative_fraction`` (share of cells with a negative expectation), per level and
        model.
    """
    names = list(fields)
    models = names[1:]
    flags = tuple(bool(sampled[a]) for a in names)
    top = 0.0
    for li in range(len(levels)):
        for a in names:
            hi = max(float(maxima[a][li]), 0.0)
            top = max(top, hi if sampled[a] else hi + 6 * math.sqrt(hi) + 6)
    nmax = int(min(PDF_NMAX, math.ceil(top)))
    lazy = [
        blockwise_sum_lazy(
            _pdf_block, [level_array(fields[a], lev) for a in names],
            (len(names), nmax + 3), np.float64, nmax=nmax, poisson=flags,
        )
        for lev in levels
    ]  # fmt: skip
    sums = dask.compute(*lazy)
    width = nmax + 2
    pdf = np.zeros((len(levels), len(names), width))
    tv = np.full((len(levels), len(models)), np.nan)
    neg = np.zeros((len(levels), len(models)))
    for li, s in enumerate(sums):
        cells = s[0, :width].sum()
        pdf[li] = s[:, :width] / cells
        tv[li] = 0.5 * np.abs(pdf[li, 1:] - pdf[li, 0]).sum(axis=1)
        neg[li] = s[1:, width] / cells
    n = np.arange(width)
    ds = xr.Dataset(
        {
            "pdf_true": (("level", "n"), pdf[:, 0], {"units": "1", "long_name": "share of cells with n halos (truth)"}),
            "pdf": (("level", "model", "n"), pdf[:, 1:], {"units": "1", "long_name": "predicted share of cells with n halos"}),
        },
        coords={"level": [lev.name for lev in levels], "model": models,
                "n": ("n", n, {"units": "halos", "long_name": "halos per cell (last row: that many or more)"})},
    )  # fmt: skip
    ds.attrs["overflow_from"] = int(width - 1)
    ds.attrs["prediction"] = (
        "expectation fields: mean over cells of Poisson(n; max(lambda, 0)); "
        "Poisson-sampled fields: their own histogram"
    )
    extras = {
        "tv_distance": xr.DataArray(tv, dims=("level", "model")),
        "negative_fraction": xr.DataArray(neg, dims=("level", "model")),
    }
    return ds, extras
