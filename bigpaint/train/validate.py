"""Validation by a statistic: paint the held-out cube and compare its power spectrum.

dm2gal and EMBER select their models by how well the painted field's power spectrum matches
the truth's, not by the validation loss (which can favour the abundant low values); the halo
painter paper judges by T(k), r_c(k) and the stochasticity. :func:`validate` paints the
validation cube (with periodic context read around it), and returns, per output channel and
averaged, ``pk_logratio`` (mean over k bins of ``|ln P_pred / P_true|``), ``r_c`` (mean
cross-correlation coefficient), ``T`` (mean transfer function) and
``score = pk_logratio + (1 - r_c)``, lower being better (the checkpoint kept as
``best.painter``).

3-D painters: :func:`bigpaint.stats.power.compare_spectra` on the cube (treated as periodic;
the truth and the prediction share the window, so the comparison is fair). 2-D painters: the
cube is cut into slabs of the projection depth along z, each projected slab is painted, and
the 2-D spectra (:func:`spectra_2d`, numpy FFT, integer-shell bins) are averaged over slabs.
Tile painters (the cosmic-web autoencoder) reconstruct tiles of the projected cube.

Validation paints with at most ``max_context`` voxels of context (rounded up to the
alignment): the full architectural context of a deep U-Net exceeds small training boxes; the
statistic of a validation cube is insensitive to the few voxels this changes near its faces.

Why hand-written: 2-D spectra are outside :mod:`bigpaint.stats` (3-D, distributed); an
image's radial spectrum is ten numpy lines.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bigpaint.errors import ConfigError
from bigpaint.train.sampler import read_channels

__all__ = ["paint_validation", "spectra_2d", "spectrum_metrics", "validate"]


def spectra_2d(
    pred: np.ndarray, true: np.ndarray, box: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Radial auto and cross spectra of 2-D images (stacked on leading axes and averaged).

    Shells of width ``k_F = 2 pi / box`` from ``k_F`` to ``k_Nyq``, ``P = <|d_k|^2> A / N^4``,
    ``k`` the mean |k| of the shell; the mean of each image is removed.

    Returns
    -------
    k, P_pred, P_true, P_cross : numpy.ndarray
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    n = pred.shape[-1]
    fp = np.fft.rfft2(pred - pred.mean(axis=(-2, -1), keepdims=True))
    ft = np.fft.rfft2(true - true.mean(axis=(-2, -1), keepdims=True))
    kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    ky = np.fft.rfftfreq(n, 1.0 / n)[None, :]
    kk = np.sqrt(kx**2 + ky**2)
    shell = np.rint(kk).astype(int)
    weight = np.where((ky == 0) | (ky == n // 2), 1.0, 2.0) * np.ones_like(kk)
    lead = tuple(range(fp.ndim - 2))
    pp = (np.abs(fp) ** 2).mean(axis=lead) if lead else np.abs(fp) ** 2
    tt = (np.abs(ft) ** 2).mean(axis=lead) if lead else np.abs(ft) ** 2
    xx = (fp * np.conj(ft)).real.mean(axis=lead) if lead else (fp * np.conj(ft)).real
    nbins = n // 2 + 1
    sel = (shell >= 1) & (shell < nbins)
    cnt = np.bincount(shell[sel], weights=weight[sel], minlength=nbins)[1:]
    norm = box**2 / n**4
    kf = 2 * math.pi / box

    def binned(v: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.bincount(shell[sel], weights=(v * weight)[sel], minlength=nbins)[1:] / cnt

    k = binned(kk) * kf
    return k, binned(pp) * norm, binned(tt) * norm, binned(xx) * norm


def spectrum_metrics(
    p_pred: np.ndarray, p_true: np.ndarray, p_cross: np.ndarray
) -> dict[str, float]:
    """``pk_logratio``, ``r_c``, ``T`` and ``score`` from binned spectra (NaN bins skipped)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(np.log(p_pred / p_true))
        rc = p_cross / np.sqrt(p_pred * p_true)
        t = np.sqrt(p_pred / p_true)
    ok = np.isfinite(ratio) & np.isfinite(rc)
    if not ok.any():  # e.g. a painter that outputs a constant
        return {"pk_logratio": math.inf, "r_c": 0.0, "T": 0.0, "score": math.inf}
    lr, r = float(ratio[ok].mean()), float(rc[ok].mean())
    return {"pk_logratio": lr, "r_c": r, "T": float(t[ok].mean()), "score": lr + (1 - r)}


