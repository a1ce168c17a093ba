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


def brute_bispectrum(
    x: np.ndarray, box: float, triangles: list[tuple[float, float, float]], width: float
) -> list[tuple[float, int]]:
    """Direct mode-triplet sum: mean of F(q1) F(q2) F(q3) over q1 in S(k1), q2 in S(k2),
    q3 = -(q1 + q2) (mod n) in S(k3); B = V^2 / n^9 * mean. Shells [k - w/2, k + w/2),
    never the DC mode."""
    n = x.shape[0]
    f = np.fft.fftn(x.astype(np.float64))
    kf = 2 * np.pi / box
    m = np.where(np.arange(n) > n // 2, np.arange(n) - n, np.arange(n))
    modes = np.stack(np.meshgrid(m, m, m, indexing="ij"), -1).reshape(-1, 3)
    kk = np.sqrt((modes**2).sum(1)) * kf

    def shell(k: float) -> np.ndarray:
        return np.nonzero((kk > 0) & (kk >= k - width / 2 - 1e-12) & (kk < k + width / 2 - 1e-12))[
            0
        ]

    out = []
    ff = f.ravel()
    for k1, k2, k3 in triangles:
        s1, s2 = shell(k1), shell(k2)
        in3 = np.zeros(n**3, bool)
        in3[shell(k3)] = True
        q = (-(modes[s1][:, None, :] + modes[s2][None, :, :])) % n
        flat = (q[..., 0] * n + q[..., 1]) * n + q[..., 2]
        ok = in3[flat]
        prod = ff[s1][:, None] * ff[s2][None, :] * ff[flat]
        cnt = int(ok.sum())
        out.append((float(prod[ok].sum().real) / cnt * box**6 / n**9 if cnt else float("nan"), cnt))
    return out
