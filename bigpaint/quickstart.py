"""The embedded quickstart: a small box through every stage that exists, with a report.

Stages (each resumable; a second run skips what is finished):

1. seeded white noise, written block by block on the cluster;
2. Gaussian smoothing through the periodic blockwise primitive;
3. a check of invariant 1: the chunked result against ``scipy.ndimage`` on the whole array;
4. power spectra on the distributed FFT: the noise's P(k) tested flat at (L/N)^3 by a
   chi-square over bins (variance P^2 / N_modes), and the smoothing transfer function;
5. a report directory: ``summary.json``, ``slices.png``, ``power.png`` and ``index.html``.

Later stages (deposit, statistics, painting, segmentation) join as they land.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bigpaint.field import field_info, open_field
from bigpaint.filters import smooth
from bigpaint.ics.noise import white_noise

__all__ = ["run_quickstart"]


def _log(msg: str) -> None:
    import click

    click.echo(f"[quickstart] {msg}", err=True)


def run_quickstart(
    out_dir: str | Path = "bigpaint-quickstart",
    *,
    grid: int = 128,
    box_size: float = 256.0,
    chunks: int = 32,
    sigma_mpc: float = 4.0,
    seed: int = 42,
) -> dict[str, Any]:
    """Run the quickstart pipeline on the current Dask client and write the report.

    Parameters
    ----------
    out_dir : path
        Where the Fields and ``report/`` go.
    grid : int
        Voxels per side.
    box_size : float
        Box side in Mpc/h.
    chunks : int
        Block size in voxels.
    sigma_mpc : float
        Smoothing scale in Mpc/h.
    seed : int
        White-noise seed.

    Returns
    -------
    dict
        The summary written to ``report/summary.json``.
    """
    import scipy.ndimage as ndi

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    _log(f"1/5 white noise {grid}^3 in {chunks}^3 blocks (seed {seed})")
    noise = white_noise(
        str(out / "noise.zarr"),
        grid=grid,
        box_size=box_size,
        seed=seed,
        chunks=chunks,
        progress=True,
    )
    timings["white_noise_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _log(f"2/5 smoothing with sigma = {sigma_mpc} Mpc/h through the blockwise primitive")
    smoothed = smooth(noise.url, str(out / "smoothed.zarr"), sigma_mpc, progress=True)
    timings["smooth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _log("3/5 checking the chunked result against scipy.ndimage on the whole array")
    a = open_field(noise.url)["white_noise"].values
    b = open_field(smoothed.url)["white_noise"].values
    sigma_vox = sigma_mpc / (box_size / grid)
    ref = ndi.gaussian_filter(a, sigma_vox, mode="wrap")
    max_err = float(np.abs(b - ref).max())
    timings["check_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _log("4/5 power spectra of the noise and the smoothed field (distributed FFT)")
    from bigpaint.stats.power import power_spectrum

    pn = power_spectrum(noise.url, mas=None, contrast=False)
    ps = power_spectrum(smoothed.url, mas=None, contrast=False)
    k, nm = pn["k"].values, pn["n_modes"].values
    p_white = (box_size / grid) ** 3
    # n_modes counts each conjugate pair once: var(P_bin) = P^2 / n_modes
    chi2 = float(np.sum((pn["P0"].values - p_white) ** 2 / (p_white**2 / nm)))
    transfer = np.sqrt(ps["P0"].values / pn["P0"].values)
    timings["power_s"] = time.perf_counter() - t0

    _log("5/5 writing the report")
    report = out / "report"
    report.mkdir(exist_ok=True)
    summary = {
        "grid": grid,
        "box_size_mpc_h": box_size,
        "chunks": chunks,
        "seed": seed,
        "sigma_mpc_h": sigma_mpc,
        "noise": {"mean": float(a.mean()), "std": float(a.std())},
        "smoothed": {
            "std": float(b.std()),
            "std_expected": float(1 / np.sqrt((2 * np.sqrt(np.pi) * sigma_vox) ** 3)),
        },
        "chunked_vs_whole_max_abs_diff": max_err,
        "white_noise_power": {
            "expected_mpc3_h3": p_white,
            "chi2": chi2,
            "dof": len(k),
            "chi2_per_dof": chi2 / len(k),
        },
        "fields": {
            k: field_info(v.url)["url"] for k, v in (("noise", noise), ("smoothed", smoothed))
        },
        "timings_s": timings,
    }
    (report / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(a, b, sigma_mpc, report / "slices.png")
    _plot_power(
        k, pn["P0"].values, ps["P0"].values, transfer, p_white, sigma_mpc, report / "power.png"
    )
    _html(summary, report / "index.html")
    _log(f"report: {report / 'index.html'}")
    return summary


def _plot(a: np.ndarray, b: np.ndarray, sigma_mpc: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
    for ax, img, title in (
        (axes[0], a, "white noise"),
        (axes[1], b, f"smoothed, sigma={sigma_mpc} Mpc/h"),
    ):
        im = ax.imshow(img[img.shape[0] // 2].T, origin="lower", cmap="viridis")
        ax.set_title(title)
        ax.set_xlabel("y [cells]")
        ax.set_ylabel("z [cells]")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_power(k, p_noise, p_smooth, transfer, p_white, sigma_mpc, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax0.loglog(k, p_noise, label="white noise")
    ax0.loglog(k, p_smooth, label="smoothed")
    ax0.axhline(p_white, color="k", ls=":", label="(L/N)$^3$")
    ax0.set_xlabel("k [h/Mpc]")
    ax0.set_ylabel("P(k) [(Mpc/h)$^3$]")
    ax0.legend()
    ax1.semilogx(k, transfer, label="measured sqrt(P_s/P_n)")
    ax1.semilogx(
        k, np.exp(-0.5 * (k * sigma_mpc) ** 2), ls="--", label="exp(-k$^2\\sigma^2$/2), continuous"
    )
    ax1.set_xlabel("k [h/Mpc]")
    ax1.set_ylabel("transfer")
    ax1.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _html(summary: dict[str, Any], path: Path) -> None:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in summary.items()
    )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>bigpaint quickstart</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{text-align:left;padding:.2em .6em;border-bottom:1px solid #ddd}</style></head><body>"
        "<h1>bigpaint quickstart report</h1>"
        "<p>Chunked operations checked against their whole-array references.</p>"
        f"<table>{rows}</table><h2>Slices</h2><img src='slices.png' alt='field slices'>"
        "<h2>Power spectra</h2><img src='power.png' alt='power spectra'>"
        "</body></html>"
    )