def paint_validation(
    painter: Any, data: Any, *, max_context: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Paint the validation cube; returns ``(pred, true)`` in physical units.

    3-D painters: ``(C_out, s, s, s)``. 2-D painters: ``(n_slabs, C_out, s, s)`` (slabs of the
    projection depth along z; tiles of the painter's size for tile painters).
    """
    region = data.validation
    s, (o0, o1, o2) = region.size, region.origin
    if painter.mode == "tile":
        ctx, extra = 0, 0
        t = int(painter.tile)
        if t > s:
            raise ConfigError(
                f"validation cube {s} is smaller than the {t}-pixel tiles; enlarge it"
            )
        s = t
    else:
        a = painter.alignment
        ctx = (
            -(-min(painter.context, max(max_context, 0)) // a) * a
            if painter.mode == "same"
            else painter.context
        )
        extra = (-(s + 2 * ctx)) % a if painter.mode == "same" else 0

    def crop(y: np.ndarray) -> np.ndarray:
        if painter.mode != "same":
            return y
        return y[(slice(None), *(slice(ctx, ctx + s),) * painter.ndim)]

    if painter.ndim == 3:
        win = [(o - ctx, o + s + ctx + extra) for o in (o0, o1, o2)]
        pred = crop(painter.paint(read_channels(data.inputs, win)))
        true = read_channels(data.targets, [(o, o + s) for o in (o0, o1, o2)])
        return pred, true
    depth = int(data.projection_depth or s)
    preds, trues = [], []
    for z in range(o2, o2 + region.size - depth + 1, depth):
        win = [(o0 - ctx, o0 + s + ctx + extra), (o1 - ctx, o1 + s + ctx + extra), (z, z + depth)]
        x = read_channels(data.inputs, win).sum(-1)
        preds.append(crop(painter.paint(x)))
        trues.append(
            read_channels(data.targets, [(o0, o0 + s), (o1, o1 + s), (z, z + depth)]).sum(-1)
        )
    if not preds:
        raise ConfigError(
            f"validation cube {region.size} is thinner than the projection depth {depth}"
        )
    return np.stack(preds), np.stack(trues)


def average_channels(per: list[dict[str, float]], occupied: list[bool]) -> dict[str, Any]:
    """Mean of the per-channel metrics over the channels whose truth is not empty.

    A channel with no signal in the validation cube (e.g. the heaviest halo-mass bin of a
    small box) has no spectrum to judge, so its infinite score would hide every other
    channel's progress; it is left out of the mean (all channels count if none is occupied).
    ``judged`` lists the channels averaged.
    """
    judged = [i for i, ok in enumerate(occupied) if ok] or list(range(len(per)))
    out: dict[str, Any] = {key: float(np.mean([per[i][key] for i in judged])) for key in per[0]}
    out["judged"] = judged
    return out


def validate(painter: Any, data: Any, *, max_context: int = 16) -> dict[str, Any]:
    """Paint the validation cube and judge it by its spectra (see the module docstring).

    Returns
    -------
    dict
        ``score``, ``pk_logratio``, ``r_c``, ``T`` (averaged over channels) and per channel
        ``<name>_c<i>``; ``spectra``: per channel ``(k, P_pred, P_true, P_cross)`` arrays.
    """
    pred, true = paint_validation(painter, data, max_context=max_context)
    cell = data.cell_size
    per: list[dict[str, float]] = []
    spectra = []
    for c in range(painter.out_channels):
        if painter.ndim == 3:
            from bigpaint.stats.power import compare_spectra

            ds = compare_spectra(
                pred[c], true[c], box_size=pred.shape[-1] * cell, mas=None, mas_true=None
            )
            k, pp, pt, px = (np.asarray(ds[v]) for v in ("k", "P_pred", "P_true", "P_cross"))
        else:
            k, pp, pt, px = spectra_2d(pred[:, c], true[:, c], pred.shape[-1] * cell)
        per.append(spectrum_metrics(pp, pt, px))
        spectra.append((k, pp, pt, px))
    out = average_channels(
        per,
        [
            bool(np.any(true[:, c] if painter.ndim == 2 else true[c]))
            for c in range(painter.out_channels)
        ],
    )
    if len(per) > 1:
        for i, m in enumerate(per):
            out.update({f"{key}_c{i}": v for key, v in m.items()})
    out["spectra"] = spectra
    return out
