"""Output calibrations of a trained halo painter, fitted on the training simulations only.

A Poisson-regression painter learns the mean count per cell, but a few thousand steps at a
small batch leave its large-scale amplitude off by up to 2x per mass bin, and it paints the
densest cells too high: its T(k) rises from about 0.9 at k = 0.04 to 1.07 at k = 0.2 h/Mpc
on the very boxes it was trained on. Two output maps, both stored as the checkpoint's output
normalization so that every ``bigpaint paint`` applies them:

``affine``  (``N -> a N + b`` per mass bin)
    ``a`` sets the painting's fluctuation power at ``k <= kmax`` to the truth's with its
    Poisson shot noise subtracted; ``b`` sets the mean count.
``power``   (``N -> a N^g + b`` per mass bin)
    ``g`` maximizes the pooled cross-correlation of ``N^g`` with the true counts over the
    modes ``0 < k <= kmax`` of all training boxes (a grid over ``EXPONENTS``; ``g = 1`` is the
    affine map, so the power map is never worse on the training boxes); then ``a`` and ``b``
    as above. ``g < 1`` tempers the densest cells.
``matter``  (``N -> a N^g + b`` per mass bin)
    ``g`` as for ``power``; ``a`` sets the painting's cross power with the simulation's matter
    at ``k <= kmax`` to the truth's. That amplitude carries no halo noise at all, where the
    ``affine`` and ``power`` maps match a truth power from which Poisson noise was subtracted:
    halos are sub-Poisson on large scales (:mod:`bigpaint.stats.truth_noise`), so those maps
    paint halos that cluster too weakly.
``noise``   (``N -> a N^g + b`` per mass bin)
    ``g`` as for ``power``; ``a`` sets the painting's fluctuation power at ``k <= kmax`` to the
    truth's with its noise *measured* against the matter subtracted, ``P_tt - P_tm^2 / P_mm``
    per shell of width ``k_F``: what ``bigpaint evaluate --matter`` judges T against.

The sums over boxes are accumulated once per snapshot (:class:`CalibrationSums`), so both maps
come from one painting of each training box.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Exponents ``g`` tried by the power calibration.
EXPONENTS = np.round(np.arange(0.2, 1.2001, 0.05), 3)


def large_scale_modes(n: int, box: float, kmax: float) -> tuple[np.ndarray, np.ndarray]:
    """The mask of rfft modes ``0 < |k| <= kmax`` (h/Mpc) of an ``n^3`` grid of side ``box``
    (Mpc/h), and their weights among the selected modes (2 for modes whose conjugate the rfft
    half-space leaves out, else 1)."""
    kk, kz = _k(n, box)
    sel = (kk > 0) & (kk <= kmax)
    weight = np.broadcast_to(np.where(kz > 0, 2.0, 1.0)[None, None, :], kk.shape)[sel]
    return sel, weight


def _k(n: int, box: float) -> tuple[np.ndarray, np.ndarray]:
    k1 = 2 * np.pi * np.fft.fftfreq(n, box / n)
    kz = 2 * np.pi * np.fft.rfftfreq(n, box / n)
    return np.sqrt(k1[:, None, None] ** 2 + k1[None, :, None] ** 2 + kz[None, None, :] ** 2), kz


def shells(n: int, box: float, sel: np.ndarray) -> np.ndarray:
    """For the modes ``sel`` selects, their shell ``j`` (``(j - 1) k_F < |k| <= j k_F``)."""
    kk, _ = _k(n, box)
    return np.ceil(kk[sel] / (2 * np.pi / box) - 1e-9).astype(np.int64)


@dataclass
class CalibrationSums:
    """Per mass bin, sums over the training boxes of what both calibrations need.

    Fourier sums use numpy's unnormalized FFT of the mean-subtracted field over the selected
    modes, so the truth's Poisson noise adds its total count per mode.
    """

    n_bins: int
    box_size: float
    exponents: np.ndarray = field(default_factory=lambda: EXPONENTS)
    boxes: int = 0

    def __post_init__(self) -> None:
        shape = (self.n_bins, len(self.exponents))
        self.cross = np.zeros(shape)  # sum Re(P^g T*)
        self.auto = np.zeros(shape)  # sum |P^g|^2
        self.mean_painted = np.zeros(shape)  # sum of box means of P^g
        self.truth_power = np.zeros(self.n_bins)  # sum |T|^2 - Poisson noise
        self.truth_raw = np.zeros(self.n_bins)  # sum |T|^2
        self.mean_truth = np.zeros(self.n_bins)
        self.cross_matter = np.zeros(shape)  # sum Re(P^g M*)
        self.truth_matter = np.zeros(self.n_bins)  # sum Re(T M*)
        self.truth_correlated = np.zeros(self.n_bins)  # sum over shells of c_s^2 / m_s

    def add(
        self,
        painted: np.ndarray,
        truth: np.ndarray,
        sel: np.ndarray,
        w: np.ndarray,
        matter: np.ndarray | None = None,
    ) -> None:
        """Add one box: ``painted`` and ``truth`` of shape ``(n_bins, n, n, n)``, the mask and
        weights of :func:`large_scale_modes`, and the box's matter density ``(n, n, n)``
        (needed by :meth:`matter`)."""
        mk = shell = None
        if matter is not None:
            m = matter.astype(np.float64)
            mk = np.fft.rfftn(m - m.mean())[sel]
            shell = shells(m.shape[0], self.box_size, sel)
        for c in range(self.n_bins):
            t = truth[c].astype(np.float64)
            tk = np.fft.rfftn(t - t.mean())[sel]
            if mk is not None:
                tm = w * (tk * mk.conj()).real
                self.truth_matter[c] += float(tm.sum())
                c_s = np.bincount(shell, tm)
                m_s = np.bincount(shell, w * np.abs(mk) ** 2)
                ok = m_s > 0
                self.truth_correlated[c] += float((c_s[ok] ** 2 / m_s[ok]).sum())
            raw = float((w * np.abs(tk) ** 2).sum())
            self.truth_raw[c] += raw
            self.truth_power[c] += raw - float(w.sum() * t.sum())
            self.mean_truth[c] += t.mean()
            base = np.clip(painted[c].astype(np.float64), 0, None)
            for i, g in enumerate(self.exponents):
                z = base**g
                zk = np.fft.rfftn(z - z.mean())[sel]
                self.cross[c, i] += float((w * (zk * tk.conj()).real).sum())
                self.auto[c, i] += float((w * np.abs(zk) ** 2).sum())
                self.mean_painted[c, i] += z.mean()
                if mk is not None:
                    self.cross_matter[c, i] += float((w * (zk * mk.conj()).real).sum())
        self.boxes += 1

    def _norm(self, c: int, i: int, amplitude: str = "poisson") -> dict[str, float]:
        if amplitude == "cross":
            scale = float(self.truth_matter[c] / self.cross_matter[c, i])
        elif amplitude == "measured":
            scale = float(np.sqrt(self.truth_correlated[c] / self.auto[c, i]))
        else:
            scale = float(np.sqrt(self.truth_power[c] / self.auto[c, i]))
        shift = float((self.mean_truth[c] - scale * self.mean_painted[c, i]) / self.boxes)
        return {"scale": scale, "shift": shift}

    def affine(self) -> list[dict[str, Any]]:
        """The affine output map per bin (``N -> scale N + shift``)."""
        i = int(np.flatnonzero(np.isclose(self.exponents, 1.0))[0])
        return [{"kind": "affine", **self._norm(c, i)} for c in range(self.n_bins)]

    def power(self, amplitude: str = "poisson") -> list[dict[str, Any]]:
        """The power-law output map per bin (``N -> scale N^exponent + shift``); its amplitude
        from the truth's power less Poisson noise (``poisson``), less the noise measured
        against the matter (``measured``), or from the cross power with the matter
        (``cross``)."""
        if amplitude != "poisson" and not np.any(self.truth_matter):
            raise ValueError("no matter was added: pass each box's matter to add()")
        corr = self.cross / np.sqrt(self.auto)
        out = []
        for c in range(self.n_bins):
            i = int(np.nanargmax(corr[c]))
            norm = self._norm(c, i, amplitude)
            out.append({"kind": "power", "exponent": float(self.exponents[i]), **norm})
        return out

    def matter(self) -> list[dict[str, Any]]:
        """The power-law output map with its amplitude from the cross power with the matter."""
        return self.power("cross")

    def noise(self) -> list[dict[str, Any]]:
        """The power-law output map with its amplitude from the truth's power less the noise
        measured against the matter."""
        return self.power("measured")

    def correlation(self) -> np.ndarray:
        """The pooled large-scale cross-correlation coefficient of ``N^g`` with the true counts
        (their shot noise kept), ``(n_bins, len(g))``."""
        return self.cross / np.sqrt(self.auto * self.truth_raw[:, None])


def usable(norms: list[dict[str, Any]]) -> bool:
    """Whether a fitted map keeps counts non-negative and finite (``shift >= 0``)."""
    return all(np.isfinite(n["scale"]) and n["scale"] > 0 and n["shift"] >= 0 for n in norms)
