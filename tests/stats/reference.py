"""Whole-array in-memory references the chunked statistics are tested against.

``pylians_pk`` is a vectorised transcription of the mode loop of Pylians3
``Pk_library.Pk``/``XPk`` (3-D part): FFT, MAS correction ``(x / sin x)^p`` per axis,
independent modes only, ``k_index = int(|k| / k_F)``, DC bin dropped.
"""

from __future__ import annotations

import numpy as np


def pylians_pk(
    delta: np.ndarray,
    box: float,
    mas_p: int = 0,
    axis: int = 0,
    other: np.ndarray | None = None,
    mas_p_other: int | None = None,
) -> dict[str, np.ndarray]:
    dims = delta.shape[0]
    middle = dims // 2
    kf = 2 * np.pi / box
    full = np.arange(dims)
    kxy = np.where(full > middle, full - dims, full)
    kz1 = np.arange(middle + 1)

    def corr(p: int) -> np.ndarray:
        def c(k: np.ndarray) -> np.ndarray:
            x = np.pi * k / dims
            with np.errstate(invalid="ignore", divide="ignore"):
                v = np.where(x == 0, 1.0, (x / np.sin(np.where(x == 0, 1, x))) ** p)
            return v

        return c(kxy)[:, None, None] * c(kxy)[None, :, None] * c(kz1)[None, None, :]

    d1 = np.fft.rfftn(delta.astype(np.float64)) * corr(mas_p)
    if other is None:
        d2 = d1
    else:
        d2 = np.fft.rfftn(other.astype(np.float64)) * corr(
            mas_p if mas_p_other is None else mas_p_other
        )
    kx = kxy[:, None, None]
    ky = kxy[None, :, None]
    kz = kz1[None, None, :]
    kx, ky, kz = np.broadcast_arrays(kx, ky, kz)
    special = (kz == 0) | ((kz == middle) & (dims % 2 == 0))
    xedge = (kx == 0) | ((kx == middle) & (dims % 2 == 0))
    drop = special & ((kx < 0) | (xedge & (ky < 0)))
    keep = ~drop
    k = np.sqrt(kx**2 + ky**2 + kz**2)
    kidx = k.astype(int)
    kpar = [kx, ky, kz][axis]
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(k == 0, 0.0, kpar / np.where(k == 0, 1, k))
    mu2 = mu * mu
    p = (d1 * np.conj(d2)).real
    nb = int(np.sqrt(middle**2 * 3)) + 1
    sel = keep

    def s(w: np.ndarray) -> np.ndarray:
        return np.bincount(kidx[sel], weights=w[sel], minlength=nb)[:nb]

    n = s(np.ones_like(k))
    ks = s(k)
    p0 = s(p)
    p2 = s(p * (3 * mu2 - 1) / 2)
    p4 = s(p * (35 * mu2 * mu2 - 30 * mu2 + 3) / 8)
    norm = (box / dims**2) ** 3
    n, ks, p0, p2, p4 = n[1:], ks[1:], p0[1:], p2[1:], p4[1:]
    return {
        "k": ks / n * kf,
        "P0": p0 / n * norm,
        "P2": p2 * 5 / n * norm,
        "P4": p4 * 9 / n * norm,
        "n_modes": n,
    }


def cic_deposit(pos: np.ndarray, n: int, box: float, shift: float = 0.0) -> np.ndarray:
    """Periodic CIC counts on an ``n^3`` grid; cell centres at ``(i + 1/2) L / n``.

    ``shift`` moves every particle by that many cells first (0.5: the interlacing twin).
    """
    grid = np.zeros(n**3)
    s = pos * (n / box) - 0.5 + shift
    i0 = np.floor(s).astype(np.int64)
    f = s - i0
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1 - f[:, 0]
        ix = (i0[:, 0] + dx) % n
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1 - f[:, 1]
            iy = (i0[:, 1] + dy) % n
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1 - f[:, 2]
                iz = (i0[:, 2] + dz) % n
                grid += np.bincount((ix * n + iy) * n + iz, weights=wx * wy * wz, minlength=n**3)
    return grid.reshape(n, n, n)


def gaussian_field(n: int, box: float, pk, seed: int) -> np.ndarray:
    """Gaussian random field with power spectrum ``pk(k)`` ((Mpc/h)^3, k in h/Mpc)."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((n, n, n))
    kf = 2 * np.pi / box
    m = np.fft.fftfreq(n, 1 / n)
    mz = np.fft.rfftfreq(n, 1 / n)
    k = kf * np.sqrt(m[:, None, None] ** 2 + m[None, :, None] ** 2 + mz[None, None, :] ** 2)
    amp = np.zeros_like(k)
    amp[k > 0] = np.sqrt(pk(k[k > 0]) * n**3 / box**3)
    return np.fft.irfftn(np.fft.rfftn(white) * amp, s=(n, n, n), axes=(0, 1, 2))
